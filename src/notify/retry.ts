/**
 * When a failed delivery is tried again, and after how long. Which answers are worth a retry is
 * data, each entry with its reason (as undici's RetryHandler keeps `statusCodes`); the delay is
 * equal-jitter exponential backoff (as src/controller/backoff.ts), or the receiver's Retry-After.
 * Pure: time comes in as arguments.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Ceiling of the first retry's delay; it doubles per retry. */
  baseDelayMs: number;
  /** Largest delay, Retry-After included. */
  maxDelayMs: number;
  /** How long one attempt may take, answer body included. */
  timeoutMs: number;
}

/** 6 attempts over about half a minute (ceilings 1, 2, 4, 8, 16 s), 10 s each at most. */
export const DEFAULT_RETRY: Readonly<RetryPolicy> = {
  attempts: 6,
  baseDelayMs: 1_000,
  maxDelayMs: 60_000,
  timeoutMs: 10_000,
};

/**
 * HTTP answers that are retried. Every other status below 200 or from 300 up is a permanent
 * failure: the receiver understood the request and refused it (404: the webhook was deleted;
 * 401/403: a wrong token or signing key; 400: it cannot read the body; 3xx: redirects are not
 * followed, so a signed body never goes to a host it was not meant for).
 */
export const RETRYABLE_STATUSES: readonly { status: number | "5xx"; why: string }[] = [
  { status: 408, why: "Request Timeout: the receiver gave up waiting for the request; a new one may pass" },
  {
    status: 429,
    why: "Too Many Requests: the receiver rate limits us (Slack: 1 message/s); Retry-After says when",
  },
  {
    status: "5xx",
    why: "server errors (500, 502 from a proxy, 503 during a deploy, 504): the receiver's trouble",
  },
];
// Network errors (connection refused or reset, DNS, TLS) and attempts over timeoutMs are retried
// too: nothing reached the receiver, or nothing came back.

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.some((rule) =>
    rule.status === "5xx" ? status >= 500 && status <= 599 : rule.status === status,
  );
}

/**
 * The delay before retry number `retry` (0 for the first retry): drawn from [ceiling / 2,
 * ceiling], the ceiling being baseDelayMs doubled `retry` times, at most maxDelayMs.
 * `random` returns a number in [0, 1); tests pin it.
 */
export function backoffDelay(
  retry: number,
  policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">,
  random: () => number = Math.random,
): number {
  // 2 ** retry overflows to Infinity for a huge retry count; Math.min still caps it.
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * A Retry-After header in milliseconds: delay-seconds ("30") or an HTTP date, taken against
 * `nowMs`. Undefined when absent or unreadable; never negative.
 */
export function retryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (header == null) return undefined;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // An HTTP date starts with the day's name (IMF-fixdate and the two obsolete forms of RFC 9110).
  const at = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The wait before the next attempt: the receiver's Retry-After when it sent one, else backoff; at most maxDelayMs. */
export function retryDelay(
  retry: number,
  policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">,
  retryAfter: number | undefined,
  random: () => number = Math.random,
): number {
  if (retryAfter !== undefined) return Math.min(policy.maxDelayMs, retryAfter);
  return backoffDelay(retry, policy, random);
}
