/**
 * npm run bench:dispense — throughput and latency of GET /v1/pools/{ns}/{pool}/key through
 * `keypool operator` with Kubernetes auth (TokenReview + SubjectAccessReview, warm cache), against
 * a bare node:http server answering a same-sized JSON body, on the same machine, in the same run.
 *
 * For each server: peak throughput (autocannon, as fast as it goes), then p50/p99 latency at
 * half of that peak (a fixed request rate). Each server runs in its own process; the load
 * generator in this one.
 *
 * Env: BENCH_SECONDS (default 5), BENCH_CONNECTIONS (default 32), BENCH_ROUNDS (default 3).
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
  load as loadWith,
  median,
  onCore,
  pinned,
  type Result,
  repeat,
} from "./support.ts";

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
  // between them and the medians are reported: on a 2-core machine shared with the load
  // generator, single runs swing by a third.
  await load(bare.url, headers);
  await load(keyUrl, headers);
  const rounds: Array<{ bare: Result; keypool: Result }> = [];
  for (let r = 0; r < ROUNDS; r++)
    rounds.push({ bare: await load(bare.url, headers), keypool: await load(keyUrl, headers) });
  const barePeak = median(rounds.map((r) => r.bare));
  const peak = median(rounds.map((r) => r.keypool));
  const bareHalf = median(await repeat(ROUNDS, () => load(bare.url, headers, Math.round(barePeak.rps / 2))));
  const half = median(await repeat(ROUNDS, () => load(keyUrl, headers, Math.round(peak.rps / 2))));
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

  const row = (name: string, p: Result, h: Result) =>
    `${name.padEnd(34)}${p.rps.toFixed(0).padStart(9)}  ${String(h.p50).padStart(7)}  ${String(h.p99).padStart(7)}  ${String(p.errors + p.non2xx + h.errors + h.non2xx).padStart(6)}`;
  console.log(
    `\nnode ${process.version}, body ${sample.length} bytes, ${CONNECTIONS} connections, ${SECONDS} s per run, medians of ${ROUNDS} alternating rounds${pinned ? ", server on core 0, load on core 1" : ""}`,
  );
  console.log(
    `${"".padEnd(34)}${"peak rps".padStart(9)}  ${"p50 ms".padStart(7)}  ${"p99 ms".padStart(7)}  ${"errors".padStart(6)}   (latency at half of peak)`,
  );
  console.log(row("bare node:http, same body", barePeak, bareHalf));
  console.log(row("keypool GET .../key (k8s auth)", peak, half));
  console.log(`throughput ratio keypool / bare: ${(peak.rps / barePeak.rps).toFixed(2)}`);
  console.log(`operator during the runs:\n  ${authMetrics.join("\n  ")}`);
} finally {
  await plane.stop();
}
process.exit(0);
