/**
 * OpenAI (api.openai.com): Bearer auth, `x-ratelimit-*` headers whose resets are Go-style durations,
 * and the error codes OpenAI documents.
 */
import { retryAfterDeadline } from "./headers.ts";
import { openAIStyleFacts } from "./errors-body.ts";
import { defineProfile, type Rule, untilRateLimitLifts } from "./profile.ts";
import { durationFromNow, openAIStyleWindows, pickRateLimitDeadline, toRateLimitInfo } from "./rate-limit.ts";

/**
 * 429 `error.code`s that mean money or a spend/usage cap ran out: waiting seconds does not help, only
 * credits, a raised limit or the monthly reset do. OpenAI says to inspect `error.code`, since
 * `error.type` may be `insufficient_quota` for all of them.
 */
const QUOTA_CODES = [
  "insufficient_quota",
  "credit_balance_exhausted",
  "organization_spend_limit_exceeded",
  "project_spend_limit_exceeded",
  "organization_usage_limit_exceeded",
] as const;

/**
 * OpenAI's answers, first match wins; anything unmatched falls through to HTTP_FALLBACK_RULES
 * (400/404/409/413/422 → requestError, other 5xx → serverError, 408 → networkError).
 * Sources:
 * - https://platform.openai.com/docs/guides/error-codes (401 variants, 403 country, 429 rate vs quota, 500, 503)
 * - https://platform.openai.com/docs/guides/rate-limits (429 meanings, `x-ratelimit-*` headers)
 */
export const OPENAI_RULES: readonly Rule[] = [
  // 401 "You have insufficient permissions for this operation. Missing scopes: …": a restricted key
  // without the scope this endpoint needs.
  { status: 401, message: /missing scopes/i, kind: "invalidKey", retryable: true, reason: "missing_scopes" },
  // 401 "Incorrect API key provided": revoked, deleted or mistyped.
  { status: 401, code: "invalid_api_key", kind: "invalidKey", retryable: true, reason: "invalid_api_key" },
  // 401 "Invalid Authentication", "You must be a member of an organization", "IP not authorized".
  { status: 401, kind: "invalidKey", retryable: true, reason: "invalid_authentication" },
  // 403 "Country, region, or territory not supported": the CALLER's network location is refused.
  // Every key fails the same way from there, so the key is not blamed and failing over is pointless.
  ...[
    { code: "unsupported_country_region_territory" },
    { message: /country, region,? or territory not supported/i },
  ].map((match): Rule => ({
    status: 403,
    ...match,
    kind: "requestError",
    retryable: false,
    reason: "unsupported_country_region_territory",
  })),
  // 403 "Project `proj_…` does not have access to model `…`" (code model_not_found): this key's
  // project lacks that model but works for others; another project's key may have it.
  {
    status: 403,
    code: "model_not_found",
    kind: "requestError",
    retryable: true,
    reason: "model_access_denied",
  },
  // Decision: any other 403 that OpenAI itself answered (its JSON error body) refuses the key's
  // organization or project (disabled org, project without API access): the key is unusable, so invalidKey.
  { status: 403, structured: true, kind: "invalidKey", retryable: true, reason: "permission_denied" },
  // (A 403 without OpenAI's JSON body comes from something in between, such as a CDN/WAF or a
  // corporate proxy, and falls through to requestError http_403.)
  // 429 "You exceeded your current quota, please check your plan and billing details" and its siblings.
  ...QUOTA_CODES.map((code): Rule => ({
    status: 429,
    code,
    kind: "quotaExhausted",
    retryable: true,
    reason: code,
  })),
  {
    status: 429,
    type: "insufficient_quota",
    kind: "quotaExhausted",
    retryable: true,
    reason: "insufficient_quota",
  },
  // 429 slow_down: traffic ramped up too fast; a short wait helps.
  {
    status: 429,
    code: "slow_down",
    kind: "rateLimited",
    retryable: true,
    reason: "slow_down",
    until: untilRateLimitLifts,
  },
  // 429 "Rate limit reached for requests/tokens" (rate_limit_exceeded), and any other 429.
  {
    status: 429,
    kind: "rateLimited",
    retryable: true,
    reason: "rate_limit_exceeded",
    until: untilRateLimitLifts,
  },
  // 503 "The engine is currently overloaded" / server_is_overloaded: OpenAI as a whole lacks capacity,
  // not this key: retry elsewhere without counting it against the key.
  ...[{ code: "server_is_overloaded" }, { message: /overloaded/i }].map((match): Rule => ({
    status: 503,
    ...match,
    kind: "providerOverloaded",
    retryable: true,
    reason: "server_overloaded",
  })),
  // 500 "The server had an error while processing your request", 502, other 503: the fallback's serverError.
];

export const openai = defineProfile({
  name: "openai",
  defaultBaseURL: "https://api.openai.com",
  authHeaders: (key) => ({ authorization: `Bearer ${key}` }),
  authHeaderNames: ["authorization"],
  // GET /v1/models lists models: proves the key and spends no tokens.
  probe: { method: "GET", path: "/v1/models", headers: { accept: "application/json" } },
  rules: OPENAI_RULES,
  facts: openAIStyleFacts,
  rateLimitInfo: (headers, nowMs) => {
    const { requests, tokens } = openAIStyleWindows(headers, nowMs, durationFromNow);
    return toRateLimitInfo(requests, tokens);
  },
  rateLimitDeadline: (headers, _facts, nowMs) => {
    const { requests, tokens } = openAIStyleWindows(headers, nowMs, durationFromNow);
    return pickRateLimitDeadline(retryAfterDeadline(headers, nowMs), [requests, tokens]);
  },
});
