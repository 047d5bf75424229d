/**
 * The machinery every provider profile shares: classification rules as data, the generic HTTP
 * fallback table, and `defineProfile`, which turns a provider's tables and header parsers into a
 * `ProviderProfile`. Provider files hold only data and small parsers.
 */
import type { OutcomeKind, RateLimitInfo } from "../pool/outcome.ts";
import { type ErrorFacts, parseBody } from "./errors-body.ts";
import type {
  Classification,
  HeaderSource,
  ProbeRequest,
  ProviderName,
  ProviderProfile,
  ProviderResponse,
} from "./types.ts";

/** What a rule's `until` may look at to say until when the key should rest. */
export interface UntilContext {
  facts: ErrorFacts;
  headers: HeaderSource | undefined;
  nowMs: number;
  /** The provider's own reading of when a rate limit lifts (retry headers, reset headers, body hints). */
  rateLimitDeadline(): number | undefined;
}

/** Computes `untilMs` for an outcome; undefined means the provider did not say. */
export type Until = (ctx: UntilContext) => number | undefined;

/**
 * One row of a classification table. Every field given must match; the first matching row wins.
 * - `status`: a code, a list of codes, or a class ("4xx" is 400–499, "5xx" is 500 and above)
 * - `type`: the error category exactly; `code`: any of these among the body's codes
 * - `message`: a pattern the message must match; `structured`: whether the body was the provider's JSON
 */
export interface Rule {
  status?: number | readonly number[] | "4xx" | "5xx";
  type?: string;
  code?: string | readonly string[];
  message?: RegExp;
  structured?: boolean;
  kind: OutcomeKind;
  /** Could another key, or a later retry, succeed? */
  retryable: boolean;
  /** Stable machine-readable reason; omitted means `http_<status>`. Never derived from the body's text. */
  reason?: string;
  /** Until when the key should rest (rateLimited / quotaExhausted). */
  until?: Until;
}

/** The deadline the provider's rate-limit reading gives (retry headers, reset headers, body hints). */
export const untilRateLimitLifts: Until = (ctx) => ctx.rateLimitDeadline();

/**
 * Generic HTTP semantics (RFC 9110 §15, RFC 6585 §4), used when no provider row matches: any provider
 * and any OpenAI-compatible server gets a sensible answer for a status its table does not name.
 */
export const HTTP_FALLBACK_RULES: readonly Rule[] = [
  // 401: the credentials were refused. Every provider we know answers a bad key this way.
  { status: 401, kind: "invalidKey", retryable: true, reason: "unauthorized" },
  // 402 Payment Required: the account behind the key has no credit (DeepSeek, Mistral, Gemini prepay).
  { status: 402, kind: "quotaExhausted", retryable: true, reason: "payment_required" },
  // 408: the server gave up waiting for our request: a transport problem, like a timeout.
  { status: 408, kind: "networkError", retryable: true, reason: "request_timeout" },
  // 429: too many requests for this key (or its account).
  { status: 429, kind: "rateLimited", retryable: true, reason: "rate_limited", until: untilRateLimitLifts },
  // Any other 4xx is about the request itself and says nothing about the key.
  { status: "4xx", kind: "requestError", retryable: false },
  // Any 5xx (and anything above) is the server's trouble with this call.
  { status: "5xx", kind: "serverError", retryable: true },
  // 1xx/3xx reaching us mean a wrong base URL or an unexpected redirect: the request, not the key.
  { kind: "requestError", retryable: false },
];

function statusMatches(rule: Rule["status"], status: number): boolean {
  if (rule === undefined) return true;
  if (rule === "4xx") return status >= 400 && status < 500;
  if (rule === "5xx") return status >= 500;
  return typeof rule === "number" ? rule === status : rule.includes(status);
}

/** Does `rule` describe `facts`? */
export function ruleMatches(rule: Rule, facts: ErrorFacts): boolean {
  if (!statusMatches(rule.status, facts.status)) return false;
  if (rule.type !== undefined && rule.type !== facts.type) return false;
  if (rule.structured !== undefined && rule.structured !== facts.structured) return false;
  if (rule.message !== undefined && !(facts.message !== undefined && rule.message.test(facts.message)))
    return false;
  if (rule.code !== undefined) {
    const wanted = typeof rule.code === "string" ? [rule.code] : rule.code;
    if (!wanted.some((code) => facts.codes.includes(code))) return false;
  }
  return true;
}

/** The first row of `rules` matching `facts`, else the generic HTTP row. */
export function findRule(rules: readonly Rule[], facts: ErrorFacts): Rule {
  const rule =
    rules.find((r) => ruleMatches(r, facts)) ?? HTTP_FALLBACK_RULES.find((r) => ruleMatches(r, facts));
  // The fallback table ends with a catch-all row, so this cannot be undefined.
  return rule as Rule;
}

/** Everything provider-specific a profile is made of. */
export interface ProfileSpec {
  name: ProviderName;
  defaultBaseURL: string;
  authHeaders(key: string): Record<string, string>;
  authHeaderNames: readonly string[];
  probe: ProbeRequest;
  /** The provider's classification table, first match wins; unmatched answers use HTTP_FALLBACK_RULES. */
  rules: readonly Rule[];
  /** Reads the error body into facts the table matches on. */
  facts(status: number, body: unknown): ErrorFacts;
  rateLimitInfo(headers: HeaderSource | undefined, nowMs: number): RateLimitInfo | undefined;
  /** When a rate-limited key may be used again, from everything the answer says; undefined if it says nothing. */
  rateLimitDeadline(headers: HeaderSource | undefined, facts: ErrorFacts, nowMs: number): number | undefined;
}

/** Classifies one HTTP answer with `spec`'s tables. */
export function classifyResponse(
  spec: ProfileSpec,
  response: ProviderResponse,
  nowMs: number,
): Classification {
  const { status, headers } = response;
  const rateLimit = spec.rateLimitInfo(headers, nowMs);
  const common = rateLimit ? { statusCode: status, rateLimit } : { statusCode: status };
  if (status >= 200 && status < 300) return { kind: "success", retryable: false, ...common };

  const facts = spec.facts(status, parseBody(response.body));
  const rule = findRule(spec.rules, facts);
  const untilMs = rule.until?.({
    facts,
    headers,
    nowMs,
    rateLimitDeadline: () => spec.rateLimitDeadline(headers, facts, nowMs),
  });
  const classification: Classification = {
    kind: rule.kind,
    retryable: rule.retryable,
    reason: rule.reason ?? `http_${status}`,
    ...common,
  };
  // A deadline already past (clock skew, a stale reset header) means "usable now".
  if (untilMs !== undefined && Number.isFinite(untilMs)) classification.untilMs = Math.max(untilMs, nowMs);
  return classification;
}

/** Builds a `ProviderProfile` from its data. */
export function defineProfile(spec: ProfileSpec): ProviderProfile {
  return {
    name: spec.name,
    defaultBaseURL: spec.defaultBaseURL,
    authHeaders: (key) => spec.authHeaders(key),
    authHeaderNames: spec.authHeaderNames,
    probe: spec.probe,
    classify: (response, nowMs) => classifyResponse(spec, response, nowMs),
    rateLimitInfo: (headers, nowMs) => spec.rateLimitInfo(headers, nowMs),
  };
}
