/**
 * npm run bench:dispense — throughput and latency of GET /v1/pools/{ns}/{pool}/key through
 * `keypool operator` with Kubernetes auth (TokenReview + SubjectAccessReview, warm cache), against
 * a bare node:http server answering a same-sized JSON body, on the same machine, in the same run.
 *
 * For each server: peak throughput (autocannon, as fast as it goes), then p50/p99 latency at
 * half of that peak: a fixed, even request rate from fortio (bench/fortio.ts says why not
 * autocannon), timed in microseconds. Each server runs in its own process on core 0; the load
 * generators and the control plane on core 1.
 *
 * The same run measures a third server: the same operator with `--state-store redis://...`
 * (shared key state: every dispense confirmed by one atomic reservation script in Redis, see
 * src/state/), against a redis-server started here on core 1 with the load generator. Its rounds
 * alternate with the others; its latency is taken at the memory operator's half-peak rate, so
 * the two compare at the same load. After the run it prints what Redis did: commands per
 * dispense (INFO commandstats), CPU, used_memory, and MEMORY USAGE of the pool's keys. The
 * bench pool has no limits: the reservation still checks the key's state, opens the lease
 * (5 s), counts it in flight and counts the request, but keeps no limit windows; RoundRobin
 * needs no in-flight counts first (LeastLoaded would: one more round trip).
 *
 * Env: BENCH_SECONDS (default 5), BENCH_CONNECTIONS (default 32), BENCH_ROUNDS (default 3),
 * BENCH_AUTH=none, BENCH_KEEP_AWAKE=0, BENCH_FORTIO, BENCH_NODE_FLAGS, BENCH_PROFILE,
 * BENCH_REDIS=0 (no Redis variant).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/control-plane/control-plane.ts";
import { eventually } from "../test/support/eventually.ts";
import {
  aim,
  benchControlPlane,
  benchOperator,
  benchPool,
  benchRedis,
  benchRedisOn,
  clientToken,
  keepCoresAwake,
  load as loadWith,
  median,
  onCore,
  pinned,
  redisLines,
  redisPoolMemory,
  redisReading,
  type Result,
  stateStoreUp,
  stateStoreUpIn,
} from "./support.ts";
import { ensureFortio, type PacedResult, paced, pooledPaced, runP99sText } from "./fortio.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NS = "bench";
/** Keys in the bench pool. */
const KEYS = 10;
const log = (line: string) => process.stderr.write(`${line}\n`);

const load = (url: string, headers: Record<string, string>, overallRate?: number) =>
  loadWith(url, {
    headers,
    connections: CONNECTIONS,
    seconds: SECONDS,
    ...(overallRate ? { overallRate } : {}),
  });

/** A bare node:http server in its own process, answering `body` to every request. */
async function bareServer(body: string) {
  const port = await freePort();
  const code = `
    const http = require("node:http");
    const body = ${JSON.stringify(body)};
    http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(body) });
      res.end(body);
    }).listen(${port}, "127.0.0.1", () => process.stdout.write("ready\\n"));
  `;
  const child = spawn(...onCore(0, process.execPath, ["-e", code]), {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await once(child.stdout, "data");
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

const fortio = await ensureFortio(log);
const { plane, kc, core } = await benchControlPlane(NS, log, { pinToLoadCore: true });
const redis = benchRedisOn ? await benchRedis(log) : undefined;
try {
  // Redis before anything connected to it: the baseline of used_memory.
  const redisEmpty = redis ? await redisReading(redis.server) : undefined;
  await benchPool(
    kc,
    core,
    NS,
    "pool",
    Array.from({ length: KEYS }, (_, i) => `sk-bench-dispense-${i}-${"z".repeat(32)}`),
    { provider: "openai", strategy: "RoundRobin", leases: { duration: "5s" } },
  );
  const token = await clientToken(kc, core, NS, ["pool"]);
  // BENCH_AUTH=none measures the dispenser without auth, to see what auth costs.
  const authArgs = process.env.BENCH_AUTH === "none" ? ["--auth", "none"] : [];
  const operator = await benchOperator(plane, "dispense", authArgs);
  // The same operator with shared state in Redis, serving the same pool, on core 0 as well (each
  // is idle while the other is measured). Neither elects a leader: each writes the pool's status
  // after its own runs; status-only changes do not reconcile (src/controller/predicates.ts).
  const redisOperator = redis
    ? await benchOperator(plane, "dispense-redis", [...authArgs, "--state-store", redis.server.url])
    : undefined;
  const base = operator.url;
  const keyUrl = `${base}/v1/pools/${NS}/pool/key`;
  const headers = { authorization: `Bearer ${token}` };
  // Warm the auth cache and check the answer.
  const sample = await eventually(async () => {
    const res = await fetch(keyUrl, { headers });
    return res.status === 200 ? res.text() : undefined;
  }, 30_000);
  await writeFile(join(tmpdir(), "keypool-bench-sample.json"), sample);
  const redisKeyUrl = redisOperator ? `${redisOperator.url}/v1/pools/${NS}/pool/key` : undefined;
  let redisSample = "";
  if (redisOperator && redisKeyUrl) {
    redisSample = await eventually(async () => {
      const res = await fetch(redisKeyUrl, { headers });
      return res.status === 200 ? res.text() : undefined;
    }, 30_000);
    await eventually(async () => ((await stateStoreUp(redisOperator.metricsUrl)) === "1" ? true : undefined));
  }

  const bare = await bareServer(sample);
  log(`warming up; ${SECONDS} s per run, ${CONNECTIONS} connections, ${ROUNDS} rounds`);
  // The same request (with its 1 KB Authorization header) to both servers. Rounds alternate
  // between them; the median peak and the latency of all rounds' requests together are reported:
  // on a 2-core machine shared with the load generator, single runs swing by a third.
  await load(bare.url, headers);
  await load(keyUrl, headers);
  // The Redis variant's runs, counted: 2xx answers, for Redis's commands per dispense.
  let redisServed = 0;
  const redisBefore = redis ? await redisReading(redis.server) : undefined;
  const redisLoad = async (url: string) => {
    const result = await loadWith(url, { headers, connections: CONNECTIONS, seconds: SECONDS });
    redisServed += result.ok;
    return result;
  };
  if (redisKeyUrl) await redisLoad(redisKeyUrl);
  const rounds: Array<{ bare: Result; keypool: Result; redis?: Result }> = [];
  for (let r = 0; r < ROUNDS; r++)
    rounds.push({
      bare: await load(bare.url, headers),
      keypool: await load(keyUrl, headers),
      ...(redisKeyUrl ? { redis: await redisLoad(redisKeyUrl) } : {}),
    });
  const barePeak = median(rounds.map((r) => r.bare));
  const peak = median(rounds.map((r) => r.keypool));
  const redisPeak = redisKeyUrl ? median(rounds.flatMap((r) => (r.redis ? [r.redis] : []))) : undefined;
  // Latency at half of each server's own peak, rounds alternating between the two.
  const steady = (url: string, rate: number) => paced(fortio, url, { headers, rate, seconds: SECONDS });
  const bareRate = Math.round(barePeak.rps / 2);
  const rate = Math.round(peak.rps / 2);
  // The bare server also at the operator's rate: the same load, so the difference is what the
  // operator adds, apart from what the machine and the load generator add to both.
  // The Redis variant at the memory operator's rate too: the same load, so the difference is what
  // Redis adds.
  const halves: Array<{
    bare: PacedResult;
    bareAtRate: PacedResult;
    keypool: PacedResult;
    redis?: PacedResult;
  }> = [];
  const wake = keepCoresAwake(log);
  for (let r = 0; r < ROUNDS; r++) {
    const round = {
      bare: await steady(bare.url, bareRate),
      bareAtRate: await steady(bare.url, rate),
      keypool: await steady(keyUrl, rate),
    };
    const redisRun = redisKeyUrl ? await steady(redisKeyUrl, rate) : undefined;
    if (redisRun) redisServed += redisRun.latencies.length - redisRun.failures;
    halves.push({ ...round, ...(redisRun ? { redis: redisRun } : {}) });
  }
  // Both again at half of the Redis variant's own peak: at the memory operator's rate the Redis
  // variant runs close to its own peak, so queueing there hides what one call costs.
  const redisRate = redisPeak ? Math.round(redisPeak.rps / 2) : 0;
  const atRedisRate: Array<{ memory: PacedResult; redis: PacedResult }> = [];
  if (redisKeyUrl)
    for (let r = 0; r < ROUNDS; r++) {
      const memory = await steady(keyUrl, redisRate);
      const redisRun = await steady(redisKeyUrl, redisRate);
      redisServed += redisRun.latencies.length - redisRun.failures;
      atRedisRate.push({ memory, redis: redisRun });
    }
  wake.stop();
  const bareHalf = pooledPaced(halves.map((h) => h.bare));
  const bareAtRate = pooledPaced(halves.map((h) => h.bareAtRate));
  const half = pooledPaced(halves.map((h) => h.keypool));
  const redisHalves = halves.flatMap((h) => (h.redis ? [h.redis] : []));
  const redisHalf = redisKeyUrl ? pooledPaced(redisHalves) : undefined;
  bare.stop();
  const redisAfter = redis ? await redisReading(redis.server) : undefined;
  const redisBase = `keypool:{${NS}/pool}`;
  const redisPool = redis ? await redisPoolMemory(redis.server, redisBase) : undefined;
  // One scrape: a scrape resets the event-loop lag figures.
  const redisMetricsText = redisOperator ? await (await fetch(redisOperator.metricsUrl)).text() : "";
  const redisStoreUp = stateStoreUpIn(redisMetricsText);
  const redisMetrics = redisMetricsText
    .split("\n")
    .filter((l) =>
      /^keypool_(auth_requests_total|nodejs_eventloop_lag_(p50|p99|max)_seconds|nodejs_gc_duration_seconds_(sum|count))/.test(
        l,
      ),
    );
  if (redisOperator) {
    await redisOperator.stop();
    log(`operator (--state-store redis) log: ${redisOperator.logPath}`);
  }
  const authMetrics = (await (await fetch(operator.metricsUrl)).text())
    .split("\n")
    .filter((l) =>
      /^keypool_(auth_requests_total|nodejs_eventloop_lag_(p50|p99|max)_seconds|nodejs_gc_duration_seconds_(sum|count))/.test(
        l,
      ),
    );
  await operator.stop();
  log(`operator log: ${operator.logPath}`);

  const ms = (n: number) => n.toFixed(3).padStart(8);
  const row = (name: string, p: Result, h: PacedResult, at: number) =>
    `${name.padEnd(32)}${p.rps.toFixed(0).padStart(9)}${String(at).padStart(8)}${ms(h.p50)}${ms(h.p99)}${ms(h.p999)}${ms(h.max)}${String(p.errors + p.non2xx + h.failures).padStart(8)}`;
  console.log(
    `\nnode ${process.version}, body ${sample.length} bytes, ${CONNECTIONS} connections, ${SECONDS} s per run, ${ROUNDS} alternating rounds (peaks: the median round; latency: all requests of the rounds together)${pinned ? ", server on core 0, load on core 1" : ""}`,
  );
  console.log(
    `${"".padEnd(32)}${"peak rps".padStart(9)}${"at rps".padStart(8)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"p99.9".padStart(8)}${"max ms".padStart(8)}${"errors".padStart(8)}`,
  );
  console.log(row("bare node:http, same body", barePeak, bareHalf, bareRate));
  console.log(row("  same, at keypool's rate", barePeak, bareAtRate, rate));
  console.log(row("keypool GET .../key (k8s auth)", peak, half, rate));
  if (redisPeak && redisHalf) console.log(row("  same, --state-store redis", redisPeak, redisHalf, rate));
  console.log("(peak: autocannon, closed loop; latency: fortio at half of each peak, open loop)");
  console.log(`throughput ratio keypool / bare: ${(peak.rps / barePeak.rps).toFixed(2)} (aim: at least 0.5)`);
  console.log(
    `p99 at half of peak: keypool ${half.p99.toFixed(3)} ms (aim: under 2 ms); bare at the same rate ${bareAtRate.p99.toFixed(3)} ms, at half of its own peak ${bareHalf.p99.toFixed(3)} ms`,
  );
  console.log(
    `p99 of each round: keypool ${runP99sText(
      halves.map((h) => h.keypool),
      3,
    )}; bare at the same rate ${runP99sText(
      halves.map((h) => h.bareAtRate),
      3,
    )}; at half of its own peak ${runP99sText(
      halves.map((h) => h.bare),
      3,
    )}`,
  );
  console.log(`operator during the runs:\n  ${authMetrics.join("\n  ")}`);
  if (redis && redisPeak && redisHalf && redisEmpty && redisBefore && redisAfter && redisPool) {
    const ratio = redisPeak.rps / peak.rps;
    const addedP50 = redisHalf.p50 - half.p50;
    const addedP99 = redisHalf.p99 - half.p99;
    const signed = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(3)}`;
    console.log(
      `\n--state-store redis: the same operator (core 0) with key state in redis-server ${redis.version} (${redis.where}; persistence off); body ${redisSample.length} bytes`,
    );
    console.log(
      `  throughput ratio redis / memory: ${ratio.toFixed(2)} (${redisPeak.rps.toFixed(0)} / ${peak.rps.toFixed(0)} rps; aim: at least 0.5) ${aim(ratio >= 0.5)}`,
    );
    console.log(
      `  added by Redis at ${rate}/s (the memory operator's half-peak rate, both): p50 ${signed(addedP50)} ms (aim: under 0.5 ms) ${aim(addedP50 < 0.5)}; p99 ${signed(addedP99)} ms (aim: under 1 ms) ${aim(addedP99 < 1)}`,
    );
    const memoryLow = pooledPaced(atRedisRate.map((h) => h.memory));
    const redisLow = pooledPaced(atRedisRate.map((h) => h.redis));
    const lowP50 = redisLow.p50 - memoryLow.p50;
    const lowP99 = redisLow.p99 - memoryLow.p99;
    console.log(
      `  added by Redis at ${redisRate}/s (half of the Redis variant's own peak, both): p50 ${signed(lowP50)} ms (aim: under 0.5 ms) ${aim(lowP50 < 0.5)}; p99 ${signed(lowP99)} ms (aim: under 1 ms) ${aim(lowP99 < 1)}; redis p50/p99 ${redisLow.p50.toFixed(3)}/${redisLow.p99.toFixed(3)} ms, memory ${memoryLow.p50.toFixed(3)}/${memoryLow.p99.toFixed(3)} ms`,
    );
    console.log(
      `  p99 of each round: redis ${runP99sText(redisHalves, 3)}; memory ${runP99sText(
        halves.map((h) => h.keypool),
        3,
      )}; keypool_state_store_up at the end: ${redisStoreUp}`,
    );
    for (const line of redisLines({
      what: "dispense",
      served: redisServed,
      empty: redisEmpty,
      before: redisBefore,
      after: redisAfter,
      pool: redisPool,
      base: redisBase,
      poolKeys: KEYS,
    }))
      console.log(line);
    console.log(`  operator with Redis during the runs:\n    ${redisMetrics.join("\n    ")}`);
  }
} finally {
  await redis?.server.stop();
  await plane.stop();
}
process.exit(0);
