/**
 * Sliding-window usage counters for client-side limits. Both kinds never let more than `limit`
 * units into any window of `windowMs`: the exact one remembers each event; the bucketed one
 * (for large limits, where remembering each event would cost memory) counts in buckets and
 * errs on the safe side by including the partly expired oldest bucket.
 */

export interface UsageWindow {
  readonly limit: number;
  /** Records `amount` units used at `now`. */
  add(now: number, amount?: number): void;
  /** Units used in the window ending at `now`. */
  used(now: number): number;
  /** Epoch ms from which one more unit fits (now when it already does). */
  roomAt(now: number): number;
  /**
   * Of the units in the window at `now`, how many will have left it by `later` (>= now), from
   * what is recorded: no units added meanwhile. Changes nothing (forecasts ask ahead).
   */
  leavingBy(now: number, later: number): number;
}

/** Largest limit tracked event by event (a ring of timestamps, 8 bytes each). */
const EXACT_MAX = 4096;
const BUCKETS = 120;

export function createWindow(limit: number, windowMs: number, unitSized = true): UsageWindow {
  return unitSized && limit <= EXACT_MAX
    ? new ExactWindow(limit, windowMs)
    : new BucketedWindow(limit, windowMs);
}

/**
 * Remembers the last `limit` event times in a ring, oldest to newest: exact for
 * requests-per-window limits. Times are kept non-decreasing, so `used` is a binary search.
 */
export class ExactWindow implements UsageWindow {
  readonly limit: number;
  readonly #windowMs: number;
  readonly #times: Float64Array;
  #next = 0;
  #count = 0;
  #last = Number.NEGATIVE_INFINITY;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.#windowMs = windowMs;
    this.#times = new Float64Array(limit);
  }

  add(now: number, amount = 1): void {
    // A clock that steps back must not break the ordering the search relies on.
    const t = Math.max(now, this.#last);
    this.#last = t;
    for (let i = 0; i < amount; i++) {
      this.#times[this.#next] = t;
      this.#next = (this.#next + 1) % this.limit;
      if (this.#count < this.limit) this.#count++;
    }
  }

  /** The i-th oldest remembered time. */
  #at(i: number): number {
    const oldest = this.#count < this.limit ? 0 : this.#next;
    return this.#times[(oldest + i) % this.limit] as number;
  }

  used(now: number): number {
    const start = now - this.#windowMs;
    // First remembered time inside the window.
    let lo = 0;
    let hi = this.#count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#at(mid) > start) hi = mid;
      else lo = mid + 1;
    }
    return this.#count - lo;
  }

  leavingBy(now: number, later: number): number {
    // used() only searches the ring: asking about a later time changes nothing.
    return this.used(now) - this.used(later);
  }

  roomAt(now: number): number {
    if (this.#count < this.limit) return now;
    // The ring is full: the oldest event must leave the window first.
    return Math.max(now, this.#at(0) + this.#windowMs);
  }
}

/**
 * Counts units in BUCKETS buckets: fixed memory whatever the limit; for tokens and daily limits.
 * A running total is kept and expired buckets are subtracted as time moves on, so `used` costs
 * only the buckets that expired since the last call.
 */
export class BucketedWindow implements UsageWindow {
  readonly limit: number;
  readonly #bucketMs: number;
  /** Buckets counted at any time: enough to cover the window even when `now` is mid-bucket. */
  readonly #span: number;
  readonly #amounts: Float64Array;
  readonly #indexes: Float64Array;
  #total = 0;
  /** Newest bucket index the total has been brought up to. */
  #current = Number.NEGATIVE_INFINITY;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.#bucketMs = Math.max(1, Math.ceil(windowMs / BUCKETS));
    this.#span = Math.ceil(windowMs / this.#bucketMs) + 1;
    this.#amounts = new Float64Array(this.#span);
    this.#indexes = new Float64Array(this.#span).fill(-1);
  }

  /** Drops buckets that left the window by `now` from the total. */
  #advance(now: number): number {
    const current = Math.floor(now / this.#bucketMs);
    if (current <= this.#current) return this.#current;
    const from = Math.max(this.#current + 1, current - this.#span + 1);
    // Slots that bucket indexes in (current - span, current] will reuse: whatever they hold
    // now is older than the window.
    const steps = Math.min(this.#span, current - this.#current);
    for (let k = 0; k < steps; k++) {
      const index = (Number.isFinite(this.#current) ? this.#current + 1 : from) + k;
      const slot = index % this.#span;
      if ((this.#indexes[slot] as number) !== index && (this.#indexes[slot] as number) >= 0) {
        this.#total -= this.#amounts[slot] as number;
        this.#amounts[slot] = 0;
        this.#indexes[slot] = -1;
      }
    }
    this.#current = current;
    return current;
  }

  add(now: number, amount = 1): void {
    const index = this.#advance(now);
    const slot = index % this.#span;
    if (this.#indexes[slot] !== index) {
      this.#indexes[slot] = index;
      this.#amounts[slot] = 0;
    }
    this.#amounts[slot] = (this.#amounts[slot] as number) + amount;
    this.#total += amount;
  }

  used(now: number): number {
    this.#advance(now);
    return this.#total;
  }

  leavingBy(now: number, later: number): number {
    const current = this.#advance(now);
    // A bucket is counted while its index is above current - span: by `later`, those up to
    // floor(later / bucket) - span have left.
    const lastLeaving = Math.floor(later / this.#bucketMs) - this.#span;
    let leaving = 0;
    for (let index = current - this.#span + 1; index <= Math.min(current, lastLeaving); index++) {
      const slot = index % this.#span;
      if (this.#indexes[slot] === index) leaving += this.#amounts[slot] as number;
    }
    return leaving;
  }

  roomAt(now: number): number {
    const current = this.#advance(now);
    let used = this.#total;
    if (used < this.limit) return now;
    // Let buckets expire oldest first until the total drops below the limit.
    for (let index = current - this.#span + 1; index <= current; index++) {
      const slot = index % this.#span;
      if (this.#indexes[slot] !== index) continue;
      used -= this.#amounts[slot] as number;
      if (used < this.limit) return (index + this.#span) * this.#bucketMs;
    }
    return now;
  }
}
