/**
 * npm run bench:engine — picks per second per strategy for pools of 10, 1,000 and 10,000 keys.
 *
 * Each measured operation is a dispense cycle: pick a key (opening a lease) and report success
 * on it (closing the lease), which is what the dispenser does per request. A second scenario
 * puts half the keys into a cooldown first, to show that unusable keys cost a pick nothing.
 * Baseline, measured in the same run: a bare `keys[i++ % n]` rotation over an array, the floor
 * any pool implementation sits on.
 */
import { ManualClock } from "../src/pool/clock.ts";
import { DEFAULT_POOL_CONFIG } from "../src/pool/config.ts";
import { KeyPoolEngine } from "../src/pool/engine.ts";
import type { KeyEntry } from "../src/pool/key.ts";
import type { Strategy } from "../src/api/keypool.ts";

const STRATEGIES: Strategy[] = ["RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted"];
const SIZES = [10, 1_000, 10_000];
const DURATION_MS = Number(process.env.BENCH_MS ?? 400);

function entries(n: number): KeyEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `sk-bench-${i.toString().padStart(6, "0")}-${"x".repeat(32)}`,
    source: `secret/bench#k${i}`,
    weight: 1 + (i % 10),
    limits: i % 2 === 0 ? { requestsPerMinute: 1_000_000 } : undefined,
  }));
}

function makeEngine(strategy: Strategy, n: number, cooledFraction: number) {
  const clock = new ManualClock();
  let id = 0;
  const engine = new KeyPoolEngine(
    { ...DEFAULT_POOL_CONFIG, strategy },
    { clock, newLeaseToken: () => ++id },
  );
  engine.setKeys(entries(n));
  if (cooledFraction > 0) {
    const step = Math.round(1 / cooledFraction);
    engine.keys().forEach((view, i) => {
      if (i % step === 0)
        engine.report({ keyId: view.id }, { kind: "rateLimited", untilMs: clock.now() + 3_600_000 });
    });
  }
  return { engine, clock };
}

/** Runs `op` in batches for about DURATION_MS; returns operations per second and mean µs. */
function measure(op: () => void): { opsPerSec: number; meanUs: number } {
  for (let i = 0; i < 2_000; i++) op(); // warm-up (JIT)
  let ops = 0;
  const start = process.hrtime.bigint();
  let elapsedNs = 0n;
  while (elapsedNs < BigInt(DURATION_MS) * 1_000_000n) {
    for (let i = 0; i < 1_000; i++) op();
    ops += 1_000;
    elapsedNs = process.hrtime.bigint() - start;
  }
  const seconds = Number(elapsedNs) / 1e9;
  return { opsPerSec: ops / seconds, meanUs: (seconds * 1e6) / ops };
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const rows: string[][] = [];

for (const n of SIZES) {
  const array = entries(n).map((e) => e.key);
  let i = 0;
  let sink = 0;
  const baseline = measure(() => {
    sink += (array[i++ % n] as string).length;
  });
  if (sink < 0) console.log(sink);
  rows.push([
    "baseline array rotation",
    fmt(n),
    "-",
    fmt(baseline.opsPerSec),
    baseline.meanUs.toFixed(3),
    "1.00",
  ]);
  for (const cooled of [0, 0.5]) {
    for (const strategy of STRATEGIES) {
      const { engine, clock } = makeEngine(strategy, n, cooled);
      let tick = 0;
      const result = measure(() => {
        const r = engine.pick();
        if (!r.ok) throw new Error(`no key (${strategy}, ${n})`);
        engine.report({ leaseId: r.leaseId }, { kind: "success" });
        if (++tick % 64 === 0) clock.advance(1);
      });
      rows.push([
        strategy,
        fmt(n),
        cooled ? "50%" : "0%",
        fmt(result.opsPerSec),
        result.meanUs.toFixed(3),
        (baseline.opsPerSec / result.opsPerSec).toFixed(1),
      ]);
    }
  }
}

const header = ["strategy", "keys", "cooling", "cycles/s", "µs/cycle", "x baseline"];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] as string).length)));
const line = (r: string[]) =>
  r
    .map((cell, c) => (c < 1 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number)))
    .join("  ");
console.log(
  `node ${process.version}, ${DURATION_MS} ms per case; a cycle = pick + report (open and close a lease)\n`,
);
console.log(line(header));
for (const r of rows) console.log(line(r));
