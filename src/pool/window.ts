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
}

/** Largest limit tracked event by event (a ring of timestamps, 8 bytes each). */
const EXACT_MAX = 4096;
const BUCKETS = 120;

export function createWindow(limit: number, windowMs: number, unitSized = true): UsageWindow {
  return unitSized && limit <= EXACT_MAX
    ? new ExactWindow(limit, windowMs)
    : new BucketedWindow(limit, windowMs);
}

/** Remembers the last `limit` event times: exact for requests-per-window limits. */
export class ExactWindow implements UsageWindow {
  readonly limit: number;
  readonly #windowMs: number;
  readonly #times: Float64Array;
  #next = 0;
  #count = 0;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.#windowMs = windowMs;
    this.#times = new Float64Array(limit);
  }

  add(now: number, amount = 1): void {
    for (let i = 0; i < amount; i++) {
      this.#times[this.#next] = now;
      this.#next = (this.#next + 1) % this.limit;
      if (this.#count < this.limit) this.#count++;
    }
  }

  used(now: number): number {
    const start = now - this.#windowMs;
    let n = 0;
    for (let i = 0; i < this.#count; i++) if ((this.#times[i] as number) > start) n++;
    return n;
  }

  roomAt(now: number): number {
    if (this.#count < this.limit) return now;
    // The ring is full: the slot about to be overwritten holds the oldest event.
    const oldest = this.#times[this.#next] as number;
    return Math.max(now, oldest + this.#windowMs);
  }
}

/** Counts units in BUCKETS buckets: fixed memory whatever the limit; for tokens and daily limits. */
export class BucketedWindow implements UsageWindow {
  readonly limit: number;
  readonly #bucketMs: number;
  /** Buckets counted at any time: enough to cover the window even when `now` is mid-bucket. */
  readonly #span: number;
  readonly #amounts: Float64Array;
  readonly #indexes: Float64Array;

  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.#bucketMs = Math.max(1, Math.ceil(windowMs / BUCKETS));
    this.#span = Math.ceil(windowMs / this.#bucketMs) + 1;
    this.#amounts = new Float64Array(this.#span);
    this.#indexes = new Float64Array(this.#span).fill(-1);
  }

  add(now: number, amount = 1): void {
    const index = Math.floor(now / this.#bucketMs);
    const slot = index % this.#span;
    if (this.#indexes[slot] !== index) {
      this.#indexes[slot] = index;
      this.#amounts[slot] = 0;
    }
    this.#amounts[slot] = (this.#amounts[slot] as number) + amount;
  }

  used(now: number): number {
    const current = Math.floor(now / this.#bucketMs);
    let total = 0;
    for (let slot = 0; slot < this.#span; slot++) {
      const index = this.#indexes[slot] as number;
      if (index > current - this.#span && index <= current) total += this.#amounts[slot] as number;
    }
    return total;
  }

  roomAt(now: number): number {
    let used = this.used(now);
    if (used < this.limit) return now;
    const current = Math.floor(now / this.#bucketMs);
    // Let buckets expire oldest first until the total drops below the limit.
    const live: Array<[number, number]> = [];
    for (let slot = 0; slot < this.#span; slot++) {
      const index = this.#indexes[slot] as number;
      if (index > current - this.#span && index <= current) live.push([index, this.#amounts[slot] as number]);
    }
    live.sort((a, b) => a[0] - b[0]);
    for (const [index, amount] of live) {
      used -= amount;
      if (used < this.limit) return (index + this.#span) * this.#bucketMs;
    }
    return now;
  }
}
