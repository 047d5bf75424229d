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

/** Numbers per change in Changes. */
const STRIDE = 4;

/**
 * One pool's totals as they changed: a sample equal to the one before is not stored, so an idle
 * pool holds one entry however long it idles (10,000 pools with a sample object each every 10 s
 * held about 200 MB after an hour). One array of numbers, four per change: the sample's sequence
 * number, requests, errors, cost (NaN: none). A plain array of doubles costs least for the one
 * or two changes most pools hold (four typed arrays cost about 1 KB a pool before any data).
 */
class Changes {
  /** The sequence number of the pool's first sample: it has no history before. */
  readonly first: number;
  readonly #values: number[] = [];

  constructor(first: number) {
    this.first = first;
  }

  get length(): number {
    return this.#values.length / STRIDE;
  }

  seq(i: number): number {
    return this.#values[i * STRIDE] as number;
  }

  totals(i: number): UsageTotals {
    const v = this.#values;
    const cost = v[i * STRIDE + 3] as number;
    const totals = { requests: v[i * STRIDE + 1] as number, errors: v[i * STRIDE + 2] as number };
    return Number.isNaN(cost) ? totals : { ...totals, costUSD: cost };
  }

  /** Records the totals of sample `seq` if they differ from the last recorded. */
  record(seq: number, totals: UsageTotals): void {
    const v = this.#values;
    const cost = totals.costUSD ?? Number.NaN;
    const last = v.length - STRIDE;
    if (
      last >= 0 &&
      v[last + 1] === totals.requests &&
      v[last + 2] === totals.errors &&
      Object.is(v[last + 3], cost)
    )
      return;
    v.push(seq, totals.requests, totals.errors, cost);
  }

  /** Drops changes before `oldest`, keeping the one in force at `oldest`. */
  prune(oldest: number): void {
    let drop = 0;
    while (drop + 1 < this.length && this.seq(drop + 1) <= oldest) drop++;
    if (drop > 0) this.#values.splice(0, drop * STRIDE);
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
 * removed, cost today at midnight) counts from zero again rather than as negative use. The times
 * of the last `capacity` samples are kept once for all pools; each pool keeps only the samples
 * where its totals changed.
 */
export class UsageHistory {
  readonly #options: UsageHistoryOptions;
  readonly #timers: Timers;
  readonly #capacity: number;
  /** When sample `seq` was taken, at `seq % capacity`. */
  readonly #times: Float64Array;
  /** Samples taken so far (the next one's sequence number). */
  #taken = 0;
  readonly #pools = new Map<string, Changes>();
  #handle: unknown;

  constructor(options: UsageHistoryOptions) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
    this.#capacity = Math.max(2, options.capacity ?? SAMPLE_CAPACITY);
    this.#times = new Float64Array(this.#capacity);
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
    const seq = this.#taken++;
    this.#times[seq % this.#capacity] = this.#options.clock.now();
    const oldest = this.#oldest();
    const seen = new Set<string>();
    for (const [pool, totals] of this.#options.totals()) {
      seen.add(pool);
      let changes = this.#pools.get(pool);
      if (!changes) this.#pools.set(pool, (changes = new Changes(seq)));
      changes.record(seq, totals);
      changes.prune(oldest);
    }
    for (const pool of this.#pools.keys()) if (!seen.has(pool)) this.#pools.delete(pool);
    this.#options.onSample?.();
  }

  /** The samples stored over all pools (one per change of a pool's totals in the window). */
  get storedSamples(): number {
    let stored = 0;
    for (const changes of this.#pools.values()) stored += changes.length;
    return stored;
  }

  /** Every pool's rates, by pool key. */
  series(): Record<string, UsageSeries> {
    const out: Record<string, UsageSeries> = {};
    for (const [pool, changes] of this.#pools) out[pool] = seriesOf(this.#samples(changes));
    return out;
  }

  /** The sequence number of the oldest sample kept. */
  #oldest(): number {
    return Math.max(0, this.#taken - this.#capacity);
  }

  /** A pool's samples, oldest first: its totals in force at each kept sample since its first. */
  #samples(changes: Changes): Sample[] {
    const samples: Sample[] = [];
    let at = 0;
    for (let seq = Math.max(changes.first, this.#oldest()); seq < this.#taken; seq++) {
      while (at + 1 < changes.length && changes.seq(at + 1) <= seq) at++;
      samples.push({ atMs: this.#times[seq % this.#capacity] as number, ...changes.totals(at) });
    }
    return samples;
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
