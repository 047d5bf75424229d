import { describe, expect, it } from "vitest";
import { getProvider, OPENAI_COMPATIBLE_DEFAULT_BASE_URL } from "../../../src/providers/index.ts";
import type { Classification, HeaderSource } from "../../../src/providers/types.ts";

const compatible = getProvider("openai-compatible");
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

describe("OpenAI-compatible servers: what an error answer means for the key", () => {
  it.each<[string, number, unknown, Partial<Classification>]>([
    [
      "vLLM refusing the key",
      401,
      JSON.stringify({ error: "Unauthorized" }),
      { kind: "invalidKey", retryable: true, reason: "unauthorized" },
    ],
    [
      "Azure refusing the key",
      401,
      JSON.stringify({
        error: {
          code: "401",
          message:
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        },
      }),
      { kind: "invalidKey", retryable: true, reason: "unauthorized" },
    ],
    [
      "a 403 from a network policy, which does not blame the key",
      403,
      JSON.stringify({
        error: {
          code: "AuthenticationTypeDisabled",
          message: "Traffic is not from an approved private endpoint.",
        },
      }),
      { kind: "requestError", retryable: false, reason: "forbidden" },
    ],
    [
      "DeepSeek out of balance",
      402,
      JSON.stringify({
        error: {
          message: "Insufficient Balance",
          type: "unknown_error",
          param: null,
          code: "invalid_request_error",
        },
      }),
      { kind: "quotaExhausted", retryable: true, reason: "payment_required" },
    ],
    [
      "a 429 is a rate limit, even with OpenAI's quota code",
      429,
      JSON.stringify({
        error: { message: "quota", type: "insufficient_quota", param: null, code: "insufficient_quota" },
      }),
      { kind: "rateLimited", retryable: true, reason: "rate_limited" },
    ],
    [
      "a vLLM validation error",
      400,
      JSON.stringify({
        object: "error",
        message: "max_tokens must be at least 1, got 0.",
        type: "BadRequestError",
        param: null,
        code: 400,
      }),
      { kind: "requestError", retryable: false, reason: "http_400" },
    ],
    [
      "an unknown model",
      404,
      JSON.stringify({ detail: "Not Found" }),
      { kind: "requestError", retryable: false, reason: "http_404" },
    ],
    [
      "a request timeout",
      408,
      undefined,
      { kind: "networkError", retryable: true, reason: "request_timeout" },
    ],
    [
      "a server error",
      500,
      "Internal Server Error",
      { kind: "serverError", retryable: true, reason: "http_500" },
    ],
    [
      "an overloaded server",
      503,
      JSON.stringify({ error: { message: "Server overloaded" } }),
      { kind: "serverError", retryable: true, reason: "http_503" },
    ],
    ["a non-standard 5xx", 529, undefined, { kind: "serverError", retryable: true, reason: "http_529" }],
    [
      "a redirect from a wrong base URL",
      301,
      "<html>Moved</html>",
      { kind: "requestError", retryable: false, reason: "http_301" },
    ],
  ])("%s (%i)", (_name, status, body, expected) => {
    expect(compatible.classify({ status, body }, NOW)).toEqual({ statusCode: status, ...expected });
  });
});

describe("OpenAI-compatible servers: rate limits", () => {
  it.each<[string, HeaderSource, number | undefined]>([
    ["Azure's retry-after-ms", { "retry-after-ms": "8000", "retry-after": "8" }, NOW + 8_000],
    [
      "Groq's duration resets",
      {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-reset-tokens": "7.66s",
      },
      NOW + 179_560,
    ],
    [
      "a reset in bare seconds",
      { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "30" },
      NOW + 30_000,
    ],
  ])("rest until %s says", (_name, headers, untilMs) => {
    expect(compatible.classify({ status: 429, headers, body: undefined }, NOW).untilMs).toBe(untilMs);
  });

  it("reads OpenAI's header names on success", () => {
    const headers = {
      "x-ratelimit-limit-requests": "14400",
      "x-ratelimit-remaining-requests": "14370",
      "x-ratelimit-reset-requests": "2m59.56s",
    };
    expect(compatible.classify({ status: 200, headers, body: "{}" }, NOW)).toEqual({
      kind: "success",
      retryable: false,
      statusCode: 200,
      rateLimit: { limitRequests: 14400, remainingRequests: 14370, resetRequestsAtMs: NOW + 179_560 },
    });
  });
});

describe("OpenAI-compatible servers: configuration", () => {
  it("has no default endpoint, so the KeyPool must set spec.baseURL", () => {
    expect(compatible.defaultBaseURL).toBe("");
    expect(OPENAI_COMPATIBLE_DEFAULT_BASE_URL).toBe("");
  });
});
