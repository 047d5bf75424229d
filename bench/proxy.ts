/**
 * npm run bench:proxy — what the provider proxy costs: the same chat-completion calls, plain and
 * streamed, sent directly to a fake OpenAI server and through `keypool operator`'s proxy (with
 * Kubernetes auth, warm cache) to that same server, in the same run.
 *
 * - peak: requests per second as fast as it goes (autocannon, closed loop);
 * - moderate load: a fixed request rate from fortio (bench/fortio.ts says why not autocannon),
 *   p50/p99/p99.9 to the end of the body, from each request's latency; the proxy's added latency
 *   is proxied minus direct.
 *
 * The operator runs on core 0; the fake provider, the load generator and the control plane share
 * core 1, for both the direct and the proxied calls. Latency runs come first, then the peaks.
 * Rounds alternate between direct and proxied. Peaks are the median round; latency percentiles
 * are over every request of all rounds together (pooledPaced says why), with each round's own
 * p99 printed beside them.
 *
 * Latency is measured in the operator's steady state: after BENCH_WARMUP seconds of proxied calls
 * at the same rates, three quarters plain and a quarter streamed. A fresh operator spends its
 * first half minute under load compiling its hot paths: measured here at 500 calls/s, V8's worker
 * threads used 240 and 510 ms of CPU in the first two 10 s rounds and 10-60 ms in each of the
 * ten after, and the rounds' p99 was 6.5 and 46 ms, then 2.5-6.6 ms. That is a start-up cost a
 * long-running operator pays once, not latency at moderate load. The output says how much CPU
 * those threads still used during the latency runs, and how much time the hypervisor took from
 * each core (steal), which no change to the operator can help.
 *
 * The same run measures a third target: the same calls through the same operator started with
 * `--state-store redis://...` (shared key state: each call's key confirmed by one atomic
 * reservation script in Redis and its report by another, see src/state/), against a
 * redis-server started here on core 1 with the fake provider and the load generator; that
 * operator runs on core 0 too (each operator is idle while the other is measured). It warms up
 * as the other does, its rounds alternate with the others at the same rates, and the output adds
 * its rows, what Redis adds over the memory operator, and what Redis did: commands per call
 * (INFO commandstats), CPU, used_memory, MEMORY USAGE of the pool's keys. The bench pool has no
 * limits: the reservation still checks the key's state, opens the lease, counts it in flight and
 * counts the request, without limit windows; RoundRobin needs no in-flight counts first.
 *
 * Two more rounds run `keypool serve` with one pool of three keys (POOL_KEYS, auth none on
 * loopback) in front of the same fake provider, no control plane:
 *
 * - low rate: after the same warm-up, BENCH_LOW_RATE calls/s (30) through it and directly,
 *   alternating, BENCH_LOW_ROUNDS (3) rounds of BENCH_LOW_SECONDS (40): p50, p99, p99.9 and max,
 *   the added latency, what the process measured inside itself over the same calls (so a tail
 *   can be told from the machine's scheduling), and the slowest calls with when they were sent
 *   (seconds since it started: BENCH_NODE_FLAGS=--trace-gc puts its GCs on the same clock in its
 *   log);
 * - footprint: BENCH_FOOTPRINT_SECONDS (300) of proxied calls at BENCH_PLAIN_RATE, its RSS, V8 heap
 *   and external memory every minute and after a full GC, read over the inspector protocol
 *   (--inspect on a free loopback port, Runtime.evaluate and HeapProfiler, nothing added to the
 *   product), V8's heap spaces and the largest constructors of a heap snapshot.
 *
 * BENCH_ONLY=operator|lowrate|footprint runs one part (the last two need no control plane and
 * take a few minutes). BENCH_SERVE_DIR: a directory with bin/keypool.js to run `keypool serve`
 * from (a built package, or a patched copy to compare); the checkout by default.
 *
 * Env: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_WARMUP (60), BENCH_CONNECTIONS (32, peak runs),
 * BENCH_PLAIN_RATE (500), BENCH_STREAM_RATE (100), BENCH_PROFILE (dir: CPU profile of the
 * operator), BENCH_KEEP_AWAKE=0, BENCH_SHIELD=0, BENCH_FORTIO, BENCH_REDIS=0 (no Redis variant),
 * BENCH_NODE_FLAGS, and those above.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import {
  aim,
  benchControlPlane,
  benchOperator,
  benchPool,
  benchRedis,
  benchRedisOn,
  benchServe,
  clientToken,
  keepCoresAwake,
  load,
  type MachineReading,
  machineReading,
  median,
  onCore,
  pinned,
  redisLines,
  redisPoolMemory,
  redisReading,
  type Result,
  rssOf,
  shieldServerCore,
  since,
  stateStoreUp,
  stateStoreUpIn,
} from "./support.ts";
import { Inspector } from "./inspector.ts";
import { eventually } from "../test/support/eventually.ts";
import { ensureFortio, type PacedResult, paced, pooledPaced, runP99sText } from "./fortio.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 60);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const PLAIN_RATE = Number(process.env.BENCH_PLAIN_RATE ?? 500);
const STREAM_RATE = Number(process.env.BENCH_STREAM_RATE ?? 100);
const LOW_RATE = Number(process.env.BENCH_LOW_RATE ?? 30);
const LOW_SECONDS = Number(process.env.BENCH_LOW_SECONDS ?? 40);
const LOW_ROUNDS = Number(process.env.BENCH_LOW_ROUNDS ?? 3);
const FOOTPRINT_SECONDS = Number(process.env.BENCH_FOOTPRINT_SECONDS ?? 300);
const NS = "bench";
const log = (line: string) => process.stderr.write(`${line}\n`);

const KEYS = Array.from({ length: 10 }, (_, i) => `sk-bench-proxy-${i}-${"q".repeat(32)}`);
const PLAIN = JSON.stringify({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello in a short sentence." }],
});
const STREAM = JSON.stringify({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello in a short sentence." }],
  stream: true,
  stream_options: { include_usage: true },
});

async function fakeUpstream() {
  const child = spawn(...onCore(1, process.execPath, ["bench/fake-upstream.ts", ...KEYS]), {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
  return { url: line.trim(), stop: () => child.kill("SIGTERM") };
}

/**
 * Upper bounds (ms) of the histogram buckets holding the given quantiles; with `since` (an earlier
 * scrape of the same process), of the observations made between the two.
 */
function bucketQuantiles(text: string, name: string, quantiles: number[], since?: string): string[] {
  const bucketsIn = (t: string) =>
    [...t.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\d+)`, "gm"))].map((m) => ({
      le: m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]),
      count: Number(m[2]),
    }));
  const earlier = since === undefined ? [] : bucketsIn(since);
  const buckets = bucketsIn(text).map((b, i) => ({ le: b.le, count: b.count - (earlier[i]?.count ?? 0) }));
  const total = buckets.at(-1)?.count ?? 0;
  return quantiles.map((q) => {
    const bucket = buckets.find((b) => b.count >= q * total);
    return bucket ? String(bucket.le * 1000) : "?";
  });
}

/**
 * The rounds against `keypool operator` (Kubernetes auth, a control plane): peaks, latency at
 * moderate load, and the --state-store redis variant.
 */
async function operatorRounds(fortio: string, upstream: { url: string }): Promise<void> {
  const { plane, kc, core } = await benchControlPlane(NS, log, { pinToLoadCore: true });
  const redis = benchRedisOn ? await benchRedis(log) : undefined;
  try {
    // Redis before anything connected to it: the baseline of used_memory.
    const redisEmpty = redis ? await redisReading(redis.server) : undefined;
    await benchPool(kc, core, NS, "pool", KEYS, {
      provider: "openai",
      baseURL: upstream.url,
      strategy: "RoundRobin",
      health: { probeInterval: "1h" },
    });
    const token = await clientToken(kc, core, NS, ["pool"]);
    const operator = await benchOperator(plane, "proxy");
    // The same operator with shared state in Redis, serving the same pool. Neither elects a leader:
    // each writes the pool's status after its own calls; status-only changes do not reconcile.
    const redisOperator = redis
      ? await benchOperator(plane, "proxy-redis", ["--state-store", redis.server.url])
      : undefined;
    const target = {
      direct: { url: `${upstream.url}/v1/chat/completions`, headers: { authorization: `Bearer ${KEYS[0]}` } },
      proxy: {
        url: `${operator.url}/proxy/${NS}/pool/v1/chat/completions`,
        headers: { authorization: `Bearer ${token}` },
      },
      redis: {
        url: `${redisOperator?.url}/proxy/${NS}/pool/v1/chat/completions`,
        headers: { authorization: `Bearer ${token}` },
      },
    };
    // Wait for the pool and warm the auth cache.
    for (const t of redisOperator ? (["proxy", "redis"] as const) : (["proxy"] as const))
      await eventually(async () => {
        const res = await fetch(target[t].url, {
          method: "POST",
          headers: { ...target[t].headers, "content-type": "application/json" },
          body: PLAIN,
        }).catch(() => undefined);
        if (res) await res.arrayBuffer();
        return res?.status === 200 ? true : undefined;
      }, 30_000);
    if (redisOperator)
      await eventually(async () =>
        (await stateStoreUp(redisOperator.metricsUrl)) === "1" ? true : undefined,
      );
    log(`warming up for ${WARMUP} s; then ${SECONDS} s per run, ${ROUNDS} rounds`);

    // Calls the Redis variant answered with 2xx in the measured runs (after the warm-ups), for
    // Redis's commands per call.
    let redisServed = 0;
    let redisCounting = false;
    const peak = async (t: keyof typeof target, body: string) => {
      const result = await load(target[t].url, {
        headers: { ...target[t].headers, "content-type": "application/json" },
        method: "POST",
        body,
        connections: CONNECTIONS,
        seconds: SECONDS,
      });
      if (t === "redis" && redisCounting) redisServed += result.ok;
      return result;
    };
    const steady = async (t: keyof typeof target, body: string, rate: number, seconds = SECONDS) => {
      const result = await paced(fortio, target[t].url, {
        headers: target[t].headers,
        body,
        rate,
        seconds: Math.max(1, seconds),
      });
      if (t === "redis" && redisCounting) redisServed += result.latencies.length - result.failures;
      return result;
    };

    const peaks: Record<string, Result[]> = {
      directPlain: [],
      proxyPlain: [],
      directStream: [],
      proxyStream: [],
      redisPlain: [],
      redisStream: [],
    };
    const steadies: Record<string, PacedResult[]> = {
      directPlain: [],
      proxyPlain: [],
      directStream: [],
      proxyStream: [],
      redisPlain: [],
      redisStream: [],
    };
    // Latency at moderate load first, in a steady state: after a warm-up at the same rates (JIT,
    // connections, the heap's size; see the header), not after the peak runs, whose garbage the old
    // generation would otherwise collect during them (a Mark-Compact of 10-60 ms, with --trace-gc).
    const wake = keepCoresAwake(log);
    const unshield = shieldServerCore(log);
    // The Redis variant warms up the same way, interleaved, so both have idled about as long.
    await steady("proxy", PLAIN, PLAIN_RATE, (WARMUP * 3) / 4);
    if (redisOperator) await steady("redis", PLAIN, PLAIN_RATE, (WARMUP * 3) / 4);
    await steady("proxy", STREAM, STREAM_RATE, WARMUP / 4);
    if (redisOperator) await steady("redis", STREAM, STREAM_RATE, WARMUP / 4);
    await steady("direct", PLAIN, PLAIN_RATE);
    await steady("direct", STREAM, STREAM_RATE);
    const redisBefore = redis ? await redisReading(redis.server) : undefined;
    redisCounting = true;
    const machineBefore = machineReading(operator.pid, wake.pids);
    const redisMachineBefore = redisOperator ? machineReading(redisOperator.pid) : undefined;
    for (let r = 0; r < ROUNDS; r++) {
      steadies.directPlain?.push(await steady("direct", PLAIN, PLAIN_RATE));
      steadies.proxyPlain?.push(await steady("proxy", PLAIN, PLAIN_RATE));
      if (redisOperator) steadies.redisPlain?.push(await steady("redis", PLAIN, PLAIN_RATE));
      steadies.directStream?.push(await steady("direct", STREAM, STREAM_RATE));
      steadies.proxyStream?.push(await steady("proxy", STREAM, STREAM_RATE));
      if (redisOperator) steadies.redisStream?.push(await steady("redis", STREAM, STREAM_RATE));
    }
    const machine = since(machineBefore, machineReading(operator.pid, wake.pids));
    const redisMachine =
      redisOperator && redisMachineBefore
        ? since(redisMachineBefore, machineReading(redisOperator.pid))
        : undefined;
    wake.stop();
    unshield();
    await peak("direct", PLAIN);
    await peak("proxy", PLAIN);
    if (redisOperator) await peak("redis", PLAIN);
    for (let r = 0; r < ROUNDS; r++) {
      peaks.directPlain?.push(await peak("direct", PLAIN));
      peaks.proxyPlain?.push(await peak("proxy", PLAIN));
      if (redisOperator) peaks.redisPlain?.push(await peak("redis", PLAIN));
      peaks.directStream?.push(await peak("direct", STREAM));
      peaks.proxyStream?.push(await peak("proxy", STREAM));
      if (redisOperator) peaks.redisStream?.push(await peak("redis", STREAM));
    }
    const redisAfter = redis ? await redisReading(redis.server) : undefined;
    const redisBase = `keypool:{${NS}/pool}`;
    const redisPool = redis ? await redisPoolMemory(redis.server, redisBase) : undefined;
    // One scrape: a scrape resets the event-loop lag figures.
    const redisMetricsText = redisOperator ? await (await fetch(redisOperator.metricsUrl)).text() : "";
    const redisStoreUp = stateStoreUpIn(redisMetricsText);
    if (redisOperator) {
      await redisOperator.stop();
      log(`operator (--state-store redis) log: ${redisOperator.logPath}`);
    }
    const metricsText = await (await fetch(operator.metricsUrl)).text();
    const metricLines = (text: string) =>
      text
        .split("\n")
        .filter((l) =>
          /^keypool_proxy_(requests_total|failovers_total|added_latency_seconds_(sum|count))|^keypool_nodejs_eventloop_lag_(p50|p99|max)_seconds/.test(
            l,
          ),
        );
    const metrics = metricLines(metricsText);
    await operator.stop();
    log(`operator log: ${operator.logPath}`);

    const f = (n: number) => n.toFixed(2).padStart(8);
    console.log(
      `\nnode ${process.version}, ${SECONDS} s per run, ${ROUNDS} alternating rounds${pinned ? ", operator on core 0, fake provider and load on core 1" : ""}`,
    );
    console.log(`\npeak throughput (${CONNECTIONS} connections, as fast as it goes; the median round)`);
    console.log(
      `${"".padEnd(28)}${"direct rps".padStart(12)}${"proxy rps".padStart(12)}${"ratio".padStart(8)}`,
    );
    for (const kind of ["Plain", "Stream"] as const) {
      const d = median(peaks[`direct${kind}`] ?? []);
      const p = median(peaks[`proxy${kind}`] ?? []);
      console.log(
        `${(kind === "Plain" ? "chat completion" : "chat completion, streamed").padEnd(28)}${d.rps.toFixed(0).padStart(12)}${p.rps.toFixed(0).padStart(12)}${(p.rps / d.rps).toFixed(2).padStart(8)}   errors ${d.errors + d.non2xx + p.errors + p.non2xx}`,
      );
      if (redisOperator) {
        const q = median(peaks[`redis${kind}`] ?? []);
        const ratio = q.rps / p.rps;
        console.log(
          `${"  same, --state-store redis".padEnd(28)}${d.rps.toFixed(0).padStart(12)}${q.rps.toFixed(0).padStart(12)}${(q.rps / d.rps).toFixed(2).padStart(8)}   errors ${q.errors + q.non2xx}; redis / memory ${ratio.toFixed(2)} (aim: at least 0.5) ${aim(ratio >= 0.5)}`,
        );
      }
    }
    console.log(
      `\nlatency at a moderate fixed rate (ms, to the end of the body; plain ${PLAIN_RATE}/s, streamed ${STREAM_RATE}/s;\nall requests of the ${ROUNDS} rounds together, and each round's p99)`,
    );
    console.log(
      `${"".padEnd(28)}${"".padEnd(10)}${"p50".padStart(8)}${"p99".padStart(8)}${"p99.9".padStart(8)}   p99 of each round`,
    );
    for (const kind of ["Plain", "Stream"] as const) {
      const directRuns = steadies[`direct${kind}`] ?? [];
      const proxyRuns = steadies[`proxy${kind}`] ?? [];
      const d = pooledPaced(directRuns);
      const p = pooledPaced(proxyRuns);
      const name = kind === "Plain" ? "chat completion" : "chat completion, streamed";
      console.log(
        `${name.padEnd(28)}${"direct".padEnd(10)}${f(d.p50)}${f(d.p99)}${f(d.p999)}   ${runP99sText(directRuns, 2)}`,
      );
      console.log(
        `${"".padEnd(28)}${"proxy".padEnd(10)}${f(p.p50)}${f(p.p99)}${f(p.p999)}   ${runP99sText(proxyRuns, 2)}`,
      );
      console.log(
        `${"".padEnd(28)}${"added".padEnd(10)}${f(p.p50 - d.p50)}${f(p.p99 - d.p99)}${f(p.p999 - d.p999)}   failures ${d.failures + p.failures}`,
      );
      if (redisOperator) {
        const redisRuns = steadies[`redis${kind}`] ?? [];
        const q = pooledPaced(redisRuns);
        console.log(
          `${"".padEnd(28)}${"redis".padEnd(10)}${f(q.p50)}${f(q.p99)}${f(q.p999)}   ${runP99sText(redisRuns, 2)}`,
        );
        console.log(
          `${"".padEnd(28)}${"vs memory".padEnd(10)}${f(q.p50 - p.p50)}${f(q.p99 - p.p99)}${f(q.p999 - p.p999)}   p50 ${aim(q.p50 - p.p50 < 0.5)}, p99 ${aim(q.p99 - p.p99 < 1)}; failures ${q.failures}`,
        );
      }
    }
    console.log("aim: added p50 < 1 ms, added p99 < 3 ms at moderate load");
    if (redisOperator)
      console.log(
        "aim, --state-store redis (redis: proxied by the operator with Redis; vs memory: redis minus proxy): Redis adds p50 < 0.5 ms, p99 < 1 ms; peak at least 0.5 of the memory operator's",
      );
    const cpu = machine.threadCpuMs;
    const operatorMs = Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
    const redisCpu = redisMachine?.threadCpuMs ?? {};
    const redisOperatorMs = Object.values(redisCpu).reduce((sum, ms) => sum + ms, 0);
    // Core 0's busy time that neither the operator(s) nor its spinner (when one runs) used: kernel
    // threads, interrupts, and whatever the shield (shieldServerCore) could not move.
    const othersOnCore0 =
      machine.busyMs[0] === undefined
        ? "?"
        : `${Math.max(0, machine.busyMs[0] - (machine.othersCpuMs[0] ?? 0) - operatorMs - redisOperatorMs)} ms`;
    const withRedis = redisMachine
      ? `; operator with Redis: main thread ${redisCpu["MainThread"] ?? "?"} ms, V8 worker threads ${redisCpu["V8Worker"] ?? "?"} ms`
      : "";
    console.log(
      `during the latency runs (${(redisOperator ? 6 : 4) * ROUNDS * SECONDS} s): operator main thread ${cpu["MainThread"] ?? "?"} ms CPU, V8 worker threads ${cpu["V8Worker"] ?? "?"} ms (compiles, concurrent GC)${withRedis}; steal by the hypervisor ${machine.stealMs.map((ms, i) => `core ${i} ${ms} ms`).join(", ")}; other work on core 0 (kernel, interrupts, the machine's agents) ${othersOnCore0}`,
    );
    // The operator's own reading of what it adds (arrival to response headers, minus the
    // provider's time to headers): no client-side scheduling noise, bucket resolution.
    const added = bucketQuantiles(metricsText, "keypool_proxy_added_latency_seconds", [0.5, 0.99, 0.999]);
    console.log(
      `operator-measured added latency over all runs: p50 <= ${added[0]} ms, p99 <= ${added[1]} ms, p99.9 <= ${added[2]} ms (histogram buckets)`,
    );
    console.log(`operator during the runs:\n  ${metrics.join("\n  ")}`);
    if (redis && redisOperator && redisEmpty && redisBefore && redisAfter && redisPool) {
      console.log(
        `\n--state-store redis: the same operator (core 0) with key state in redis-server ${redis.version} (${redis.where}; persistence off)`,
      );
      const redisAdded = bucketQuantiles(
        redisMetricsText,
        "keypool_proxy_added_latency_seconds",
        [0.5, 0.99, 0.999],
      );
      console.log(
        `  operator-measured added latency over all runs: p50 <= ${redisAdded[0]} ms, p99 <= ${redisAdded[1]} ms, p99.9 <= ${redisAdded[2]} ms (histogram buckets); keypool_state_store_up at the end: ${redisStoreUp}`,
      );
      for (const line of redisLines({
        what: "proxied call",
        served: redisServed,
        empty: redisEmpty,
        before: redisBefore,
        after: redisAfter,
        pool: redisPool,
        base: redisBase,
        poolKeys: KEYS.length,
      }))
        console.log(line);
      console.log(
        `  operator with Redis during the runs:\n    ${metricLines(redisMetricsText).join("\n    ")}`,
      );
    }
  } finally {
    await redis?.server.stop();
    await plane.stop();
  }
}

/** `keypool serve` with one pool of three keys on the fake provider, as the low-rate and footprint rounds run it. */
const SERVE_KEYS = KEYS.slice(0, 3);
const serveEnv = (upstreamUrl: string) => ({ POOL_KEYS: SERVE_KEYS.join(","), POOL_BASE_URL: upstreamUrl });
const serveTargets = (upstreamUrl: string, serveUrl: string) => ({
  direct: {
    url: `${upstreamUrl}/v1/chat/completions`,
    headers: { authorization: `Bearer ${SERVE_KEYS[0]}` },
  },
  proxy: {
    url: `${serveUrl}/proxy/default/pool/v1/chat/completions`,
    headers: { authorization: "Bearer bench-caller" },
  },
});
/** Where `keypool serve` runs from (a directory with bin/keypool.js): the checkout unless BENCH_SERVE_DIR says. */
const SERVE_DIR = process.env.BENCH_SERVE_DIR;
const serveFrom = SERVE_DIR
  ? `bin/keypool.js in ${SERVE_DIR}`
  : "bin/keypool.js in the checkout (TypeScript sources, as npm start runs it)";

async function proxiedOk(url: string, headers: Record<string, string>): Promise<void> {
  await eventually(async () => {
    const res = await fetch(url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: PLAIN,
    }).catch(() => undefined);
    if (res) await res.arrayBuffer();
    return res?.status === 200 ? true : undefined;
  }, 30_000);
}

const ms2 = (n: number) => n.toFixed(2).padStart(8);

/**
 * The low-rate round: `keypool serve` (one pool of three keys) after the same warm-up as the
 * operator's latency runs, then LOW_RATE calls/s (fortio, open loop) through it and directly to
 * the same fake provider, alternating, LOW_ROUNDS rounds of LOW_SECONDS each: p50, p99, p99.9 and
 * max of every request together, the added latency, and the slowest proxied calls with when they
 * were sent, in seconds since the process started (to match with BENCH_NODE_FLAGS=--trace-gc in
 * its log).
 */
async function lowRateRound(fortio: string, upstream: { url: string }): Promise<void> {
  const serve = await benchServe(
    "serve-lowrate",
    serveEnv(upstream.url),
    SERVE_DIR ? { cwd: SERVE_DIR } : {},
  );
  const target = serveTargets(upstream.url, serve.url);
  const runs: Record<"direct" | "proxy", PacedResult[]> = { direct: [], proxy: [] };
  let machine: MachineReading;
  let metricsBefore: string;
  let metricsText: string;
  const wake = keepCoresAwake(log);
  const unshield = shieldServerCore(log);
  try {
    await proxiedOk(target.proxy.url, target.proxy.headers);
    const steady = (t: keyof typeof target, body: string, rate: number, seconds: number) =>
      paced(fortio, target[t].url, { headers: target[t].headers, body, rate, seconds: Math.max(1, seconds) });
    log(
      `low rate: keypool serve warming up for ${WARMUP} s; then ${LOW_ROUNDS} rounds of ${LOW_SECONDS} s at ${LOW_RATE}/s`,
    );
    await steady("proxy", PLAIN, PLAIN_RATE, (WARMUP * 3) / 4);
    await steady("proxy", STREAM, STREAM_RATE, WARMUP / 4);
    // The rate itself once, unmeasured: the first seconds after the change of rate.
    await steady("direct", PLAIN, LOW_RATE, 5);
    await steady("proxy", PLAIN, LOW_RATE, 5);
    const before = machineReading(serve.pid, wake.pids);
    metricsBefore = await (await fetch(serve.metricsUrl)).text();
    for (let r = 0; r < LOW_ROUNDS; r++) {
      runs.direct.push(await steady("direct", PLAIN, LOW_RATE, LOW_SECONDS));
      runs.proxy.push(await steady("proxy", PLAIN, LOW_RATE, LOW_SECONDS));
    }
    machine = since(before, machineReading(serve.pid, wake.pids));
    metricsText = await (await fetch(serve.metricsUrl)).text();
  } finally {
    wake.stop();
    unshield();
    await serve.stop();
  }
  log(`keypool serve (low rate) log: ${serve.logPath}`);
  const d = pooledPaced(runs.direct);
  const p = pooledPaced(runs.proxy);
  console.log(
    `\nlow rate: ${LOW_RATE} calls/s (fortio, open loop), chat completion; keypool serve, one pool of three keys, ${serveFrom};\n${LOW_ROUNDS} alternating rounds of ${LOW_SECONDS} s after a ${WARMUP} s warm-up at ${PLAIN_RATE}/s (ms, to the end of the body, all requests together)`,
  );
  console.log(
    `${"".padEnd(10)}${"p50".padStart(8)}${"p99".padStart(8)}${"p99.9".padStart(8)}${"max".padStart(8)}   p99 of each round`,
  );
  console.log(
    `${"direct".padEnd(10)}${ms2(d.p50)}${ms2(d.p99)}${ms2(d.p999)}${ms2(d.max)}   ${runP99sText(runs.direct, 2)}`,
  );
  console.log(
    `${"proxy".padEnd(10)}${ms2(p.p50)}${ms2(p.p99)}${ms2(p.p999)}${ms2(p.max)}   ${runP99sText(runs.proxy, 2)}`,
  );
  console.log(
    `${"added".padEnd(10)}${ms2(p.p50 - d.p50)}${ms2(p.p99 - d.p99)}${ms2(p.p999 - d.p999)}${ms2(p.max - d.max)}   failures ${d.failures + p.failures} of ${d.latencies.length + p.latencies.length}`,
  );
  console.log(
    `aim: added p99 < 2 ms (${aim(p.p99 - d.p99 < 2)}), added p99.9 < 10 ms (${aim(p.p999 - d.p999 < 10)})`,
  );
  const startedS = (atMs: number) => ((atMs - serve.startedAtMs) / 1000).toFixed(3);
  console.log(
    `slowest proxied calls (ms @ s since keypool serve started): ${p.slowest
      .slice(0, 8)
      .map((s) => `${s.ms.toFixed(1)} @ ${startedS(s.atMs)}`)
      .join(", ")}`,
  );
  const cpu = machine.threadCpuMs;
  console.log(
    `during the rounds (${2 * LOW_ROUNDS * LOW_SECONDS} s): keypool serve main thread ${cpu["MainThread"] ?? "?"} ms CPU, V8 worker threads ${cpu["V8Worker"] ?? "?"} ms; steal ${machine.stealMs.map((ms, i) => `core ${i} ${ms} ms`).join(", ")}`,
  );
  // What the process itself measured (arrival to response headers, less the provider's time to
  // headers): the part of the added latency spent inside it, not in the machine's scheduling.
  const inside = bucketQuantiles(
    metricsText,
    "keypool_proxy_added_latency_seconds",
    [0.5, 0.99, 0.999],
    metricsBefore,
  );
  console.log(
    `added latency measured inside keypool serve during the rounds: p50 <= ${inside[0]} ms, p99 <= ${inside[1]} ms, p99.9 <= ${inside[2]} ms (histogram buckets)`,
  );
  const lag = metricsText
    .split("\n")
    .filter((l) => /^keypool_nodejs_eventloop_lag_(p50|p99|max)_seconds/.test(l));
  console.log(`keypool serve after the rounds:\n  ${lag.join("\n  ")}`);
}

/** One reading of a process's memory: the kernel's resident set, and V8's and Node's figures. */
interface MemoryReading {
  vmRss: number;
  usage: NodeJS.MemoryUsage;
}

async function memoryReading(pid: number, inspector: Inspector): Promise<MemoryReading> {
  return { vmRss: rssOf(pid), usage: await inspector.memoryUsage() };
}

/**
 * The footprint of `keypool serve` with one pool of three keys: its memory at start, after each
 * step of FOOTPRINT_SECONDS of proxied calls at PLAIN_RATE, and after a full GC (through the
 * inspector: --inspect on a loopback port, nothing added to the product), with V8's heap spaces
 * and the largest constructors of a heap snapshot.
 */
async function footprintRound(fortio: string, upstream: { url: string }): Promise<void> {
  const serve = await benchServe("serve-footprint", serveEnv(upstream.url), {
    inspect: true,
    ...(SERVE_DIR ? { cwd: SERVE_DIR } : {}),
  });
  const target = serveTargets(upstream.url, serve.url).proxy;
  const inspector = await Inspector.connect(serve.inspectorUrl as string);
  const timeline: Array<{ atS: number; reading: MemoryReading; run?: PacedResult }> = [];
  let spaces: Awaited<ReturnType<Inspector["heapSpaces"]>>;
  let afterGc: MemoryReading;
  let top: Awaited<ReturnType<Inspector["heapSummary"]>>;
  try {
    await proxiedOk(target.url, target.headers);
    timeline.push({ atS: 0, reading: await memoryReading(serve.pid, inspector) });
    log(`footprint: ${FOOTPRINT_SECONDS} s of proxied calls at ${PLAIN_RATE}/s through keypool serve`);
    const step = Math.min(60, FOOTPRINT_SECONDS);
    for (let at = 0; at < FOOTPRINT_SECONDS; at += step) {
      const seconds = Math.min(step, FOOTPRINT_SECONDS - at);
      const run = await paced(fortio, target.url, {
        headers: target.headers,
        body: PLAIN,
        rate: PLAIN_RATE,
        seconds,
      });
      timeline.push({ atS: at + seconds, reading: await memoryReading(serve.pid, inspector), run });
    }
    spaces = await inspector.heapSpaces();
    await inspector.collectGarbage();
    afterGc = await memoryReading(serve.pid, inspector);
    top = await inspector.heapSummary(12);
  } finally {
    inspector.close();
    await serve.stop();
  }
  log(`keypool serve (footprint) log: ${serve.logPath}`);
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1).padStart(9);
  const row = (label: string, r: MemoryReading, rest = "") =>
    console.log(
      `${label.padEnd(22)}${mb(r.vmRss)}${mb(r.usage.heapTotal)}${mb(r.usage.heapUsed)}${mb(r.usage.external)}${mb(r.usage.arrayBuffers)}${rest}`,
    );
  console.log(
    `\nfootprint: keypool serve, one pool of three keys, ${serveFrom}; proxied chat completions at ${PLAIN_RATE}/s (MiB)`,
  );
  console.log(
    `${"".padEnd(22)}${"RSS".padStart(9)}${"heapTot".padStart(9)}${"heapUsed".padStart(9)}${"external".padStart(9)}${"arrayBuf".padStart(9)}`,
  );
  for (const { atS, reading, run } of timeline)
    row(
      atS === 0 ? "ready" : `after ${atS} s`,
      reading,
      run ? `   p99 ${run.p99.toFixed(2)} ms, failures ${run.failures}` : "",
    );
  row("after a full GC", afterGc);
  const last = timeline.at(-1)?.reading;
  if (last)
    console.log(
      `aim: RSS under 150 MiB after ${FOOTPRINT_SECONDS} s at ${PLAIN_RATE}/s: ${(last.vmRss / 1024 / 1024).toFixed(1)} MiB, ${aim(last.vmRss < 150 * 1024 * 1024)}`,
    );
  console.log(
    `V8 heap spaces before the GC (size/used, MiB): ${spaces
      .filter((s) => s.space_size > 0)
      .map(
        (s) =>
          `${s.space_name} ${(s.space_size / 1048576).toFixed(1)}/${(s.space_used_size / 1048576).toFixed(1)}`,
      )
      .join(", ")}`,
  );
  console.log(
    `largest in the heap after the GC, by constructor (self size): ${top
      .map((e) => `${e.name} ${(e.selfSize / 1048576).toFixed(1)} MiB (${e.count})`)
      .join(", ")}`,
  );
}

const ONLY = process.env.BENCH_ONLY;
if (ONLY !== undefined && !["operator", "lowrate", "footprint"].includes(ONLY))
  throw new Error(`BENCH_ONLY: operator, lowrate or footprint, not "${ONLY}"`);
const fortio = await ensureFortio(log);
const upstream = await fakeUpstream();
try {
  if (!ONLY || ONLY === "operator") await operatorRounds(fortio, upstream);
  if (!ONLY || ONLY === "lowrate") await lowRateRound(fortio, upstream);
  if (!ONLY || ONLY === "footprint") await footprintRound(fortio, upstream);
} finally {
  upstream.stop();
}
process.exit(0);
