/**
 * The client's error codes and how API error answers become KeyPoolClientErrors; and that the
 * client stays shippable on its own (Node built-ins and its own files only).
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { errorFromAnswer, retryAfterSeconds } from "../../../src/client/errors.ts";
import { ERROR_STATUS } from "../../../src/server/errors.ts";
import { KeyPoolClientError, SERVER_ERROR_CODES } from "keypool-operator/client";

const CLIENT_DIR = join(import.meta.dirname, "../../../src/client");

describe("the client's error codes", () => {
  it("are exactly the server's codes (src/server/errors.ts ERROR_STATUS)", () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(Object.keys(ERROR_STATUS).sort());
  });

  it("come from a client that imports nothing but Node built-ins and its own files", async () => {
    const files = (await readdir(CLIENT_DIR)).filter((f) => f.endsWith(".ts"));
    expect(files).toContain("index.ts");
    for (const file of files) {
      const text = await readFile(join(CLIENT_DIR, file), "utf8");
      const specifiers = [...text.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]);
      for (const specifier of specifiers) expect(specifier, file).toMatch(/^(?:node:|\.\/[\w-]+\.ts$)/);
    }
  });
});

describe("errorFromAnswer", () => {
  const now = Date.parse("2030-01-01T00:00:00Z");
  it.each([
    {
      name: "an API error keeps its code, message and status",
      status: 404,
      text: '{"error":{"code":"pool_not_found","message":"KeyPool default/x not found"}}',
      header: null,
      want: {
        code: "pool_not_found",
        status: 404,
        message: "KeyPool default/x not found",
        retryAfterSeconds: undefined,
      },
    },
    {
      name: "no_usable_key takes retryAfterSeconds from the body",
      status: 503,
      text: '{"error":{"code":"no_usable_key","message":"No usable key","retryAfterSeconds":12}}',
      header: "30",
      want: { code: "no_usable_key", status: 503, retryAfterSeconds: 12 },
    },
    {
      name: "or from Retry-After when the body has none",
      status: 503,
      text: '{"error":{"code":"no_usable_key","message":"No usable key"}}',
      header: "30",
      want: { code: "no_usable_key", retryAfterSeconds: 30 },
    },
    {
      name: "a compat answer's success: false beside the error is ignored",
      status: 401,
      text: '{"success":false,"error":{"code":"unauthenticated","message":"Send a token"}}',
      header: null,
      want: { code: "unauthenticated", status: 401 },
    },
    {
      name: "an HTML page from something in between is invalid_response",
      status: 502,
      text: "<html>Bad Gateway</html>",
      header: null,
      want: {
        code: "invalid_response",
        status: 502,
        message: "HTTP 502 from the KeyPool server: not the KeyPool API's error JSON",
      },
    },
    {
      name: "a code this client does not know is invalid_response, naming it",
      status: 418,
      text: '{"error":{"code":"teapot","message":"short and stout"}}',
      header: null,
      want: {
        code: "invalid_response",
        status: 418,
        message: 'HTTP 418 from the KeyPool server: unknown error code "teapot"',
      },
    },
  ])("$name", ({ status, text, header, want }) => {
    const err = errorFromAnswer(status, text, header, now);
    expect(err).toBeInstanceOf(KeyPoolClientError);
    expect(err).toMatchObject(want);
    expect(err.name).toBe("KeyPoolClientError");
  });

  it.each([
    { header: "5", seconds: 5 },
    { header: "1.5", seconds: 1.5 },
    { header: "Tue, 01 Jan 2030 00:00:09 GMT", seconds: 9 },
    { header: "soon", seconds: undefined },
    { header: "", seconds: undefined },
  ])("reads Retry-After $header as $seconds s", ({ header, seconds }) => {
    expect(retryAfterSeconds(header, now)).toBe(seconds);
  });
});
