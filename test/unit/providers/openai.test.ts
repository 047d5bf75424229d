import { describe, expect, it } from "vitest";
import { getProvider } from "../../../src/providers/index.ts";
import type { Classification, HeaderSource } from "../../../src/providers/types.ts";

const openai = getProvider("openai");
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

/** OpenAI's error body: {"error": {"message", "type", "param", "code"}}. */
function openaiError(
  message: string,
  type: string,
  code: string | null,
  param: string | null = null,
): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

const CLOUDFLARE_403 = `<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>cloudflare</center></body></html>`;
const CLOUDFLARE_502 = `<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>`;

describe("OpenAI: what an error answer means for the key", () => {
  it.each<[string, number, unknown, Partial<Classification>]>([
    [
      "a wrong or revoked key",
      401,
      openaiError(
        "Incorrect API key provided: sk-proj-****wxyz. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
      ),
      { kind: "invalidKey", retryable: true, reason: "invalid_api_key" },
    ],
    [
      "a restricted key missing a scope",
      401,
      openaiError(
        "You have insufficient permissions for this operation. Missing scopes: api.responses.write. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.",
        "invalid_request_error",
        null,
      ),
      { kind: "invalidKey", retryable: true, reason: "missing_scopes" },
    ],
    [
      "a key outside any organization",
      401,
      openaiError(
        "You must be a member of an organization to use the API. Please contact us through our help center at help.openai.com.",
        "invalid_request_error",
        "no_organization",
      ),
      { kind: "invalidKey", retryable: true, reason: "invalid_authentication" },
    ],
    [
      "a call from an unsupported country, which is the caller's network and not the key",
      403,
      JSON.stringify({
        error: {
          code: "unsupported_country_region_territory",
          message: "Country, region, or territory not supported",
          param: null,
          type: "request_forbidden",
        },
      }),
      { kind: "requestError", retryable: false, reason: "unsupported_country_region_territory" },
    ],
    [
      "an unsupported country recognised by its message alone",
      403,
      openaiError("Country, region, or territory not supported", "request_forbidden", null),
      { kind: "requestError", retryable: false, reason: "unsupported_country_region_territory" },
    ],
    [
      "a project without access to the model",
      403,
      openaiError(
        "Project `proj_QRf115YMnQwMUdTI9cu2sWQ8` does not have access to model `gpt-4o-mini`",
        "invalid_request_error",
        "model_not_found",
      ),
      { kind: "requestError", retryable: true, reason: "model_access_denied" },
    ],
    [
      "any other refusal OpenAI itself sends, such as a disabled organization",
      403,
      openaiError("Your organization has been disabled.", "invalid_request_error", "organization_disabled"),
      { kind: "invalidKey", retryable: true, reason: "permission_denied" },
    ],
    [
      "a 403 page from a proxy or CDN in between",
      403,
      CLOUDFLARE_403,
      { kind: "requestError", retryable: false, reason: "http_403" },
    ],
    [
      "an account out of quota",
      429,
      openaiError(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        "insufficient_quota",
      ),
      { kind: "quotaExhausted", retryable: true, reason: "insufficient_quota" },
    ],
    [
      "an organization without prepaid credit",
      429,
      openaiError("Your credit balance is exhausted.", "insufficient_quota", "credit_balance_exhausted"),
      { kind: "quotaExhausted", retryable: true, reason: "credit_balance_exhausted" },
    ],
    [
      "a project over its monthly spend limit",
      429,
      openaiError("Project spend limit exceeded.", "insufficient_quota", "project_spend_limit_exceeded"),
      { kind: "quotaExhausted", retryable: true, reason: "project_spend_limit_exceeded" },
    ],
    [
      "a quota error known only by its type",
      429,
      openaiError("You exceeded your current quota.", "insufficient_quota", null),
      { kind: "quotaExhausted", retryable: true, reason: "insufficient_quota" },
    ],
    [
      "a request rate limit",
      429,
      openaiError(
        "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
      ),
      { kind: "rateLimited", retryable: true, reason: "rate_limit_exceeded" },
    ],
    [
      "traffic ramping up too fast",
      429,
      openaiError("Please slow down.", "rate_limit_error", "slow_down"),
      { kind: "rateLimited", retryable: true, reason: "slow_down" },
    ],
    [
      "a bare 429 without a body",
      429,
      undefined,
      { kind: "rateLimited", retryable: true, reason: "rate_limit_exceeded" },
    ],
    [
      "a request too long for the model",
      400,
      openaiError(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
      ),
      { kind: "requestError", retryable: false, reason: "http_400" },
    ],
    [
      "a model that does not exist",
      404,
      openaiError(
        "The model `gpt-5-turbo` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
      ),
      { kind: "requestError", retryable: false, reason: "http_404" },
    ],
    [
      "an unprocessable request",
      422,
      openaiError("Invalid value for 'n'.", "invalid_request_error", null, "n"),
      { kind: "requestError", retryable: false, reason: "http_422" },
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
      openaiError(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        null,
      ),
      { kind: "serverError", retryable: true, reason: "http_500" },
    ],
    ["an HTML 502 page", 502, CLOUDFLARE_502, { kind: "serverError", retryable: true, reason: "http_502" }],
    [
      "OpenAI overloaded as a whole",
      503,
      openaiError("The engine is currently overloaded, please try again later", "server_error", null),
      { kind: "providerOverloaded", retryable: true, reason: "server_overloaded" },
    ],
    [
      "OpenAI overloaded, by code",
      503,
      openaiError("Slow down, please.", "service_unavailable_error", "server_is_overloaded"),
      { kind: "providerOverloaded", retryable: true, reason: "server_overloaded" },
    ],
    [
      "another 503",
      503,
      openaiError("Service Unavailable", "server_error", null),
      { kind: "serverError", retryable: true, reason: "http_503" },
    ],
    ["a gateway timeout", 504, undefined, { kind: "serverError", retryable: true, reason: "http_504" }],
    ["an unknown 5xx", 599, "oops", { kind: "serverError", retryable: true, reason: "http_599" }],
  ])("%s (%i)", (_name, status, body, expected) => {
    expect(openai.classify({ status, body }, NOW)).toEqual({ statusCode: status, ...expected });
  });
});

describe("OpenAI: how long a rate-limited key rests", () => {
  const rateLimitBody = openaiError("Rate limit reached for requests", "requests", "rate_limit_exceeded");
  const resets: Record<string, string> = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "2s",
  };

  it.each<[string, HeaderSource | undefined, number | undefined]>([
    ["until the exhausted request window refills", resets, NOW + 120],
    ["until retry-after, which wins over reset headers", { ...resets, "retry-after": "20" }, NOW + 20_000],
    [
      "until retry-after-ms, the most precise",
      { ...resets, "retry-after-ms": "1500", "retry-after": "2" },
      NOW + 1_500,
    ],
    [
      "until both windows refill when both are empty",
      { ...resets, "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" },
      NOW + 360_000,
    ],
    ["until an HTTP-date retry-after", { "retry-after": "Wed, 15 Jan 2025 12:00:30 GMT" }, NOW + 30_000],
    ["for the pool's cooldown when the answer says nothing", undefined, undefined],
  ])("%s", (_name, headers, untilMs) => {
    expect(openai.classify({ status: 429, headers, body: rateLimitBody }, NOW).untilMs).toBe(untilMs);
  });

  it("does not set a deadline for an account out of quota (no wait fixes it)", () => {
    const body = openaiError("You exceeded your current quota.", "insufficient_quota", "insufficient_quota");
    expect(
      openai.classify({ status: 429, headers: { "retry-after": "20" }, body }, NOW).untilMs,
    ).toBeUndefined();
  });
});

describe("OpenAI: rate-limit headers", () => {
  const headers = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
  };
  const expected = {
    limitRequests: 60,
    remainingRequests: 59,
    resetRequestsAtMs: NOW + 1_000,
    limitTokens: 150000,
    remainingTokens: 149984,
    resetTokensAtMs: NOW + 360_000,
  };

  it.each<[string, HeaderSource]>([
    ["a Node header record", headers],
    ["a fetch Headers object", new Headers(headers)],
  ])("are read from %s", (_name, source) => {
    expect(openai.rateLimitInfo(source, NOW)).toEqual(expected);
  });

  it("fill a successful answer's outcome, leaving tokens for later", () => {
    expect(openai.classify({ status: 200, headers, body: { id: "chatcmpl-1" } }, NOW)).toEqual({
      kind: "success",
      retryable: false,
      statusCode: 200,
      rateLimit: expected,
    });
  });

  it("skip values that do not parse and keep the rest", () => {
    expect(
      openai.rateLimitInfo(
        { "x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-requests": "1h2m3.5s" },
        NOW,
      ),
    ).toEqual({ resetRequestsAtMs: NOW + 3_723_500 });
  });

  it("are absent when the answer has none", () => {
    expect(openai.rateLimitInfo({ "content-type": "application/json" }, NOW)).toBeUndefined();
  });
});
