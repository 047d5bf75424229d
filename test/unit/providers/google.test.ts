import { describe, expect, it } from "vitest";
import { getProvider } from "../../../src/providers/index.ts";
import type { Classification, HeaderSource } from "../../../src/providers/types.ts";

const google = getProvider("google");
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0); // 04:00 PST
const KEY = "AIzaSyB9IojgeZxxxANOw3RhahRT1_abcdefgh";

const errorInfo = (reason: string, metadata: Record<string, string> = {}) => ({
  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
  reason,
  domain: "googleapis.com",
  metadata: { service: "generativelanguage.googleapis.com", ...metadata },
});
const quotaFailure = (...quotaIds: string[]) => ({
  "@type": "type.googleapis.com/google.rpc.QuotaFailure",
  violations: quotaIds.map((quotaId) => ({
    quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
    quotaId,
    quotaDimensions: { location: "global", model: "gemini-2.0-flash" },
  })),
});
const retryInfo = (retryDelay: unknown) => ({
  "@type": "type.googleapis.com/google.rpc.RetryInfo",
  retryDelay,
});
const help = {
  "@type": "type.googleapis.com/google.rpc.Help",
  links: [
    {
      description: "Learn more about Gemini API quotas",
      url: "https://ai.google.dev/gemini-api/docs/rate-limits",
    },
  ],
};

/** Google's error body: {"error": {"code", "message", "status", "details"}}. */
function googleError(code: number, status: string, message: string, details: unknown[] = []): string {
  return JSON.stringify({ error: { code, message, status, details } });
}

const QUOTA_MESSAGE =
  "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";

describe("Gemini: what an error answer means for the key", () => {
  it.each<[string, number, unknown, Partial<Classification>]>([
    [
      "an invalid key, which Google answers with 400 and not 401",
      400,
      googleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        errorInfo("API_KEY_INVALID"),
        {
          "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
          locale: "en-US",
          message: "API key not valid. Please pass a valid API key.",
        },
      ]),
      { kind: "invalidKey", retryable: true, reason: "api_key_invalid" },
    ],
    [
      "an expired key",
      400,
      googleError(400, "INVALID_ARGUMENT", "API key expired. Please renew the API key.", [
        errorInfo("API_KEY_INVALID"),
      ]),
      { kind: "invalidKey", retryable: true, reason: "api_key_invalid" },
    ],
    [
      "an invalid key in an older answer without details",
      400,
      googleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
      { kind: "invalidKey", retryable: true, reason: "api_key_invalid" },
    ],
    [
      "a malformed request",
      400,
      googleError(
        400,
        "INVALID_ARGUMENT",
        'Invalid JSON payload received. Unknown name "contentz": Cannot find field.',
      ),
      { kind: "requestError", retryable: false, reason: "invalid_argument" },
    ],
    [
      "the free tier unavailable in the caller's country",
      400,
      googleError(
        400,
        "FAILED_PRECONDITION",
        "User location is not supported for the API use without a billing account linked.",
      ),
      { kind: "requestError", retryable: true, reason: "failed_precondition" },
    ],
    [
      "a key whose API restrictions exclude Gemini",
      403,
      googleError(
        403,
        "PERMISSION_DENIED",
        "Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.",
        [errorInfo("API_KEY_SERVICE_BLOCKED", { consumer: "projects/123" })],
      ),
      { kind: "invalidKey", retryable: true, reason: "api_key_service_blocked" },
    ],
    [
      "a key restricted to other IP addresses",
      403,
      googleError(403, "PERMISSION_DENIED", "The provided API key has an IP address restriction.", [
        errorInfo("API_KEY_IP_ADDRESS_BLOCKED"),
      ]),
      { kind: "invalidKey", retryable: true, reason: "api_key_ip_address_blocked" },
    ],
    [
      "a project without the Generative Language API enabled",
      403,
      googleError(
        403,
        "PERMISSION_DENIED",
        "Generative Language API has not been used in project 123 before or it is disabled.",
        [errorInfo("SERVICE_DISABLED", { consumer: "projects/123" })],
      ),
      { kind: "invalidKey", retryable: true, reason: "service_disabled" },
    ],
    [
      "a suspended key, whose message quotes the key",
      403,
      googleError(
        403,
        "PERMISSION_DENIED",
        `Permission denied: Consumer 'api_key:${KEY}' has been suspended.`,
        [errorInfo("CONSUMER_SUSPENDED", { consumer: "projects/82087571650" })],
      ),
      { kind: "invalidKey", retryable: true, reason: "consumer_suspended" },
    ],
    [
      "a project with billing disabled",
      403,
      googleError(403, "PERMISSION_DENIED", "This API method requires billing to be enabled.", [
        errorInfo("BILLING_DISABLED"),
      ]),
      { kind: "quotaExhausted", retryable: true, reason: "billing_disabled" },
    ],
    [
      "a resource the project may not read",
      403,
      googleError(
        403,
        "PERMISSION_DENIED",
        "You do not have permission to access the File abc or it may not exist.",
      ),
      { kind: "requestError", retryable: true, reason: "permission_denied" },
    ],
    [
      "an unknown model",
      404,
      googleError(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta."),
      { kind: "requestError", retryable: false, reason: "not_found" },
    ],
    [
      "prepaid credit used up",
      402,
      googleError(402, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted."),
      { kind: "quotaExhausted", retryable: true, reason: "payment_required" },
    ],
    [
      "a per-minute quota",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [
        quotaFailure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        help,
        retryInfo("37s"),
      ]),
      { kind: "rateLimited", retryable: true, reason: "resource_exhausted", untilMs: NOW + 37_000 },
    ],
    [
      "a per-minute quota with a fractional retry delay",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [retryInfo("1.5s")]),
      { kind: "rateLimited", retryable: true, reason: "resource_exhausted", untilMs: NOW + 1_500 },
    ],
    [
      "a retry delay rendered as seconds and nanos",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [retryInfo({ seconds: 2, nanos: 500_000_000 })]),
      { kind: "rateLimited", retryable: true, reason: "resource_exhausted", untilMs: NOW + 2_500 },
    ],
    [
      "the daily quota, held until midnight Pacific time",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [
        quotaFailure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        retryInfo("37s"),
      ]),
      {
        kind: "quotaExhausted",
        retryable: true,
        reason: "daily_quota_exceeded",
        untilMs: Date.UTC(2025, 0, 16, 8),
      },
    ],
    [
      "per-minute and per-day quotas both violated",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [
        quotaFailure(
          "GenerateContentInputTokensPerModelPerMinute-FreeTier",
          "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
          "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        ),
      ]),
      {
        kind: "quotaExhausted",
        retryable: true,
        reason: "daily_quota_exceeded",
        untilMs: Date.UTC(2025, 0, 16, 8),
      },
    ],
    [
      "a 429 that says nothing more",
      429,
      googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
      { kind: "rateLimited", retryable: true, reason: "resource_exhausted" },
    ],
    [
      "an internal error",
      500,
      googleError(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
      ),
      { kind: "serverError", retryable: true, reason: "internal" },
    ],
    [
      "an overloaded model",
      503,
      googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
      { kind: "providerOverloaded", retryable: true, reason: "model_overloaded" },
    ],
    [
      "no capacity for the model",
      503,
      googleError(503, "UNAVAILABLE", "No capacity available for model on the server", [
        errorInfo("MODEL_CAPACITY_EXHAUSTED"),
      ]),
      { kind: "providerOverloaded", retryable: true, reason: "model_overloaded" },
    ],
    [
      "the service unavailable",
      503,
      googleError(503, "UNAVAILABLE", "The service is currently unavailable."),
      { kind: "serverError", retryable: true, reason: "unavailable" },
    ],
    [
      "a deadline exceeded on Google's side",
      504,
      googleError(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
      { kind: "serverError", retryable: true, reason: "deadline_exceeded" },
    ],
    [
      "an HTML 502 page",
      502,
      "<!DOCTYPE html><html><title>Error 502</title></html>",
      { kind: "serverError", retryable: true, reason: "http_502" },
    ],
  ])("%s (%i)", (_name, status, body, expected) => {
    expect(google.classify({ status, body }, NOW)).toEqual({ statusCode: status, ...expected });
  });

  it("reads a body wrapped in an array, as streaming endpoints send it", () => {
    const body = `[${googleError(400, "INVALID_ARGUMENT", "API key not valid.", [errorInfo("API_KEY_INVALID")])}]`;
    expect(google.classify({ status: 400, body }, NOW).kind).toBe("invalidKey");
  });
});

describe("Gemini: how long a rate-limited key rests", () => {
  const perMinute = googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [retryInfo("20s")]);
  const perDay = googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, [
    quotaFailure("GenerateRequestsPerDayPerProjectPerModel"),
  ]);

  it.each<[string, string, HeaderSource | undefined, number, number]>([
    [
      "the body's retry delay wins over a retry-after header",
      perMinute,
      { "retry-after": "5" },
      NOW,
      NOW + 20_000,
    ],
    [
      "a retry-after header counts when the body has no delay",
      googleError(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE),
      { "retry-after": "5" },
      NOW,
      NOW + 5_000,
    ],
    [
      "a daily quota in winter rests until midnight PST",
      perDay,
      undefined,
      Date.parse("2025-01-15T23:00:00Z"),
      Date.parse("2025-01-16T08:00:00Z"),
    ],
    [
      "a daily quota in summer rests until midnight PDT",
      perDay,
      undefined,
      Date.parse("2025-07-15T23:00:00Z"),
      Date.parse("2025-07-16T07:00:00Z"),
    ],
    [
      "a daily quota hit in the evening, Pacific time, rests only until that midnight",
      perDay,
      undefined,
      Date.parse("2025-07-16T05:00:00Z"),
      Date.parse("2025-07-16T07:00:00Z"),
    ],
    [
      "a daily quota hit the day clocks change rests until the next local midnight",
      perDay,
      undefined,
      Date.parse("2025-03-09T12:00:00Z"),
      Date.parse("2025-03-10T07:00:00Z"),
    ],
  ])("%s", (_name, body, headers, now, untilMs) => {
    expect(google.classify({ status: 429, headers, body }, now).untilMs).toBe(untilMs);
  });
});

describe("Gemini: rate limits", () => {
  it("reports no rate-limit headers, since the Gemini API sends none", () => {
    expect(
      google.classify({ status: 200, headers: { "content-type": "application/json" }, body: {} }, NOW),
    ).toEqual({
      kind: "success",
      retryable: false,
      statusCode: 200,
    });
  });
});
