/**
 * Mistral AI (api.mistral.ai): an OpenAI-like API with Bearer auth and its own rate-limit headers.
 */
import { openAIStyleFacts } from "./errors-body.ts";
import { getHeader, parseCount, retryAfterDeadline, secondsFromNow } from "./headers.ts";
import { defineProfile, type Rule, untilRateLimitLifts } from "./profile.ts";
import { compactWindow, type LimitWindow, pickRateLimitDeadline, toRateLimitInfo } from "./rate-limit.ts";
import type { HeaderSource } from "./types.ts";

/**
 * Mistral's answers, first match wins; anything unmatched falls through to HTTP_FALLBACK_RULES
 * (400/404/422 → requestError, 5xx → serverError).
 * Sources:
 * - https://docs.mistral.ai/resources/error-glossary (401, 402, 403, 429, 5xx; body `{"object":"error",…}`)
 * - https://docs.mistral.ai/deployment/laplateforme/tier/ (limits per workspace: requests/s, tokens/min and /month)
 */
export const MISTRAL_RULES: readonly Rule[] = [
  // 401: "The API key is missing, invalid, or expired."
  { status: 401, kind: "invalidKey", retryable: true, reason: "unauthorized" },
  // 402: prepaid credit at zero, a spending limit reached, or a failed invoice payment.
  { status: 402, kind: "quotaExhausted", retryable: true, reason: "payment_required" },
  // Decision: 403 "a model not available on your subscription tier" or workspace permissions: about
  // the model or resource asked for, not a broken key, so requestError; retryable because another
  // workspace's key may have access.
  { status: 403, kind: "requestError", retryable: true, reason: "permission_denied" },
  // 429 "Service tier capacity exceeded for this model." (code 3505): Mistral lacks capacity for the
  // tier, for everyone on it: the provider's trouble, not this key's rate limit.
  ...[{ code: "3505" }, { message: /capacity exceeded/i }].map((match): Rule => ({
    status: 429,
    ...match,
    kind: "providerOverloaded",
    retryable: true,
    reason: "service_tier_capacity_exceeded",
  })),
  // 429 "Rate limit exceeded" (type rate_limited, code 1300): the workspace's requests/s or tokens/min.
  { status: 429, kind: "rateLimited", retryable: true, reason: "rate_limited", until: untilRateLimitLifts },
];

/**
 * Mistral's docs describe its limits but not its headers; these are the names seen on its answers:
 * - per-minute tokens: `x-ratelimit-{limit,remaining}-tokens-minute` (current), or the older
 *   `x-ratelimitbysize-{limit,remaining}-minute` / `ratelimitbysize-{limit,remaining}`, with
 *   `ratelimitbysize-reset` in seconds from now
 * - per-minute requests: `x-ratelimit-{limit,remaining}-req-minute`
 */
function mistralWindows(
  headers: HeaderSource | undefined,
  nowMs: number,
): { requests: LimitWindow; tokens: LimitWindow } {
  const first = (...names: string[]) =>
    parseCount(names.map((n) => getHeader(headers, n)).find((v) => v !== undefined));
  return {
    requests: compactWindow({
      limit: first("x-ratelimit-limit-req-minute"),
      remaining: first("x-ratelimit-remaining-req-minute"),
    }),
    tokens: compactWindow({
      limit: first(
        "x-ratelimit-limit-tokens-minute",
        "x-ratelimitbysize-limit-minute",
        "ratelimitbysize-limit",
      ),
      remaining: first(
        "x-ratelimit-remaining-tokens-minute",
        "x-ratelimitbysize-remaining-minute",
        "ratelimitbysize-remaining",
      ),
      resetAtMs: secondsFromNow(getHeader(headers, "ratelimitbysize-reset"), nowMs),
    }),
  };
}

export const mistral = defineProfile({
  name: "mistral",
  defaultBaseURL: "https://api.mistral.ai",
  authHeaders: (key) => ({ authorization: `Bearer ${key}` }),
  authHeaderNames: ["authorization"],
  // GET /v1/models lists models: proves the key and spends no tokens.
  probe: { method: "GET", path: "/v1/models", headers: { accept: "application/json" } },
  rules: MISTRAL_RULES,
  facts: openAIStyleFacts,
  rateLimitInfo: (headers, nowMs) => {
    const { requests, tokens } = mistralWindows(headers, nowMs);
    return toRateLimitInfo(requests, tokens);
  },
  // retry-after (which the docs tell clients to honour) first; else the token window's reset.
  rateLimitDeadline: (headers, _facts, nowMs) => {
    const { requests, tokens } = mistralWindows(headers, nowMs);
    return pickRateLimitDeadline(retryAfterDeadline(headers, nowMs), [requests, tokens]);
  },
});
