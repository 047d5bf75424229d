/**
 * The controller's one retry backoff: equal-jitter exponential (as client-go's workqueue and
 * reflector back off, and as AWS's "Exponential Backoff And Jitter" calls it). The ceiling doubles
 * per failure from `baseMs` up to `maxMs`; the delay is drawn from [ceiling / 2, ceiling], so
 * replicas and pools that failed together do not retry together, and a delay never drops below
 * half the ceiling (a retry storm cannot creep back).
 *
 * The one backoff of the process: the work queue (`addRateLimited`), the status writer's retries
 * and the watcher's (watch/retry.ts, which adds only a reset after a stretch of health) use it.
 */

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay. */
  baseMs: number;
  /** Largest ceiling: the delay stops growing here. */
  maxMs: number;
}

/**
 * The delay before retry number `retry` (0 for the first retry after one failure).
 * `random` returns a number in [0, 1); tests pin it.
 */
export function backoffDelay(
  retry: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(retry, policy);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** The ceiling of retry number `retry`: baseMs doubled `retry` times, at most maxMs. */
export function backoffCeiling(retry: number, policy: BackoffPolicy): number {
  // 2 ** retry overflows to Infinity for a huge retry count; Math.min still caps it.
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, retry));
}
