import { describe, expect, it } from "vitest";
import { getProvider } from "../../../src/providers/index.ts";
import type { Classification, HeaderSource } from "../../../src/providers/types.ts";

const mistral = getProvider("mistral");
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

/** Mistral's error body: {"object":"error","message","type","param","code"}. */
function mistralError(message: string, type: string, code: string | null): string {
  return JSON.stringify({ object: "error", message, type, param: null, code });
}

describe("Mistral: what an error answer means for the key", () => {
  it.each<[string, number, unknown, Partial<Classification>]>([
    [
      "a wrong or revoked key",
      401,
      JSON.stringify({ message: "Unauthorized", request_id: "3f1c0e0b5a5e4a8c" }),
      { kind: "invalidKey", retryable: true, reason: "unauthorized" },
    ],
    [
      "an organization out of credit",
      402,
      mistralError("Payment required: your prepaid credit balance is 0.", "invalid_request_error", null),
      { kind: "quotaExhausted", retryable: true, reason: "payment_required" },
    ],
    [
      "a model outside the subscription tier",
      403,
      mistralError("You do not have access to this model.", "invalid_request_error", null),
      { kind: "requestError", retryable: true, reason: "permission_denied" },
    ],
    [
      "a workspace rate limit",
      429,
      JSON.stringify({
        object: "error",
        message: "Rate limit exceeded",
        type: "rate_limited",
        param: null,
        code: "1300",
        raw_status_code: 429,
      }),
      { kind: "rateLimited", retryable: true, reason: "rate_limited" },
    ],
    [
      "a model's tier out of capacity, which is Mistral's trouble and not the key's",
      429,
      mistralError("Service tier capacity exceeded for this model.", "invalid_request_error", "3505"),
      { kind: "providerOverloaded", retryable: true, reason: "service_tier_capacity_exceeded" },
    ],
    [
      "tier capacity recognised by its message alone",
      429,
      mistralError("Service tier capacity exceeded for this model.", "invalid_request_error", null),
      { kind: "providerOverloaded", retryable: true, reason: "service_tier_capacity_exceeded" },
    ],
    [
      "a malformed request",
      400,
      mistralError("Invalid model: mistral-hyper", "invalid_request_error", "1500"),
      { kind: "requestError", retryable: false, reason: "http_400" },
    ],
    [
      "a validation error",
      422,
      JSON.stringify({
        object: "error",
        message: { detail: [{ type: "missing", loc: ["body", "messages"], msg: "Field required" }] },
        type: "invalid_request_message_error",
        param: null,
        code: null,
      }),
      { kind: "requestError", retryable: false, reason: "http_422" },
    ],
    [
      "an internal error",
      500,
      mistralError("Internal server error", "internal_server_error", null),
      { kind: "serverError", retryable: true, reason: "http_500" },
    ],
    [
      "an unavailable service",
      503,
      "upstream connect error",
      { kind: "serverError", retryable: true, reason: "http_503" },
    ],
  ])("%s (%i)", (_name, status, body, expected) => {
    expect(mistral.classify({ status, body }, NOW)).toEqual({ statusCode: status, ...expected });
  });
});

describe("Mistral: how long a rate-limited key rests", () => {
  const body = mistralError("Rate limit exceeded", "rate_limited", "1300");
  it.each<[string, HeaderSource | undefined, number | undefined]>([
    ["until retry-after", { "retry-after": "60", "ratelimitbysize-reset": "12" }, NOW + 60_000],
    [
      "until the token window resets",
      { "ratelimitbysize-remaining": "0", "ratelimitbysize-reset": "12" },
      NOW + 12_000,
    ],
    ["for the pool's cooldown when the answer says nothing", undefined, undefined],
  ])("%s", (_name, headers, untilMs) => {
    expect(mistral.classify({ status: 429, headers, body }, NOW).untilMs).toBe(untilMs);
  });
});

describe("Mistral: rate-limit headers", () => {
  it.each<[string, HeaderSource, object | undefined]>([
    [
      "the current per-minute names",
      {
        "x-ratelimit-limit-tokens-minute": "5000000",
        "x-ratelimit-remaining-tokens-minute": "4999911",
        "x-ratelimit-tokens-query-cost": "52",
        "x-ratelimit-limit-req-minute": "720",
        "x-ratelimit-remaining-req-minute": "717",
      },
      { limitRequests: 720, remainingRequests: 717, limitTokens: 5000000, remainingTokens: 4999911 },
    ],
    [
      "the older ratelimitbysize names, with a reset in seconds",
      {
        "ratelimitbysize-limit": "500000",
        "ratelimitbysize-remaining": "499000",
        "ratelimitbysize-reset": "37",
        "ratelimitbysize-query-cost": "1000",
      },
      { limitTokens: 500000, remainingTokens: 499000, resetTokensAtMs: NOW + 37_000 },
    ],
    [
      "the older x-ratelimitbysize per-minute names",
      { "x-ratelimitbysize-limit-minute": "500000", "x-ratelimitbysize-remaining-minute": "12" },
      { limitTokens: 500000, remainingTokens: 12 },
    ],
    ["none", { "content-type": "application/json" }, undefined],
  ])("are read from %s", (_name, headers, expected) => {
    expect(mistral.rateLimitInfo(headers, NOW)).toEqual(expected);
  });
});
