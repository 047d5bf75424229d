/**
 * Google Gemini API (generativelanguage.googleapis.com): `x-goog-api-key` auth, and errors in
 * Google's AIP-193 shape, whose `details` carry the facts that matter: ErrorInfo reasons
 * (API_KEY_INVALID…), QuotaFailure quota ids (per minute vs per day) and RetryInfo delays.
 */
import { nextPacificMidnight } from "./calendar.ts";
import { arrayAt, compact, type ErrorFacts, isRecord, parseBody, recordAt, stringAt } from "./errors-body.ts";
import { parseGoDuration, retryAfterDeadline } from "./headers.ts";
import { defineProfile, type Rule, type Until, untilRateLimitLifts } from "./profile.ts";

/** Code our facts carry when a QuotaFailure violation's quotaId is a per-day quota. */
const PER_DAY_QUOTA = "per_day_quota";

/** Google resets per-day Gemini quotas at midnight Pacific time. */
const untilPacificMidnight: Until = ({ nowMs }) => nextPacificMidnight(nowMs);

/**
 * ErrorInfo reasons (domain googleapis.com) that reject the key itself or the project behind it.
 * Decision: all are invalidKey (out of rotation until the Secret changes) because every call with
 * this key fails the same way until someone changes the key or its project:
 * - API_KEY_INVALID: wrong, deleted or expired key ("API key expired. Please renew the API key.")
 * - API_KEY_SERVICE_BLOCKED: the key's API restrictions exclude the Generative Language API
 * - API_KEY_*_BLOCKED: the key's application restrictions (IP, referrer, app) exclude this caller
 * - SERVICE_DISABLED: the Generative Language API is not enabled in the key's project
 * - CONSUMER_SUSPENDED / CONSUMER_INVALID: the key's project is suspended or gone
 */
const KEY_REJECTED_REASONS = [
  "API_KEY_INVALID",
  "API_KEY_SERVICE_BLOCKED",
  "API_KEY_HTTP_REFERRER_BLOCKED",
  "API_KEY_IP_ADDRESS_BLOCKED",
  "API_KEY_ANDROID_APP_BLOCKED",
  "API_KEY_IOS_APP_BLOCKED",
  "SERVICE_DISABLED",
  "CONSUMER_SUSPENDED",
  "CONSUMER_INVALID",
] as const;

/**
 * Gemini's answers, first match wins; anything unmatched falls through to HTTP_FALLBACK_RULES.
 * Sources:
 * - https://ai.google.dev/gemini-api/docs/troubleshooting (status table: 400/403/404/429/500/503/504)
 * - https://ai.google.dev/gemini-api/docs/rate-limits (RPM/TPM/RPD; "RPD quotas reset at midnight Pacific time")
 * - https://cloud.google.com/apis/design/errors (error model, ErrorInfo / QuotaFailure / RetryInfo details)
 * - https://github.com/googleapis/googleapis/blob/master/google/api/error_reason.proto (ErrorInfo reasons)
 */
export const GOOGLE_RULES: readonly Rule[] = [
  // The key or its project is rejected, whatever the status (400 for API_KEY_INVALID, 403 for the rest).
  ...KEY_REJECTED_REASONS.map((code): Rule => ({
    code,
    kind: "invalidKey",
    retryable: true,
    reason: code.toLowerCase(),
  })),
  // Older answers without details: 400 "API key not valid. Please pass a valid API key."
  {
    status: 400,
    message: /API key not valid|API key expired/i,
    kind: "invalidKey",
    retryable: true,
    reason: "api_key_invalid",
  },
  // BILLING_DISABLED: the project's billing is off; like an account out of credit.
  { code: "BILLING_DISABLED", kind: "quotaExhausted", retryable: true, reason: "billing_disabled" },
  // 400 FAILED_PRECONDITION "Gemini API free tier is not available in your country. Please enable
  // billing": depends on where the caller is and on the project's billing, not on the key being
  // bad, so the key is not blamed; a key from a billed project may succeed.
  {
    status: 400,
    type: "FAILED_PRECONDITION",
    kind: "requestError",
    retryable: true,
    reason: "failed_precondition",
  },
  // 400 INVALID_ARGUMENT (no key reason): a typo or missing field in the request.
  { status: 400, kind: "requestError", retryable: false, reason: "invalid_argument" },
  // 401 UNAUTHENTICATED: no usable credential.
  { status: 401, kind: "invalidKey", retryable: true, reason: "unauthenticated" },
  // Decision: 403 PERMISSION_DENIED without a key-rejecting ErrorInfo is about the resource (a tuned
  // model or file this project cannot read): requestError, the key is not blamed; retryable because
  // a key from a project with access may succeed.
  { status: 403, kind: "requestError", retryable: true, reason: "permission_denied" },
  { status: 404, kind: "requestError", retryable: false, reason: "not_found" },
  // 429 RESOURCE_EXHAUSTED with a per-day QuotaFailure (GenerateRequestsPerDayPerProjectPerModel…):
  // the project's daily quota is spent; nothing helps before midnight Pacific time.
  {
    status: 429,
    code: PER_DAY_QUOTA,
    kind: "quotaExhausted",
    retryable: true,
    reason: "daily_quota_exceeded",
    until: untilPacificMidnight,
  },
  // 429 RESOURCE_EXHAUSTED per minute (or unspecified): wait RetryInfo.retryDelay.
  {
    status: 429,
    kind: "rateLimited",
    retryable: true,
    reason: "resource_exhausted",
    until: untilRateLimitLifts,
  },
  // 500 INTERNAL: an unexpected error on Google's side.
  { status: 500, kind: "serverError", retryable: true, reason: "internal" },
  // 503 UNAVAILABLE "The model is overloaded. Please try again later." (or ErrorInfo
  // MODEL_CAPACITY_EXHAUSTED): Google lacks capacity for everyone, not this key's fault.
  ...[{ code: "MODEL_CAPACITY_EXHAUSTED" }, { message: /overloaded/i }].map((match): Rule => ({
    status: 503,
    ...match,
    kind: "providerOverloaded",
    retryable: true,
    reason: "model_overloaded",
  })),
  { status: 503, kind: "serverError", retryable: true, reason: "unavailable" },
  // Decision: 504 DEADLINE_EXCEEDED is a serverError, not a networkError: Google answered (the
  // transport worked) but could not finish in time, usually for a large prompt. Both count the same
  // towards Degraded; the reason tells them apart.
  { status: 504, kind: "serverError", retryable: true, reason: "deadline_exceeded" },
];

function detailType(detail: unknown): string {
  return stringAt(detail, "@type") ?? "";
}

/** protobuf Duration as JSON: "37s" / "1.5s", or (some renderings) `{seconds, nanos}`. */
function parseProtoDuration(value: unknown): number | undefined {
  if (typeof value === "string") return parseGoDuration(value);
  if (!isRecord(value)) return undefined;
  const seconds = Number(value["seconds"] ?? 0);
  const nanos = Number(value["nanos"] ?? 0);
  const ms = seconds * 1000 + nanos / 1e6;
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms) : undefined;
}

/** Gemini's body: `{"error":{"code","message","status","details":[…]}}`, sometimes wrapped in an array. */
function googleFacts(status: number, body: unknown): ErrorFacts {
  const parsed = parseBody(body);
  const error = recordAt(Array.isArray(parsed) ? parsed[0] : parsed, "error");
  if (!error) return { status, structured: false, codes: [] };
  const codes: string[] = [];
  let statedWaitMs: number | undefined;
  for (const detail of arrayAt(error, "details")) {
    const type = detailType(detail);
    if (type.endsWith("google.rpc.ErrorInfo")) {
      const reason = stringAt(detail, "reason");
      if (reason) codes.push(reason);
    } else if (type.endsWith("google.rpc.QuotaFailure")) {
      const perDay = arrayAt(detail, "violations").some((v) => /PerDay/i.test(stringAt(v, "quotaId") ?? ""));
      if (perDay) codes.push(PER_DAY_QUOTA);
    } else if (type.endsWith("google.rpc.RetryInfo")) {
      statedWaitMs = parseProtoDuration(isRecord(detail) ? detail["retryDelay"] : undefined);
    }
  }
  return compact({
    status,
    structured: true,
    type: stringAt(error, "status"),
    codes,
    message: stringAt(error, "message"),
    statedWaitMs,
  });
}

export const google = defineProfile({
  name: "google",
  defaultBaseURL: "https://generativelanguage.googleapis.com",
  // A header, never `?key=`: URLs end up in access logs and traces.
  authHeaders: (key) => ({ "x-goog-api-key": key }),
  authHeaderNames: ["x-goog-api-key"],
  // GET /v1beta/models lists models: proves the key and spends no tokens.
  probe: { method: "GET", path: "/v1beta/models", headers: { accept: "application/json" } },
  rules: GOOGLE_RULES,
  facts: googleFacts,
  // The Gemini API sends no rate-limit headers; its limits are only visible on 429s.
  rateLimitInfo: () => undefined,
  // RetryInfo.retryDelay in the body, else a retry-after header if a proxy added one.
  rateLimitDeadline: (headers, facts, nowMs) =>
    facts.statedWaitMs !== undefined ? nowMs + facts.statedWaitMs : retryAfterDeadline(headers, nowMs),
});
