import { describe, expect, it } from "vitest";
import type { ProviderName } from "../../../src/providers/types.ts";
import { providerErrorBody } from "../../../src/proxy/errors.ts";
import { ERROR_STATUS, type ErrorCode, KeyPoolError } from "../../../src/server/errors.ts";

const rateLimited = new KeyPoolError("rate_limited", "No key of default/openai became usable within 10s", {
  retryAfterSeconds: 12,
});
const unauthenticated = new KeyPoolError("unauthenticated", "Send your ServiceAccount token");
const tooLarge = new KeyPoolError(
  "payload_too_large",
  "The request body is larger than the proxy forwards (10 bytes)",
);

/** The stable keypool code, wherever the provider's shape puts it. */
function keypoolCode(provider: ProviderName | undefined, body: unknown): unknown {
  const b = body as {
    error: { code?: unknown; keypool_code?: unknown; details?: Array<{ reason?: unknown }> };
  };
  if (provider === "anthropic") return b.error.keypool_code;
  if (provider === "google") return b.error.details?.[0]?.reason;
  return b.error.code;
}

describe("providerErrorBody: OpenAI's shape", () => {
  it("writes {error: {message, type, param, code}} with keypool's code as error.code", () => {
    expect(providerErrorBody("openai", rateLimited)).toEqual({
      error: { message: rateLimited.message, type: "requests", param: null, code: "rate_limited" },
    });
    expect(providerErrorBody("openai", unauthenticated)).toEqual({
      error: {
        message: unauthenticated.message,
        type: "invalid_request_error",
        param: null,
        code: "unauthenticated",
      },
    });
    expect(providerErrorBody("openai", tooLarge)).toEqual({
      error: {
        message: tooLarge.message,
        type: "invalid_request_error",
        param: null,
        code: "payload_too_large",
      },
    });
  });

  it("is the shape for an unknown provider and for OpenAI-like providers", () => {
    for (const provider of [undefined, "openai-compatible", "mistral"] as const) {
      expect(providerErrorBody(provider, rateLimited)).toEqual(providerErrorBody("openai", rateLimited));
    }
  });

  it("calls 5xx errors server_error", () => {
    const body = providerErrorBody(
      undefined,
      new KeyPoolError("upstream_unavailable", "could not connect"),
    ) as {
      error: { type: string; code: string };
    };
    expect(body.error).toMatchObject({ type: "server_error", code: "upstream_unavailable" });
  });
});

describe("providerErrorBody: Anthropic's shape", () => {
  it.each<[KeyPoolError, string]>([
    [rateLimited, "rate_limit_error"],
    [unauthenticated, "authentication_error"],
    [tooLarge, "request_too_large"],
    [new KeyPoolError("forbidden", "no"), "permission_error"],
    [new KeyPoolError("pool_not_found", "no"), "not_found_error"],
    [new KeyPoolError("invalid_request", "no"), "invalid_request_error"],
    [new KeyPoolError("no_usable_key", "no"), "overloaded_error"],
    [new KeyPoolError("upstream_unavailable", "no"), "api_error"],
    [new KeyPoolError("upstream_timeout", "no"), "api_error"],
    [new KeyPoolError("internal", "no"), "api_error"],
  ])("%s is an %s", (error, type) => {
    expect(providerErrorBody("anthropic", error)).toEqual({
      type: "error",
      error: { type, message: error.message, keypool_code: error.code },
    });
  });
});

describe("providerErrorBody: Google's shape", () => {
  it.each<[KeyPoolError, string]>([
    [rateLimited, "RESOURCE_EXHAUSTED"],
    [unauthenticated, "UNAUTHENTICATED"],
    [tooLarge, "INVALID_ARGUMENT"],
    [new KeyPoolError("forbidden", "no"), "PERMISSION_DENIED"],
    [new KeyPoolError("pool_not_found", "no"), "NOT_FOUND"],
    [new KeyPoolError("upstream_unavailable", "no"), "UNAVAILABLE"],
    [new KeyPoolError("upstream_timeout", "no"), "DEADLINE_EXCEEDED"],
    [new KeyPoolError("internal", "no"), "INTERNAL"],
  ])(
    "%s is %s, with the HTTP status as error.code and keypool's code as an ErrorInfo reason",
    (error, status) => {
      expect(providerErrorBody("google", error)).toEqual({
        error: {
          code: error.status,
          message: error.message,
          status,
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.ErrorInfo",
              reason: error.code,
              domain: "keypool.dev",
            },
          ],
        },
      });
    },
  );
});

describe("providerErrorBody: every shape carries keypool's stable code", () => {
  const providers: Array<ProviderName | undefined> = [
    undefined,
    "openai",
    "openai-compatible",
    "mistral",
    "anthropic",
    "google",
  ];
  const codes = Object.keys(ERROR_STATUS) as ErrorCode[];
  it.each(providers.map((p) => [p ?? "(unknown)", p] as const))("%s", (_name, provider) => {
    for (const code of codes) {
      const error = new KeyPoolError(code, `message for ${code}`);
      const body = providerErrorBody(provider, error);
      expect(keypoolCode(provider, body), code).toBe(code);
      expect(JSON.stringify(body), code).toContain(`message for ${code}`);
    }
  });

  it("is plain JSON (survives a round trip)", () => {
    for (const provider of providers) {
      const body = providerErrorBody(provider, rateLimited);
      expect(JSON.parse(JSON.stringify(body))).toEqual(body);
    }
  });
});
