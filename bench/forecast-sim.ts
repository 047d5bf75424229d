/**
 * The parts of bench/forecast.ts that are not the scenario: a seeded PRNG, a diurnal arrival
 * generator, a one-day run of arrivals against a KeyPoolEngine on a manual clock, and the text
 * helpers the bench prints with. Deterministic: the same seed and pool give the same figures.
 */
import { ManualClock } from "../src/pool/clock.ts";
import type { PoolConfig } from "../src/pool/config.ts";
import { KeyPoolEngine } from "../src/pool/engine.ts";
import { type Forecast, RateAverage, tauOf } from "../src/pool/forecast.ts";
import type { KeyEntry } from "../src/pool/key.ts";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
const MINUTES_PER_DAY = 1440;

/** mulberry32: a small, fast 32-bit PRNG; numbers in [0, 1), the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Relative traffic at `minute` of the day (0..1439): a floor of `night` plus a squared raised
 * cosine peaking at `peakHour` (lowest twelve hours away). With night 0.15 and a 15:00 peak the
 * peak is 2.1x the day's mean and 03:00 is 0.3x: office-hours API traffic.
 */
export function diurnalShape(minute: number, peakHour = 15, night = 0.15): number {
  const phase = (2 * Math.PI * (minute / 60 - peakHour)) / 24;
  const bump = (1 + Math.cos(phase)) / 2;
  return night + (1 - night) * bump * bump;
}

/** Expected arrivals per minute of the day, scaled so they add up to `total`. */
export function expectedPerMinute(total: number, shape: (minute: number) => number = diurnalShape): number[] {
  const raw = Array.from({ length: MINUTES_PER_DAY }, (_, m) => shape(m));
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((r) => (r * total) / sum);
}

/** A Poisson draw with mean `mean` (Knuth's method: fine for the means of one minute, < 100). */
export function poisson(mean: number, random: () => number): number {
  const limit = Math.exp(-mean);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}

/**
 * One day of arrivals: per minute a Poisson count with that minute's expected number (about
 * `total` in all), each at a uniform time within its minute. Milliseconds from the day's start,
 * ascending; the same for the same seed.
 */
export function dayOfArrivals(
  total: number,
  seed: number,
  shape: (minute: number) => number = diurnalShape,
): number[] {
  const random = mulberry32(seed);
  const out: number[] = [];
  expectedPerMinute(total, shape).forEach((mean, minute) => {
    const n = poisson(mean, random);
    const times = Array.from({ length: n }, () => Math.floor((minute + random()) * MINUTE_MS));
    times.sort((a, b) => a - b);
    out.push(...times);
  });
  return out;
}

/** Arrivals per hour of the day (24 counts). */
export function perHour(arrivals: readonly number[]): number[] {
  const counts = Array.from({ length: 24 }, () => 0);
  for (const t of arrivals) {
    const h = Math.floor(t / HOUR_MS);
    if (h >= 0 && h < 24) counts[h] = (counts[h] ?? 0) + 1;
  }
  return counts;
}

/** A key of the simulated pool. */
export interface SimKey {
  name: string;
  requestsPerDay: number;
  requestsPerMinute: number;
  weight?: number;
}

/** What the engine foresaw at one moment of the day, and what the bench's own rate said. */
export interface Checkpoint {
  /** ms from the day's start. */
  atMs: number;
  /** Per key: engine.keys()[i].forecast (epoch ms inside). */
  keys: Array<Forecast | undefined>;
  /** engine.spendingView().forecast. */
  pool: Forecast | undefined;
  /** Per key: requests counted so far (the day window's use: nothing has left it yet on day one). */
  used: number[];
  /**
   * Per key: requests per ms at the same half-life as the engine's average, from the bench's own
   * count: the reference `remaining / rate` forecast is made from it.
   */
  rates: number[];
}

export interface SimResult {
  arrivals: number;
  served: number;
  refused: number;
  /** Refused while some key still had room in its requestsPerDay (its per-minute limit was full). */
  refusedWithQuotaLeft: number;
  /** ms from the day's start of the first refused call; undefined: none. */
  firstRefusalMs: number | undefined;
  /** Per key: when its requestsPerDay window filled (ms from the day's start); undefined: not today. */
  exhaustedAtMs: Array<number | undefined>;
  /** Per key: calls served. */
  servedBy: number[];
  checkpoints: Checkpoint[];
  /** Anything the engine did that a day of limits says it must not (a key handed out past its day). */
  anomalies: string[];
}

export interface SimOptions {
  config: PoolConfig;
  keys: readonly SimKey[];
  /** ms from the day's start, ascending. */
  arrivals: readonly number[];
  /** Epoch ms of 00:00 of the simulated day (a fresh pool: every window starts empty). */
  dayStartMs: number;
  /** ms from the day's start at which to read the forecasts. */
  checkpointsMs?: readonly number[];
}

/** A key entry with the sim key's limits: the key text is made from its name. */
export function entryOf(k: SimKey): KeyEntry {
  return {
    key: `sk-sim-${k.name}-0123456789abcdef`,
    source: `secret/sim#${k.name}`,
    ...(k.weight !== undefined ? { weight: k.weight } : {}),
    limits: { requestsPerMinute: k.requestsPerMinute, requestsPerDay: k.requestsPerDay },
  };
}

/**
 * Runs one day: at each arrival the clock is set to it and the engine picks; a pick that finds no
 * usable key is a refused call (no waiting, no retry); a picked key is reported success at once.
 *
 * A key has run out when its dispenses today reach its requestsPerDay: on a fresh pool nothing
 * leaves a 24 h window before the day ends, so the count is the window's use. The run checks the
 * engine agrees: the key must leave the usable set at that dispense and never be handed out again.
 */
export function simulateDay(options: SimOptions): SimResult {
  const { config, keys, arrivals, dayStartMs } = options;
  const clock = new ManualClock(dayStartMs);
  let token = 0;
  const engine = new KeyPoolEngine(config, { clock, newLeaseToken: () => ++token });
  engine.setKeys(keys.map(entryOf));
  const ids = engine.keyIds();
  if (ids.length !== keys.length)
    throw new Error(`expected ${keys.length} keys, the engine has ${ids.length}`);
  const index = new Map(ids.map((id, i) => [id, i]));
  const tau = tauOf(config.forecast.halfLifeMs);
  const rates = keys.map(() => new RateAverage());
  const servedBy = keys.map(() => 0);
  const exhaustedAtMs: Array<number | undefined> = keys.map(() => undefined);
  const anomalies: string[] = [];
  const checkpoints: Checkpoint[] = [];
  const pending = [...(options.checkpointsMs ?? [])].sort((a, b) => a - b);
  let served = 0;
  let refused = 0;
  let refusedWithQuotaLeft = 0;
  let firstRefusalMs: number | undefined;

  const readForecasts = (atMs: number) => {
    clock.set(dayStartMs + atMs);
    const views = engine.keys();
    const now = clock.now();
    checkpoints.push({
      atMs,
      keys: ids.map((id) => views.find((v) => v.id === id)?.forecast),
      pool: engine.spendingView().forecast,
      used: [...servedBy],
      rates: rates.map((r) => r.at(now, tau)),
    });
  };

  for (const t of arrivals) {
    while (pending.length && (pending[0] as number) <= t) readForecasts(pending.shift() as number);
    clock.set(dayStartMs + t);
    const r = engine.pick();
    if (!r.ok) {
      refused++;
      if (exhaustedAtMs.includes(undefined)) refusedWithQuotaLeft++;
      firstRefusalMs ??= t;
      continue;
    }
    served++;
    const i = index.get(r.keyId);
    if (i === undefined) throw new Error(`pick gave an unknown key ${r.keyId}`);
    const key = keys[i] as SimKey;
    servedBy[i] = (servedBy[i] as number) + 1;
    rates[i]?.add(clock.now(), 1, tau);
    if ((servedBy[i] as number) > key.requestsPerDay)
      anomalies.push(`${key.name} handed out at ${hhmm(t)} past its requestsPerDay (${servedBy[i]})`);
    if (servedBy[i] === key.requestsPerDay) {
      exhaustedAtMs[i] = t;
      if (engine.isUsable(r.keyId))
        anomalies.push(`${key.name} still usable at ${hhmm(t)} with its requestsPerDay window full`);
    }
    engine.report({ leaseId: r.leaseId }, { kind: "success" });
  }
  for (const atMs of pending) readForecasts(atMs);
  return {
    arrivals: arrivals.length,
    served,
    refused,
    refusedWithQuotaLeft,
    firstRefusalMs,
    exhaustedAtMs,
    servedBy,
    checkpoints,
    anomalies,
  };
}

/** The earliest defined time; undefined when there is none. */
export function earliest(times: ReadonlyArray<number | undefined>): number | undefined {
  let min: number | undefined;
  for (const t of times) if (t !== undefined && (min === undefined || t < min)) min = t;
  return min;
}

/** HH:MM of ms from the day's start ("-" for undefined; 24:00 and later stay past 24). */
export function hhmm(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  const minutes = Math.floor(ms / MINUTE_MS);
  const sign = minutes < 0 ? "-" : "";
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** A duration in minutes as +H:MM / -H:MM. */
export function signedHours(ms: number): string {
  const sign = ms < 0 ? "-" : "+";
  const minutes = Math.round(Math.abs(ms) / MINUTE_MS);
  return `${sign}${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}`;
}

/**
 * Rows under a header, columns padded to their widest cell: the first `leftColumns` columns
 * aligned left (names), the rest right (figures); two spaces between columns.
 */
export function formatTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  leftColumns = 1,
) {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]) =>
    header
      .map((_, c) => {
        const cell = r[c] ?? "";
        const width = widths[c] as number;
        return c < leftColumns ? cell.padEnd(width) : cell.padStart(width);
      })
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** aim met / aim missed, for figures printed beside an aim (never asserted). */
export const aim = (met: boolean) => (met ? "aim met" : "aim missed");
