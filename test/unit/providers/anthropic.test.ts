import { describe, expect, it } from "vitest";
import { getProvider } from "../../../src/providers/index.ts";
import type { Classification, HeaderSource } from "../../../src/providers/types.ts";

const anthropic = getProvider("anthropic");
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

/** Anthropic's error body: {"type":"error","error":{"type","message"},"request_id"}. */
function anthropicError(type: string, message: string, details?: Record<string, string>): string {
  const error = details ? { type, message, details } : { type, message };
  return JSON.stringify({ type: "error", error, request_id: "req_011CSHoEeqs5C35K2UUqR7Fy" });
}

describe("Anthropic: what an error answer means for the key", () => {
  it.each<[string, number, unknown, Partial<Classification>]>([
    [
      "a wrong or revoked key",
      401,
      anthropicError("authentication_error", "invalid x-api-key"),
      { kind: "invalidKey", retryable: true, reason: "authentication_error" },
    ],
    [
      "a key without permission for the resource",
      403,
      anthropicError(
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
      ),
      { kind: "invalidKey", retryable: true, reason: "permission_error" },
    ],
    [
      "a billing problem",
      402,
      anthropicError("billing_error", "Billing error"),
      { kind: "quotaExhausted", retryable: true, reason: "billing_error" },
    ],
    [
      "a credit balance too low",
      400,
      anthropicError(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
      ),
      { kind: "quotaExhausted", retryable: true, reason: "credit_balance_too_low" },
    ],
    [
      "an organization spend limit, lifting on the date the message gives",
      400,
      anthropicError(
        "invalid_request_error",
        "You have reached your specified API usage limits. You will regain access on 2025-02-01 at 00:00 UTC.",
      ),
      {
        kind: "quotaExhausted",
        retryable: true,
        reason: "api_usage_limit_reached",
        untilMs: Date.UTC(2025, 1, 1),
      },
    ],
    [
      "a workspace spend limit",
      400,
      anthropicError(
        "invalid_request_error",
        "You have reached your specified workspace API usage limits. You will regain access on 2025-01-20 at 13:30 UTC.",
      ),
      {
        kind: "quotaExhausted",
        retryable: true,
        reason: "api_usage_limit_reached",
        untilMs: Date.UTC(2025, 0, 20, 13, 30),
      },
    ],
    [
      "a usage tier's monthly spend cap, lifting at the start of next month",
      429,
      anthropicError("rate_limit_error", "You have reached your monthly spend limit.", {
        error_code: "enforced_spend_limit_reached",
      }),
      {
        kind: "quotaExhausted",
        retryable: true,
        reason: "enforced_spend_limit_reached",
        untilMs: Date.UTC(2025, 1, 1),
      },
    ],
    [
      "a rate limit",
      429,
      anthropicError(
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
      ),
      { kind: "rateLimited", retryable: true, reason: "rate_limit_error" },
    ],
    [
      "Anthropic overloaded for everyone",
      529,
      anthropicError("overloaded_error", "Overloaded"),
      { kind: "providerOverloaded", retryable: true, reason: "overloaded_error" },
    ],
    [
      "a request body too large",
      413,
      anthropicError("request_too_large", "Request exceeds the maximum allowed number of bytes."),
      { kind: "requestError", retryable: false, reason: "request_too_large" },
    ],
    [
      "a malformed request",
      400,
      anthropicError(
        "invalid_request_error",
        'messages: roles must alternate between "user" and "assistant"',
      ),
      { kind: "requestError", retryable: false, reason: "invalid_request_error" },
    ],
    [
      "an unknown model",
      404,
      anthropicError("not_found_error", "model: claude-nonexistent"),
      { kind: "requestError", retryable: false, reason: "not_found_error" },
    ],
    [
      "an internal error",
      500,
      anthropicError("api_error", "Internal server error"),
      { kind: "serverError", retryable: true, reason: "api_error" },
    ],
    [
      "a gateway timeout",
      504,
      anthropicError("timeout_error", "Request timeout"),
      { kind: "serverError", retryable: true, reason: "timeout_error" },
    ],
    [
      "an HTML 502 page",
      502,
      "<html><body>Bad Gateway</body></html>",
      { kind: "serverError", retryable: true, reason: "http_502" },
    ],
    [
      "a request timeout",
      408,
      undefined,
      { kind: "networkError", retryable: true, reason: "request_timeout" },
    ],
  ])("%s (%i)", (_name, status, body, expected) => {
    expect(anthropic.classify({ status, body }, NOW)).toEqual({ statusCode: status, ...expected });
  });

  it("reads an already-parsed body the same way as its text", () => {
    const body = anthropicError("overloaded_error", "Overloaded");
    expect(anthropic.classify({ status: 529, body: JSON.parse(body) }, NOW)).toEqual(
      anthropic.classify({ status: 529, body }, NOW),
    );
  });
});

describe("Anthropic: how long a rate-limited key rests", () => {
  const body = anthropicError(
    "rate_limit_error",
    "Number of request tokens has exceeded your per-minute rate limit",
  );
  const windows = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "12",
    "anthropic-ratelimit-requests-reset": "2025-01-15T12:00:05Z",
    "anthropic-ratelimit-input-tokens-limit": "40000",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": "2025-01-15T12:00:40Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "8000",
    "anthropic-ratelimit-output-tokens-reset": "2025-01-15T12:00:01Z",
  };

  it.each<[string, HeaderSource | undefined, number | undefined]>([
    ["until retry-after when it is sent", { ...windows, "retry-after": "15" }, NOW + 15_000],
    ["until the exhausted input-token window resets", windows, NOW + 40_000],
    [
      "until now when the reset already passed",
      {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2025-01-15T11:59:00Z",
      },
      NOW,
    ],
    ["for the pool's cooldown when the answer says nothing", undefined, undefined],
  ])("%s", (_name, headers, untilMs) => {
    expect(anthropic.classify({ status: 429, headers, body }, NOW).untilMs).toBe(untilMs);
  });
});

describe("Anthropic: rate-limit headers", () => {
  it("reads requests and the combined token window (RFC 3339 resets)", () => {
    const headers = new Headers({
      "anthropic-ratelimit-requests-limit": "1000",
      "anthropic-ratelimit-requests-remaining": "999",
      "anthropic-ratelimit-requests-reset": "2025-01-15T12:00:59Z",
      "anthropic-ratelimit-tokens-limit": "96000",
      "anthropic-ratelimit-tokens-remaining": "95000",
      "anthropic-ratelimit-tokens-reset": "2025-01-15T12:00:30Z",
      "anthropic-ratelimit-input-tokens-limit": "80000",
      "anthropic-ratelimit-input-tokens-remaining": "80000",
      "anthropic-ratelimit-input-tokens-reset": "2025-01-15T12:00:59Z",
    });
    expect(anthropic.rateLimitInfo(headers, NOW)).toEqual({
      limitRequests: 1000,
      remainingRequests: 999,
      resetRequestsAtMs: NOW + 59_000,
      limitTokens: 96000,
      remainingTokens: 95000,
      resetTokensAtMs: NOW + 30_000,
    });
  });

  it("falls back to the input or output window with the least headroom", () => {
    const headers = {
      "anthropic-ratelimit-input-tokens-limit": "80000",
      "anthropic-ratelimit-input-tokens-remaining": "60000",
      "anthropic-ratelimit-input-tokens-reset": "2025-01-15T12:00:10Z",
      "anthropic-ratelimit-output-tokens-limit": "16000",
      "anthropic-ratelimit-output-tokens-remaining": "1000",
      "anthropic-ratelimit-output-tokens-reset": "2025-01-15T12:00:20Z",
    };
    expect(anthropic.rateLimitInfo(headers, NOW)).toEqual({
      limitTokens: 16000,
      remainingTokens: 1000,
      resetTokensAtMs: NOW + 20_000,
    });
  });

  it("fill a successful answer's outcome", () => {
    const headers = { "anthropic-ratelimit-requests-remaining": "49", "request-id": "req_1" };
    expect(anthropic.classify({ status: 200, headers, body: { type: "message" } }, NOW)).toEqual({
      kind: "success",
      retryable: false,
      statusCode: 200,
      rateLimit: { remainingRequests: 49 },
    });
  });
});
