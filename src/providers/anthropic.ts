/**
 * Anthropic (api.anthropic.com): `x-api-key` auth with a pinned `anthropic-version`, the
 * `anthropic-ratelimit-*` header families whose resets are RFC 3339 timestamps, and its error types.
 */
import type { RateLimitInfo } from "../pool/outcome.ts";
import { startOfNextUtcMonth } from "./calendar.ts";
import { type ErrorFacts, openAIStyleFacts, parseBody, recordAt, stringAt } from "./errors-body.ts";
import { getHeader, parseCount, parseRfc3339, retryAfterDeadline } from "./headers.ts";
import { defineProfile, type Rule, type Until, untilRateLimitLifts } from "./profile.ts";
import { compactWindow, type LimitWindow, pickRateLimitDeadline, toRateLimitInfo } from "./rate-limit.ts";
import type { HeaderSource } from "./types.ts";

/** The only generally available API version; requests without it are refused. */
export const ANTHROPIC_VERSION = "2023-06-01";

/** "You will regain access on 2026-04-01 at 00:00 UTC." in a spend-limit message. */
const REGAIN_ACCESS = /regain access on (\d{4})-(\d{2})-(\d{2}) at (\d{2}):(\d{2}) UTC/i;

/** The date a usage-limit message says access resumes. */
const untilRegainAccess: Until = ({ facts }) => {
  const m = facts.message?.match(REGAIN_ACCESS);
  if (!m) return undefined;
  const [, y, mo, d, h, mi] = m;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi));
};

/** Monthly spend caps of a usage tier lift at 00:00 UTC on the first day of the next month. */
const untilNextUtcMonth: Until = ({ nowMs }) => startOfNextUtcMonth(nowMs);

/**
 * Anthropic's answers, first match wins; anything unmatched falls through to HTTP_FALLBACK_RULES.
 * Sources:
 * - https://docs.claude.com/en/api/errors (status → error.type table, 529, error shapes)
 * - https://docs.claude.com/en/api/rate-limits (429, retry-after, `anthropic-ratelimit-*` headers, spend limits)
 */
export const ANTHROPIC_RULES: readonly Rule[] = [
  // 401 authentication_error: "There's an issue with your API key."
  { status: 401, kind: "invalidKey", retryable: true, reason: "authentication_error" },
  // 403 permission_error: "Your API key does not have permission to use the specified resource."
  // Decision: invalidKey. The refusal is about the key, and a key that cannot do what the pool is
  // used for should leave rotation until its Secret (or its workspace's permissions) change.
  { status: 403, kind: "invalidKey", retryable: true, reason: "permission_error" },
  // 402 billing_error: a billing or payment problem on the account.
  { status: 402, kind: "quotaExhausted", retryable: true, reason: "billing_error" },
  // 400 "Your credit balance is too low to access the Anthropic API…": prepaid credits are gone.
  {
    status: 400,
    message: /credit balance is too low/i,
    kind: "quotaExhausted",
    retryable: true,
    reason: "credit_balance_too_low",
  },
  // 400 "You have reached your specified (workspace) API usage limits. You will regain access on
  // <date> at <time> UTC.": a spend limit the organization set; the message says when it lifts.
  {
    status: 400,
    message: /reached your specified (?:workspace )?API usage limits/i,
    kind: "quotaExhausted",
    retryable: true,
    reason: "api_usage_limit_reached",
    until: untilRegainAccess,
  },
  // 429 with error.details.error_code enforced_spend_limit_reached: the usage tier's monthly spend cap;
  // no retry-after is sent, access resumes at the start of the next month (UTC).
  {
    status: 429,
    code: "enforced_spend_limit_reached",
    kind: "quotaExhausted",
    retryable: true,
    reason: "enforced_spend_limit_reached",
    until: untilNextUtcMonth,
  },
  // 429 rate_limit_error: requests, input or output tokens per minute, or acceleration limits.
  {
    status: 429,
    kind: "rateLimited",
    retryable: true,
    reason: "rate_limit_error",
    until: untilRateLimitLifts,
  },
  // 529 overloaded_error: "The API is temporarily overloaded", across all users: not this key's fault.
  { status: 529, kind: "providerOverloaded", retryable: true, reason: "overloaded_error" },
  // 413 request_too_large (from Cloudflare, before the API), 404 not_found_error, other 400s.
  { status: 413, kind: "requestError", retryable: false, reason: "request_too_large" },
  { status: 404, kind: "requestError", retryable: false, reason: "not_found_error" },
  { status: 400, kind: "requestError", retryable: false, reason: "invalid_request_error" },
  // 500 api_error: "An unexpected error has occurred internal to Anthropic's systems."
  { status: 500, kind: "serverError", retryable: true, reason: "api_error" },
  // 504 timeout_error: the request timed out at Anthropic's gateway.
  { status: 504, type: "timeout_error", kind: "serverError", retryable: true, reason: "timeout_error" },
];

/** Anthropic's body: `{"type":"error","error":{"type","message","details"?:{"error_code"}}}`. */
function anthropicFacts(status: number, body: unknown): ErrorFacts {
  const facts = openAIStyleFacts(status, body);
  const errorCode = stringAt(recordAt(recordAt(parseBody(body), "error"), "details"), "error_code");
  return errorCode === undefined ? facts : { ...facts, codes: [...facts.codes, errorCode] };
}

const FAMILIES = ["requests", "tokens", "input-tokens", "output-tokens"] as const;
type Family = (typeof FAMILIES)[number];

function familyWindow(headers: HeaderSource | undefined, family: Family): LimitWindow {
  const get = (field: string) => getHeader(headers, `anthropic-ratelimit-${family}-${field}`);
  return compactWindow({
    limit: parseCount(get("limit")),
    remaining: parseCount(get("remaining")),
    resetAtMs: parseRfc3339(get("reset")),
  });
}

/** How full a window is: remaining / limit (unknown counts as full). */
function headroom(window: LimitWindow): number {
  if (window.remaining === undefined) return 1;
  return window.limit ? window.remaining / window.limit : window.remaining === 0 ? 0 : 1;
}

/**
 * Requests come from `anthropic-ratelimit-requests-*`. Tokens come from `anthropic-ratelimit-tokens-*`
 * (the most restrictive token limit in effect); without it, from whichever of the input-token and
 * output-token windows has the least headroom left.
 */
function anthropicRateLimitInfo(headers: HeaderSource | undefined): RateLimitInfo | undefined {
  const requests = familyWindow(headers, "requests");
  let tokens = familyWindow(headers, "tokens");
  if (Object.keys(tokens).length === 0) {
    const input = familyWindow(headers, "input-tokens");
    const output = familyWindow(headers, "output-tokens");
    tokens = headroom(output) < headroom(input) ? output : input;
  }
  return toRateLimitInfo(requests, tokens);
}

export const anthropic = defineProfile({
  name: "anthropic",
  defaultBaseURL: "https://api.anthropic.com",
  authHeaders: (key) => ({ "x-api-key": key, "anthropic-version": ANTHROPIC_VERSION }),
  authHeaderNames: ["x-api-key", "anthropic-version"],
  // GET /v1/models lists models: proves the key and spends no tokens.
  probe: {
    method: "GET",
    path: "/v1/models",
    headers: { accept: "application/json", "anthropic-version": ANTHROPIC_VERSION },
  },
  rules: ANTHROPIC_RULES,
  facts: anthropicFacts,
  rateLimitInfo: (headers) => anthropicRateLimitInfo(headers),
  // retry-after first; else the resets of exhausted windows among all four families.
  rateLimitDeadline: (headers, _facts, nowMs) =>
    pickRateLimitDeadline(
      retryAfterDeadline(headers, nowMs),
      FAMILIES.map((family) => familyWindow(headers, family)),
    ),
});
