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
 * Env: BENCH_SECONDS (default 5), BENCH_CONNECTIONS (default 32), BENCH_ROUNDS (default 3),
 * BENCH_AUTH=none, BENCH_KEEP_AWAKE=0, BENCH_FORTIO, BENCH_NODE_FLAGS, BENCH_PROFILE.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/control-plane/control-plane.ts";
import { eventually } from "../test/support/eventually.ts";
import {
  benchControlPlane,
  benchOperator,
  benchPool,
  clientToken,
  keepCoresAwake,
  load as loadWith,
  median,
  onCore,
  pinned,
  type Result,
} from "./support.ts";
import { ensureFortio, type PacedResult, paced, pooledPaced, runP99sText } from "./fortio.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const NS = "bench";
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
try {
  await benchPool(
    kc,
    core,
    NS,
    "pool",
    Array.from({ length: 10 }, (_, i) => `sk-bench-dispense-${i}-${"z".repeat(32)}`),
    { provider: "openai", strategy: "RoundRobin", leases: { duration: "5s" } },
  );
  const token = await clientToken(kc, core, NS, ["pool"]);
  // BENCH_AUTH=none measures the dispenser without auth, to see what auth costs.
  const operator = await benchOperator(
    plane,
    "dispense",
    process.env.BENCH_AUTH === "none" ? ["--auth", "none"] : [],
  );
  const base = operator.url;
  const keyUrl = `${base}/v1/pools/${NS}/pool/key`;
  const headers = { authorization: `Bearer ${token}` };
  // Warm the auth cache and check the answer.
  const sample = await eventually(async () => {
    const res = await fetch(keyUrl, { headers });
    return res.status === 200 ? res.text() : undefined;
  }, 30_000);
  await writeFile(join(tmpdir(), "keypool-bench-sample.json"), sample);

  const bare = await bareServer(sample);
  log(`warming up; ${SECONDS} s per run, ${CONNECTIONS} connections, ${ROUNDS} rounds`);
  // The same request (with its 1 KB Authorization header) to both servers. Rounds alternate
  // between them; the median peak and the latency of all rounds' requests together are reported:
  // on a 2-core machine shared with the load generator, single runs swing by a third.
  await load(bare.url, headers);
  await load(keyUrl, headers);
  const rounds: Array<{ bare: Result; keypool: Result }> = [];
  for (let r = 0; r < ROUNDS; r++)
    rounds.push({ bare: await load(bare.url, headers), keypool: await load(keyUrl, headers) });
  const barePeak = median(rounds.map((r) => r.bare));
  const peak = median(rounds.map((r) => r.keypool));
  // Latency at half of each server's own peak, rounds alternating between the two.
  const steady = (url: string, rate: number) => paced(fortio, url, { headers, rate, seconds: SECONDS });
  const bareRate = Math.round(barePeak.rps / 2);
  const rate = Math.round(peak.rps / 2);
  // The bare server also at the operator's rate: the same load, so the difference is what the
  // operator adds, apart from what the machine and the load generator add to both.
  const halves: Array<{ bare: PacedResult; bareAtRate: PacedResult; keypool: PacedResult }> = [];
  const wake = keepCoresAwake(log);
  for (let r = 0; r < ROUNDS; r++)
    halves.push({
      bare: await steady(bare.url, bareRate),
      bareAtRate: await steady(bare.url, rate),
      keypool: await steady(keyUrl, rate),
    });
  wake.stop();
  const bareHalf = pooledPaced(halves.map((h) => h.bare));
  const bareAtRate = pooledPaced(halves.map((h) => h.bareAtRate));
  const half = pooledPaced(halves.map((h) => h.keypool));
  bare.stop();
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
} finally {
  await plane.stop();
}
process.exit(0);
