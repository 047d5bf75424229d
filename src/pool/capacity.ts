/**
 * What a pool has left: the sum over its usable keys of what each key's configured limits and
 * the provider's last rate-limit headers allow. The proxy turns it into OpenAI-style
 * x-ratelimit-* headers, so SDKs and callers see the pool's capacity, not one key's.
 */
import type { KeyRecord } from "./key.ts";
import type { UsageWindow } from "./window.ts";

/** One dimension (requests or tokens) of a pool's capacity. */
export interface CapacityFigure {
  /** Sum of the keys' per-minute limits. */
  limit: number;
  /** Sum of what the keys have left now. */
  remaining: number;
  /** When the pool has room for one more unit: now when `remaining` > 0 (epoch ms). */
  roomAtMs: number;
}

export interface PoolCapacity {
  usableKeys: number;
  /**
   * Sums over the usable keys whose limits are known (configured, or seen in the provider's
   * headers): a conservative figure while some keys are unknown. Undefined when none is known.
   */
  requests: CapacityFigure | undefined;
  tokens: CapacityFigure | undefined;
}

/**
 * Running sums of one dimension over the keys, filled in place: poolCapacity runs on every proxied
 * call, and an object per key and reading made it the proxy's largest allocation of its own
 * (bench/proxy, heap sampling).
 */
class FigureSum {
  known = 0;
  limit = 0;
  remaining = 0;
  roomAtMs = Number.POSITIVE_INFINITY;

  /**
   * Adds one key: the tighter of its configured window and the provider's last reading (either
   * may be missing; a key with neither is not counted).
   */
  add(
    window: UsageWindow | undefined,
    headerLimit: number | undefined,
    headerRemaining: number | undefined,
    resetAtMs: number | undefined,
    now: number,
  ): void {
    if (!window && headerRemaining === undefined) return;
    // Each reading there is narrows the figure.
    let limit = Number.POSITIVE_INFINITY;
    let remaining = Number.POSITIVE_INFINITY;
    let roomAtMs = Number.NEGATIVE_INFINITY;
    if (window) {
      limit = window.limit;
      remaining = Math.max(0, window.limit - window.used(now));
      roomAtMs = window.roomAt(now);
    }
    if (headerRemaining !== undefined) {
      // A reading whose reset time passed means the key is full again.
      const expired = resetAtMs !== undefined && resetAtMs <= now;
      const left = expired ? (headerLimit ?? headerRemaining) : headerRemaining;
      limit = Math.min(limit, headerLimit ?? Math.max(left, headerRemaining));
      remaining = Math.min(remaining, left);
      roomAtMs = Math.max(roomAtMs, left > 0 ? now : (resetAtMs ?? now));
    }
    this.known++;
    this.limit += limit;
    this.remaining += remaining;
    this.roomAtMs = Math.min(this.roomAtMs, remaining > 0 ? now : roomAtMs);
  }

  figure(): CapacityFigure | undefined {
    return this.known === 0
      ? undefined
      : { limit: this.limit, remaining: this.remaining, roomAtMs: this.roomAtMs };
  }
}

/**
 * Counts the keys in a usable state (Healthy, Degraded), with or without room right now; the
 * others are passed over. The request figure uses the per-minute window (requests per day are a
 * separate budget).
 */
export function poolCapacity(keys: Iterable<KeyRecord>, now: number): PoolCapacity {
  const requests = new FigureSum();
  const tokens = new FigureSum();
  let usableKeys = 0;
  for (const rec of keys) {
    if (!rec.isUsableState()) continue;
    usableKeys++;
    const rl = rec.rateLimit;
    const perMinute = rec.limits?.requestsPerMinute ? rec.windows.requests[0] : undefined;
    requests.add(perMinute, rl?.limitRequests, rl?.remainingRequests, rl?.resetRequestsAtMs, now);
    tokens.add(rec.windows.tokens, rl?.limitTokens, rl?.remainingTokens, rl?.resetTokensAtMs, now);
  }
  return { usableKeys, requests: requests.figure(), tokens: tokens.figure() };
}
