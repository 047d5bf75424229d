import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { describeError } from "../../src/describe-error.ts";

describe("describeError", () => {
  it.each([
    [
      "an API Status by its code, reason and message",
      new ApiException(403, "x", JSON.stringify({ reason: "Forbidden", message: "leases is forbidden" }), {}),
      "HTTP 403 Forbidden: leases is forbidden",
    ],
    [
      "a bodyless 401 by its code's reason",
      new ApiException(401, "Unauthorized", undefined, {}),
      "HTTP 401 Unauthorized",
    ],
    [
      "an answer that is not a Status by its code",
      new ApiException(502, "Bad Gateway", "<html>", {}),
      "HTTP 502",
    ],
    [
      "a network error with its cause",
      new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") }),
      "fetch failed: connect ECONNREFUSED",
    ],
    [
      "a Status that echoes a token without the token",
      new ApiException(
        401,
        "x",
        JSON.stringify({ message: "token eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl is invalid" }),
        {},
      ),
      "HTTP 401 Unauthorized: token [REDACTED] is invalid",
    ],
    ["something thrown that is not an Error by its text", "plain text", "plain text"],
  ])("names %s", (_name, err, text) => {
    expect(describeError(err)).toBe(text);
  });
});
