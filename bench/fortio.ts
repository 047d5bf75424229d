/**
 * fortio (fortio.org/fortio, Istio's load tester), the load generator the benchmarks time latency
 * with at a fixed rate: each connection sends at an even pace (staggered across connections),
 * whatever the server does, and every request is timed from when it left to the end of its
 * response body.
 *
 * Percentiles come from fortio's access log (each request's latency, to the microsecond), not
 * from its histogram: the histogram's buckets widen with the value (0.5 ms wide from 2 to 10 ms,
 * 25 ms wide from 75 to 100 ms) and its percentiles are interpolated within a bucket. For the
 * 80 ms streamed calls of bench/proxy that put p50 at 86.9 ms where the requests' own latencies
 * gave 81.1 ms. The log costs fortio about 3% more CPU at 20,000 requests/s.
 *
 * Why not a load generator from npm, measured against the same bare node:http server on this
 * machine: autocannon's fixed-rate mode sends each connection's quota for the second as fast as
 * it can and then idles (bursts, not a rate) and counts whole milliseconds; a Node.js client
 * pacing requests itself had p99 3.0 ms at 1,000 requests/s (its own timers late by 2.3 ms at
 * p99); vegeta (Go's net/http client) kept up, but its p99 at 10,000/s was 2.4 to 4.7 ms. fortio's
 * own HTTP/1.1 client, on the same one core: p99 0.6 ms at 20,000/s.
 *
 * Connections: a request waits for the previous one on its connection, so a stall of the server
 * holds back the requests due meanwhile on that connection. With enough connections that each
 * sends less often than every stall lasts, every request due during a stall is already waiting
 * in the server's socket and is charged the stall, as an open-loop generator would charge it.
 * The benchmarks size connections to the rate for that (connectionsFor).
 *
 * The binary: `BENCH_FORTIO` when set, else built once with `go install` from the Go module proxy
 * into the project's cache folder (beside the control-plane binaries, outside the repository).
 * v1.63.0: later releases need grol.io modules that the Go module proxy refuses here.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheRoot, isExecutable } from "../test/support/control-plane/binaries.ts";
import { run, withLock } from "../test/support/control-plane/build.ts";
import { onCore } from "./support.ts";

export const FORTIO_VERSION = "v1.63.0";
const MODULE = "fortio.org/fortio";

const toolsDir = () => join(cacheRoot(), "tools", `fortio-${FORTIO_VERSION}`);

/** The fortio binary's path, building it first when needed (needs Go on the PATH). */
export async function ensureFortio(log: (line: string) => void): Promise<string> {
  if (process.env.BENCH_FORTIO) return process.env.BENCH_FORTIO;
  const dir = toolsDir();
  const binary = join(dir, "fortio");
  if (await isExecutable(binary)) return binary;
  // The control-plane build's lock and runner: two benchmarks starting at once build it once.
  return withLock(dir, log, async () => {
    if (await isExecutable(binary)) return binary;
    log(`building fortio ${FORTIO_VERSION} from the Go module proxy into ${dir}`);
    await mkdir(dir, { recursive: true });
    try {
      await run("go", ["install", `${MODULE}@${FORTIO_VERSION}`], {
        cwd: dir,
        env: { ...process.env, GOBIN: dir, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
        log,
        missing:
          "Building fortio (the benchmarks' fixed-rate load generator) needs the Go toolchain on PATH; or set BENCH_FORTIO=<path to a fortio binary>.",
      });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return binary;
  });
}

/**
 * All requests of several runs at the same rate, as one sample: percentiles over every request,
 * the runs' mean rate, their failures added up. A percentile of one short run is decided by its
 * slowest few requests: at 500/s for 5 s, p99 is the 25th slowest of 2,500, so one stall of the
 * machine that holds up 25 requests decides the p99 of the run it falls in, and the median of
 * three runs' p99s is the second worst run's. Pooled, the rounds give the p99 of every request
 * sent at that rate; the benchmarks print each round's p99 beside it (runP99s).
 */
export function pooledPaced(runs: PacedResult[]): PacedResult {
  const all = new Float64Array(runs.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of runs) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  return summarize(all.sort(), {
    rps: runs.reduce((sum, r) => sum + r.rps, 0) / Math.max(1, runs.length),
    failures: runs.reduce((sum, r) => sum + r.failures, 0),
    slowest: runs
      .flatMap((r) => r.slowest)
      .sort((a, b) => b.ms - a.ms)
      .slice(0, SLOWEST),
  });
}

/** p99 of each run, ascending: how much the runs pooled by `pooledPaced` differ. */
export const runP99s = (runs: PacedResult[]): number[] => runs.map((r) => r.p99).sort((a, b) => a - b);

/** runP99s as the benchmarks print it: "0.53 0.65 0.80". */
export const runP99sText = (runs: PacedResult[], digits: number): string =>
  runP99s(runs)
    .map((v) => v.toFixed(digits))
    .join(" ");

function summarize(
  latencies: Float64Array,
  rest: { rps: number; failures: number; slowest: SlowRequest[] },
): PacedResult {
  return {
    ...rest,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    max: latencies[latencies.length - 1] ?? Number.NaN,
    latencies,
  };
}

/**
 * Connections for `rate` requests/s: at least 32, and enough that each sends at most every 10 ms,
 * so stalls up to that long are charged to every request due during them (see above). More
 * connections than that cost the one-core load generator more than they buy: measured here at
 * 26,000/s against the bare server, p99 0.9 ms with 32, 3.5 ms with 100 and 7.4 ms with 650.
 */
export const connectionsFor = (rate: number) => Math.max(32, Math.ceil(rate / 100));

/** One fixed-rate run: achieved rate and latency percentiles (ms, to the end of the body). */
export interface PacedResult {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  failures: number;
  /** Every request's latency (ms), ascending. */
  latencies: Float64Array;
  /** The slowest requests (at most SLOWEST), slowest first: when each was sent (ms since the epoch), its latency. */
  slowest: SlowRequest[];
}

/** One request of a run: when it was sent (ms since the epoch) and its latency (ms). */
export interface SlowRequest {
  atMs: number;
  ms: number;
}

/** How many of a run's slowest requests PacedResult keeps, to match them with a trace of the server. */
const SLOWEST = 20;

export interface PacedOptions {
  headers: Record<string, string>;
  /** A JSON body: the request becomes a POST. */
  body?: string;
  rate: number;
  seconds: number;
}

interface FortioReport {
  ActualQPS: number;
  DurationHistogram: {
    Count: number;
    Max: number;
    Percentiles: Array<{ Percentile: number; Value: number }>;
  };
  RetCodes: Record<string, number>;
}

/**
 * `rate` requests per second for `seconds` against `url`, from fortio on the load generator's
 * core (one Go thread: it has that core, as the Node.js load generator had).
 */
export async function paced(fortio: string, url: string, o: PacedOptions): Promise<PacedResult> {
  const stem = join(tmpdir(), `keypool-bench-fortio-${process.pid}`);
  const args = [
    "load",
    "-quiet",
    "-json",
    `${stem}.json`,
    "-qps",
    String(o.rate),
    "-c",
    String(connectionsFor(o.rate)),
    "-t",
    `${o.seconds}s`,
    "-uniform",
    "-r",
    "0.00001",
    "-p",
    "50,99,99.9",
    "-access-log-file",
    `${stem}.log`,
  ];
  for (const [k, v] of Object.entries(o.headers)) args.push("-H", `${k}: ${v}`);
  if (o.body !== undefined) {
    await writeFile(`${stem}.body`, o.body);
    args.push("-payload-file", `${stem}.body`, "-content-type", "application/json");
  }
  args.push(url);
  const child = spawn(...onCore(1, fortio, args), {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, GOMAXPROCS: "1" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`fortio load exited with ${code}: ${stderr.slice(-2000)}`);
  const report = JSON.parse(await readFile(`${stem}.json`, "utf8")) as FortioReport;
  const accessLog = await readFile(`${stem}.log`, "utf8");
  const latencies = latenciesOf(accessLog);
  await rm(`${stem}.json`, { force: true });
  await rm(`${stem}.body`, { force: true });
  await rm(`${stem}.log`, { force: true });
  const h = report.DurationHistogram;
  if (latencies.length !== h.Count)
    throw new Error(`fortio's access log has ${latencies.length} requests, its report ${h.Count}`);
  return summarize(latencies, {
    rps: report.ActualQPS,
    failures: h.Count - (report.RetCodes["200"] ?? 0),
    slowest: slowestOf(accessLog, SLOWEST),
  });
}

/** The `count` slowest requests of fortio's access log, slowest first (its timestamps are ns). */
export function slowestOf(log: string, count: number): SlowRequest[] {
  return log
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const entry = JSON.parse(line) as { latency: number; timestamp: number };
      return { atMs: entry.timestamp / 1e6, ms: entry.latency * 1000 };
    })
    .sort((a, b) => b.ms - a.ms)
    .slice(0, count);
}

/** The requests' latencies (ms), sorted, from fortio's JSON access log (a line per request). */
export function latenciesOf(log: string): Float64Array {
  const lines = log.split("\n").filter((line) => line.length > 0);
  const latencies = new Float64Array(lines.length);
  lines.forEach((line, i) => {
    latencies[i] = (JSON.parse(line) as { latency: number }).latency * 1000;
  });
  return latencies.sort();
}

/** Nearest-rank percentile of sorted values: the smallest value that p% of them do not exceed. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}
