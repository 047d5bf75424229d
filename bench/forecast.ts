/**
 * npm run bench:forecast — one simulated day of traffic against a pool of free-tier-like keys,
 * per strategy, with and without spec.forecast.balance: when keys run out, how many calls the
 * pool refuses, and how well the consumption-rate forecast saw the exhaustions coming.
 *
 * Scenario. Four keys of one provider on different tiers, as a team collects them: requestsPerDay
 * 6000, 3000, 1500 and 800 (11,300 a day together), and the same requestsPerMinute of 10 on each
 * (free tiers pair a daily quota with a small per-minute cap: Gemini's free tier is 10-15 RPM).
 * Four keys carry 40 a minute, well over the afternoon peak (about 18 a minute on average over a
 * minute, Poisson on top); one key alone (10) cannot carry it, two barely. Demand is 12,000 calls
 * (106% of the daily quota), diurnal: a floor at night, a squared raised cosine peaking at 15:00
 * (2.1x the mean; 03:00 is 0.3x), Poisson arrivals per minute from a seeded mulberry32
 * (BENCH_SEED), so every run of every strategy sees the same calls. The pool is fresh at 00:00
 * (every window empty) and the simulated clock is the engine's only clock: the day takes
 * well under a second per run.
 *
 * Each arrival picks a key (engine.pick()); a refused pick (no usable key: every key at its
 * per-minute or per-day limit) is a refused call, not retried; a picked key is reported success at
 * once (no latency: LeastLoaded then ranks by limit use alone). Everything else is the engine's
 * defaults (forecast.halfLife 5m). A key has run out when its dispenses reach its requestsPerDay:
 * on a fresh pool nothing leaves a 24 h window before the day ends, so that count is the window's
 * use; the run checks the engine took the key out at that dispense and never handed it out again
 * (any disagreement prints under "anomalies").
 *
 * Runs: RoundRobin, LeastLoaded and Weighted (every key the default weight 10) x balance off/on,
 * and Weighted with hand-set weights proportional to requestsPerDay (60/30/15/8), the static way
 * to share by quota, x balance off/on. Balance swaps the strategy's ordering for a weighted one
 * whose weights carry each key's headroom (src/pool/strategies.ts createActiveSet), so with equal
 * weights the three balanced runs are the same run.
 *
 * Aims (printed beside the figures, never asserted): with balance the pool refuses fewer calls
 * than without (ratio below 1) and its first key runs out later. The forecast accuracy part reads
 * engine.keys()[i].forecast and spendingView().forecast at 10:00, 14:00 and 18:00 and compares
 * them with when the key (the pool: its last key) actually ran out; beside it, as a reference
 * computed here from the same 5-minute rate, the plain remaining / rate.
 */
import type { Strategy } from "../src/api/keypool.ts";
import { DEFAULT_POOL_CONFIG, type PoolConfig } from "../src/pool/config.ts";
import type { Forecast } from "../src/pool/forecast.ts";
import {
  aim,
  type Checkpoint,
  DAY_MS,
  dayOfArrivals,
  earliest,
  expectedPerMinute,
  formatTable,
  HOUR_MS,
  hhmm,
  MINUTE_MS,
  perHour,
  type SimKey,
  type SimResult,
  signedHours,
  simulateDay,
} from "./forecast-sim.ts";

const SEED = Number(process.env.BENCH_SEED ?? 20260310);
/** Tuesday 2026-03-10, 00:00 UTC. */
const DAY_START = Date.UTC(2026, 2, 10);
const DEMAND = 12_000;
const PER_MINUTE = 10;
const KEYS: SimKey[] = [6000, 3000, 1500, 800].map((perDay) => ({
  name: `k${perDay}`,
  requestsPerDay: perDay,
  requestsPerMinute: PER_MINUTE,
}));
const BY_QUOTA: SimKey[] = KEYS.map((k) => ({ ...k, weight: k.requestsPerDay / 100 }));
const CHECKPOINTS = [10, 14, 18].map((h) => h * HOUR_MS);
const CAPACITY = KEYS.reduce((sum, k) => sum + k.requestsPerDay, 0);

interface Variant {
  label: string;
  strategy: Strategy;
  keys: SimKey[];
}
const VARIANTS: Variant[] = [
  { label: "RoundRobin", strategy: "RoundRobin", keys: KEYS },
  { label: "LeastLoaded", strategy: "LeastLoaded", keys: KEYS },
  { label: "Weighted", strategy: "Weighted", keys: KEYS },
  { label: "Weighted, weights by quota", strategy: "Weighted", keys: BY_QUOTA },
];

interface Run {
  variant: Variant;
  balance: boolean;
  result: SimResult;
  ms: number;
}

const arrivals = dayOfArrivals(DEMAND, SEED);
const runs: Run[] = [];
for (const variant of VARIANTS) {
  for (const balance of [false, true]) {
    const config: PoolConfig = {
      ...DEFAULT_POOL_CONFIG,
      strategy: variant.strategy,
      forecast: { ...DEFAULT_POOL_CONFIG.forecast, balance },
    };
    const start = performance.now();
    const result = simulateDay({
      config,
      keys: variant.keys,
      arrivals,
      dayStartMs: DAY_START,
      checkpointsMs: CHECKPOINTS,
    });
    runs.push({ variant, balance, result, ms: performance.now() - start });
  }
}

// --- the day -------------------------------------------------------------------------------
const hours = perHour(arrivals);
const peakMinute = Math.max(...expectedPerMinute(DEMAND));
console.log(
  `node ${process.version}, seed ${SEED}; one simulated day (UTC), a fresh pool at 00:00, forecast.halfLife ${DEFAULT_POOL_CONFIG.forecast.halfLifeMs / MINUTE_MS}m`,
);
console.log(
  `keys: ${KEYS.map((k) => `${k.name} ${k.requestsPerDay}/day`).join(", ")}, each ${PER_MINUTE}/min; daily quota ${CAPACITY}, per-minute ${KEYS.length * PER_MINUTE}`,
);
console.log(
  `demand: ${arrivals.length} calls (${((arrivals.length / CAPACITY) * 100).toFixed(0)}% of the daily quota); expected peak ${peakMinute.toFixed(1)}/min at 15:00`,
);
console.log(`calls per hour: ${hours.map((n, h) => `${String(h).padStart(2, "0")}h ${n}`).join(" ")}`);

// --- results -------------------------------------------------------------------------------
const onOff = (b: boolean) => (b ? "on" : "off");
const rows = runs.map(({ variant, balance, result }) => [
  variant.label,
  onOff(balance),
  hhmm(earliest(result.exhaustedAtMs)),
  hhmm(result.firstRefusalMs),
  String(result.served),
  String(result.refused),
  String(result.refusedWithQuotaLeft),
  ...result.exhaustedAtMs.map((t) => (t === undefined ? "-" : hhmm(t))),
  ...result.servedBy.map(String),
]);
console.log(
  "\nper run: when keys ran out (HH:MM, '-': not today), calls refused (of them, while some key had day quota left: refused by per-minute limits), calls served per key",
);
for (const line of formatTable(
  [
    "strategy",
    "balance",
    "1st key out",
    "1st refusal",
    "served",
    "refused",
    "quota left",
    ...KEYS.map((k) => `${k.name} out`),
    ...KEYS.map((k) => `${k.name} calls`),
  ],
  rows,
  2,
))
  console.log(line);
console.log(
  `(simulation time per run: ${runs.map((r) => r.ms.toFixed(0)).join(", ")} ms; a key is out when its dispenses reach its requestsPerDay, checked against the engine)`,
);

const sameAs = (a: SimResult, b: SimResult) =>
  a.served === b.served &&
  a.refused === b.refused &&
  a.servedBy.every((n, i) => n === b.servedBy[i]) &&
  a.exhaustedAtMs.every((t, i) => t === b.exhaustedAtMs[i]);
const balanced = runs.filter((r) => r.balance && r.variant.keys === KEYS);
const first = balanced[0];
if (first && balanced.every((r) => sameAs(r.result, first.result)))
  console.log(
    `balance on, equal weights: ${balanced.map((r) => r.variant.label).join(", ")} give the same run (balance replaces the strategy's ordering)`,
  );

// --- ratios --------------------------------------------------------------------------------
/** No strategy can refuse fewer: the calls beyond the daily quota. */
const FLOOR = Math.max(0, arrivals.length - CAPACITY);
console.log(
  `\nbalance on vs off, per strategy (aims: refused ratio below 1; first key out later); the fewest any run can refuse: ${FLOOR} (demand - daily quota)`,
);
for (const variant of VARIANTS) {
  const off = runs.find((r) => r.variant === variant && !r.balance)?.result;
  const on = runs.find((r) => r.variant === variant && r.balance)?.result;
  if (!off || !on) continue;
  const ratio =
    off.refused === 0 ? (on.refused === 0 ? 1 : Number.POSITIVE_INFINITY) : on.refused / off.refused;
  const firstOff = earliest(off.exhaustedAtMs);
  const firstOn = earliest(on.exhaustedAtMs);
  const shift =
    firstOff === undefined || firstOn === undefined
      ? `first key out: off ${hhmm(firstOff)}, on ${hhmm(firstOn)}`
      : `first key out ${signedHours(firstOn - firstOff)} (${hhmm(firstOff)} -> ${hhmm(firstOn)})`;
  const later = firstOn === undefined ? firstOff !== undefined : firstOff !== undefined && firstOn > firstOff;
  const verdict =
    ratio < 1
      ? "balance helps"
      : ratio > 1
        ? "BALANCE HURTS: more refused"
        : on.refused === FLOOR
          ? "no difference: both refuse only the calls beyond the quota"
          : "balance makes no difference";
  console.log(
    `  ${variant.label.padEnd(27)} refused ${on.refused}/${off.refused} = ${ratio.toFixed(2)} ${aim(ratio < 1)}; ${shift} ${aim(later)}; served ${on.served - off.served >= 0 ? "+" : ""}${on.served - off.served}: ${verdict}`,
  );
}

// --- forecast accuracy ---------------------------------------------------------------------
/** When the forecast says the limit runs out, in ms from the day's start. */
const forecastAt = (f: Forecast | undefined) => (f ? f.exhaustsAtMs - DAY_START : undefined);
/** remaining / rate from the bench's own 5-minute rate (no correction for use leaving the window). */
const plainAt = (at: number, remaining: number, rate: number) =>
  rate > 0 ? at + remaining / rate : undefined;

interface Tally {
  /** |forecast - actual| of the engine's forecasts and of remaining / rate, in pairs. */
  engine: number[];
  plain: number[];
  /** No forecast (the window does not fill at this rate), and the limit did run out today. */
  missed: number;
  /** A forecast of running out before the window resets, and it did not run out today. */
  falseAlarm: number;
}
const tally = (): Tally => ({ engine: [], plain: [], missed: 0, falseAlarm: 0 });
/** Per checkpoint, over the distinct runs: keys and the pool. */
const tallies = new Map(CHECKPOINTS.map((at) => [at, { keys: tally(), pool: tally() }]));

function cell(
  at: number,
  f: Forecast | undefined,
  plain: number | undefined,
  actual: number | undefined,
  t: Tally,
): string {
  const predicted = forecastAt(f);
  if (actual !== undefined && actual <= at) return `out ${hhmm(actual)}`;
  if (predicted === undefined) {
    if (actual !== undefined) t.missed++;
    return "none";
  }
  const shown = predicted - at > 2 * DAY_MS ? ">2 days" : hhmm(predicted);
  if (actual === undefined) {
    if (f?.beforeReset) t.falseAlarm++;
    return `${shown} (not out)`;
  }
  if (plain !== undefined) {
    t.engine.push(Math.abs(predicted - actual));
    t.plain.push(Math.abs(plain - actual));
  }
  return `${shown} ${signedHours(predicted - actual)}`;
}

function accuracyRows(result: SimResult, keys: readonly SimKey[]): string[][] {
  const allOut = result.exhaustedAtMs.every((t) => t !== undefined);
  const poolOut = allOut ? Math.max(...(result.exhaustedAtMs as number[])) : undefined;
  return result.checkpoints.map((c: Checkpoint) => {
    const now = DAY_START + c.atMs;
    const t = tallies.get(c.atMs) ?? { keys: tally(), pool: tally() };
    const sinceStart = (at: number | undefined) => (at === undefined ? undefined : at - DAY_START);
    const cells = keys.map((k, i) =>
      cell(
        c.atMs,
        c.keys[i],
        sinceStart(plainAt(now, k.requestsPerDay - (c.used[i] as number), c.rates[i] as number)),
        result.exhaustedAtMs[i],
        t.keys,
      ),
    );
    const remaining = CAPACITY - c.used.reduce((a, b) => a + b, 0);
    const rate = c.rates.reduce((a, b) => a + b, 0);
    cells.push(cell(c.atMs, c.pool, sinceStart(plainAt(now, remaining, rate)), poolOut, t.pool));
    return [hhmm(c.atMs), ...cells];
  });
}

console.log(
  "\nforecast at 10:00, 14:00, 18:00: when engine.keys()[i].forecast (pool: spendingView().forecast) says the day limit runs out, and forecast - actual (H:MM); 'out': already out; 'none': no forecast (the window does not fill at this rate); 'not out': it did not run out today",
);
const titleOf = (run: Run) => `${run.variant.label}, balance ${onOff(run.balance)}`;
const printed: Run[] = [];
for (const run of runs) {
  const twin = printed.find((r) => sameAs(r.result, run.result));
  const title = titleOf(run);
  if (twin) {
    console.log(`${title}: the same run as ${titleOf(twin)}`);
    continue;
  }
  printed.push(run);
  console.log(title);
  for (const line of formatTable(
    ["at", ...run.variant.keys.map((k) => k.name), "pool (all out)"],
    accuracyRows(run.result, run.variant.keys),
  ))
    console.log(`  ${line}`);
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
const minutes = (ms: number) => (Number.isNaN(ms) ? "-" : (ms / MINUTE_MS).toFixed(0));
console.log(
  `\nforecast error over the ${printed.length} distinct runs: mean |forecast - actual| in minutes, the engine's forecast vs the plain remaining / rate (the same ${DEFAULT_POOL_CONFIG.forecast.halfLifeMs / MINUTE_MS}-minute rate, without the engine's allowance for use leaving the 24 h window)`,
);
const accuracy = [...tallies].flatMap(([at, { keys, pool }]) =>
  (
    [
      ["keys", keys],
      ["pool", pool],
    ] as const
  ).map(([what, t]) => [
    hhmm(at),
    what,
    String(t.engine.length),
    minutes(mean(t.engine)),
    minutes(mean(t.plain)),
    String(t.missed),
    String(t.falseAlarm),
  ]),
);
for (const line of formatTable(
  ["at", "of", "forecasts", "engine", "remaining/rate", "no forecast, ran out", "forecast, not out"],
  accuracy,
  2,
))
  console.log(`  ${line}`);

const anomalies = runs.flatMap((r) =>
  r.result.anomalies.map((a) => `${r.variant.label}, balance ${onOff(r.balance)}: ${a}`),
);
console.log(`\nanomalies: ${anomalies.length ? `\n  ${anomalies.join("\n  ")}` : "none"}`);
