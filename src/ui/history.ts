/**
 * The status page's usage history: every 10 s, each pool's totals (requests, errors, and cost
 * today when the view has it) go into a ring buffer of one hour; the charts read rates per
 * minute from the differences between samples. Timers and clock are handed in, so tests step
 * time by hand.
 */
import type { Clock } from "../pool/clock.ts";

/** One pool's running totals at a moment, as its view gives them. */
export interface UsageTotals {
  requests: number;
  errors: number;
  /** Spend today in USD: absent when the view has no cost. */
  costUSD?: number | undefined;
}

/** The fields of a pool view (src/server/dispense.ts poolView) the totals come from. */
export interface TotalsView {
  costTodayUSD?: number | undefined;
  keyStatuses: ReadonlyArray<{ requests: number; errors: number; costTodayUSD?: number | undefined }>;
}

/** The totals a view gives: sums over its keys; the pool's own cost today when it has one. */
export function totalsOf(view: TotalsView): UsageTotals {
  let requests = 0;
  let errors = 0;
  let keyCost: number | undefined;
  for (const k of view.keyStatuses) {
    requests += k.requests;
    errors += k.errors;
    if (typeof k.costTodayUSD === "number") keyCost = (keyCost ?? 0) + k.costTodayUSD;
  }
  const costUSD = typeof view.costTodayUSD === "number" ? view.costTodayUSD : keyCost;
  return costUSD === undefined ? { requests, errors } : { requests, errors, costUSD };
}

/** Rates per minute between consecutive samples, for one pool's charts. */
export interface UsageSeries {
  /** The end of each interval, epoch seconds (uPlot's x axis). */
  t: number[];
  requestsPerMin: number[];
  errorsPerMin: number[];
  /** USD per minute; null where either sample had no cost. Absent when no sample had a cost. */
  costPerMin?: Array<number | null>;
}

/** setInterval and clearInterval: the global ones, or a test's. */
export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const systemTimers: Timers = {
  setInterval: (fn, ms) => {
    const handle = setInterval(fn, ms);
    handle.unref();
    return handle;
  },
  clearInterval: (handle) => clearInterval(handle as ReturnType<typeof setInterval>),
};

/** Every 10 s for an hour. */
export const SAMPLE_INTERVAL_MS = 10_000;
export const SAMPLE_CAPACITY = 360;

interface Sample extends UsageTotals {
  atMs: number;
}

/** A fixed-size ring of samples, oldest first when read. */
class Ring {
  readonly #items: Array<Sample | undefined>;
  #next = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#items = new Array<Sample | undefined>(capacity);
  }

  push(sample: Sample): void {
    this.#items[this.#next] = sample;
    this.#next = (this.#next + 1) % this.#items.length;
    this.#size = Math.min(this.#size + 1, this.#items.length);
  }

  toArray(): Sample[] {
    const start = (this.#next - this.#size + this.#items.length) % this.#items.length;
    return Array.from(
      { length: this.#size },
      (_, i) => this.#items[(start + i) % this.#items.length] as Sample,
    );
  }
}

export interface UsageHistoryOptions {
  /** Each pool's totals now, by pool key ("namespace/name"). */
  totals: () => Iterable<readonly [string, UsageTotals]>;
  clock: Clock;
  timers?: Timers;
  intervalMs?: number;
  capacity?: number;
  /** Told after each sample (the page pushes the new series). */
  onSample?: () => void;
}

/**
 * The sampler. A pool gone at a sample loses its history; a counter that went down (a key
 * removed, cost today at midnight) counts from zero again rather than as negative use.
 */
export class UsageHistory {
  readonly #options: UsageHistoryOptions;
  readonly #timers: Timers;
  readonly #rings = new Map<string, Ring>();
  #handle: unknown;

  constructor(options: UsageHistoryOptions) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
  }

  /** Takes a first sample now, then one every interval. */
  start(): void {
    if (this.#handle !== undefined) return;
    this.sample();
    this.#handle = this.#timers.setInterval(
      () => this.sample(),
      this.#options.intervalMs ?? SAMPLE_INTERVAL_MS,
    );
  }

  stop(): void {
    if (this.#handle === undefined) return;
    this.#timers.clearInterval(this.#handle);
    this.#handle = undefined;
  }

  sample(): void {
    const atMs = this.#options.clock.now();
    const seen = new Set<string>();
    for (const [pool, totals] of this.#options.totals()) {
      seen.add(pool);
      let ring = this.#rings.get(pool);
      if (!ring) {
        ring = new Ring(this.#options.capacity ?? SAMPLE_CAPACITY);
        this.#rings.set(pool, ring);
      }
      ring.push({ atMs, ...totals });
    }
    for (const pool of this.#rings.keys()) if (!seen.has(pool)) this.#rings.delete(pool);
    this.#options.onSample?.();
  }

  /** Every pool's rates, by pool key. */
  series(): Record<string, UsageSeries> {
    const out: Record<string, UsageSeries> = {};
    for (const [pool, ring] of this.#rings) out[pool] = seriesOf(ring.toArray());
    return out;
  }
}

/** Use between two readings of a counter that only resets by going back to zero. */
const used = (before: number, after: number) => (after >= before ? after - before : after);

function seriesOf(samples: readonly Sample[]): UsageSeries {
  const series: UsageSeries = { t: [], requestsPerMin: [], errorsPerMin: [] };
  const cost: Array<number | null> = [];
  let anyCost = false;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as Sample;
    const b = samples[i] as Sample;
    const minutes = (b.atMs - a.atMs) / 60_000;
    if (minutes <= 0) continue;
    series.t.push(Math.round(b.atMs / 1000));
    series.requestsPerMin.push(used(a.requests, b.requests) / minutes);
    series.errorsPerMin.push(used(a.errors, b.errors) / minutes);
    if (a.costUSD !== undefined && b.costUSD !== undefined) {
      anyCost = true;
      cost.push(used(a.costUSD, b.costUSD) / minutes);
    } else {
      cost.push(null);
    }
  }
  if (anyCost) series.costPerMin = cost;
  return series;
}
