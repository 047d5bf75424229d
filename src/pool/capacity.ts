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

interface KeyFigure {
  limit: number;
  remaining: number;
  roomAtMs: number;
}

/** The tighter of two readings of one key (configured window, provider headers); either may be missing. */
function tighter(a: KeyFigure | undefined, b: KeyFigure | undefined): KeyFigure | undefined {
  if (!a) return b;
  if (!b) return a;
  return {
    limit: Math.min(a.limit, b.limit),
    remaining: Math.min(a.remaining, b.remaining),
    roomAtMs: Math.max(a.roomAtMs, b.roomAtMs),
  };
}

function fromWindow(window: UsageWindow | undefined, now: number): KeyFigure | undefined {
  if (!window) return undefined;
  return {
    limit: window.limit,
    remaining: Math.max(0, window.limit - window.used(now)),
    roomAtMs: window.roomAt(now),
  };
}

/** The provider's last reading; a reading whose reset time passed means the key is full again. */
function fromHeaders(
  limit: number | undefined,
  remaining: number | undefined,
  resetAtMs: number | undefined,
  now: number,
): KeyFigure | undefined {
  if (remaining === undefined) return undefined;
  const expired = resetAtMs !== undefined && resetAtMs <= now;
  const left = expired ? (limit ?? remaining) : remaining;
  return {
    limit: limit ?? Math.max(left, remaining),
    remaining: left,
    roomAtMs: left > 0 ? now : (resetAtMs ?? now),
  };
}

function sum(figures: Array<KeyFigure | undefined>, now: number): CapacityFigure | undefined {
  let known = 0;
  let limit = 0;
  let remaining = 0;
  let roomAtMs = Number.POSITIVE_INFINITY;
  for (const f of figures) {
    if (!f) continue;
    known++;
    limit += f.limit;
    remaining += f.remaining;
    roomAtMs = Math.min(roomAtMs, f.remaining > 0 ? now : f.roomAtMs);
  }
  return known === 0 ? undefined : { limit, remaining, roomAtMs };
}

/**
 * Counts the keys in a usable state (Healthy, Degraded), with or without room right now; the
 * others are passed over. The request figure uses the per-minute window (requests per day are a
 * separate budget).
 */
export function poolCapacity(keys: Iterable<KeyRecord>, now: number): PoolCapacity {
  const requests: Array<KeyFigure | undefined> = [];
  const tokens: Array<KeyFigure | undefined> = [];
  let usableKeys = 0;
  for (const rec of keys) {
    if (!rec.isUsableState()) continue;
    usableKeys++;
    const rl = rec.rateLimit;
    const perMinute = rec.limits?.requestsPerMinute ? rec.windows.requests[0] : undefined;
    requests.push(
      tighter(
        fromWindow(perMinute, now),
        fromHeaders(rl?.limitRequests, rl?.remainingRequests, rl?.resetRequestsAtMs, now),
      ),
    );
    tokens.push(
      tighter(
        fromWindow(rec.windows.tokens, now),
        fromHeaders(rl?.limitTokens, rl?.remainingTokens, rl?.resetTokensAtMs, now),
      ),
    );
  }
  return { usableKeys, requests: sum(requests, now), tokens: sum(tokens, now) };
}
