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
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { open, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { CustomObjectsApi, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import autocannon from "autocannon";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../src/api/keypool.ts";
import { freePort } from "../test/support/control-plane/control-plane.ts";
import { eventually } from "../test/support/eventually.ts";
import { benchControlPlane } from "./support.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** The run with the median throughput, and median latencies across runs. */
function median(results: Result[]): Result {
  const mid = <T>(values: T[], by: (v: T) => number) =>
    [...values].sort((a, b) => by(a) - by(b))[values.length >> 1] as T;
  return {
    rps: mid(results, (r) => r.rps).rps,
    p50: mid(results, (r) => r.p50).p50,
    p99: mid(results, (r) => r.p99).p99,
    errors: results.reduce((n, r) => n + r.errors, 0),
    non2xx: results.reduce((n, r) => n + r.non2xx, 0),
  };
}

async function repeat(run: () => Promise<Result>): Promise<Result[]> {
  const out: Result[] = [];
  for (let i = 0; i < ROUNDS; i++) out.push(await run());
  return out;
}
const NS = "bench";
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(url: string, headers: Record<string, string>, overallRate?: number): Promise<Result> {
  const result = await autocannon({
    url,
    headers,
    connections: CONNECTIONS,
    duration: SECONDS,
    ...(overallRate ? { overallRate } : {}),
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

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
  const child = spawn(...onServerCore(process.execPath, ["-e", code]), {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await once(child.stdout, "data");
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

/**
 * With taskset available and 2+ cores, each server under test runs on core 0 and this process
 * (the load generator) on core 1, so they do not preempt each other and latency percentiles
 * measure the server, not the scheduler. Same placement for the bare server and keypool.
 */
const pinned = (() => {
  try {
    if (availableParallelism() < 2) return false;
    execFileSync("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
function onServerCore(command: string, args: string[]): [string, string[]] {
  return pinned ? ["taskset", ["-c", "0", command, ...args]] : [command, args];
}

const { plane, kc, core } = await benchControlPlane(NS, log);
try {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedSecret({
    namespace: NS,
    body: {
      metadata: { name: "keys", labels: { "keypool.dev/secret": "true" } },
      stringData: Object.fromEntries(
        Array.from({ length: 10 }, (_, i) => [`k${i}`, `sk-bench-dispense-${i}-${"z".repeat(32)}`]),
      ),
    },
  });
  await eventually(() =>
    kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      body: {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: "pool" },
        spec: {
          provider: "openai",
          strategy: "RoundRobin",
          keys: [{ secretRef: { name: "keys" } }],
          leases: { duration: "5s" },
        },
      },
    }),
  );
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: "client" } } });
  await rbac.createNamespacedRole({
    namespace: NS,
    body: {
      metadata: { name: "use-pool" },
      rules: [{ apiGroups: [GROUP], resources: [PLURAL], verbs: ["use"], resourceNames: ["pool"] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: NS,
    body: {
      metadata: { name: "use-pool" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "use-pool" },
      subjects: [{ kind: "ServiceAccount", name: "client", namespace: NS }],
    },
  });
  const token = (
    await core.createNamespacedServiceAccountToken({
      namespace: NS,
      name: "client",
      body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
    })
  ).status?.token as string;

  // Info level: every dispense writes its audit line, as in production. The lines go to a file
  // (as they would go to the container runtime), not through this process, which is busy
  // generating load. BENCH_PROFILE=dir writes a CPU profile of the operator there.
  const port = await freePort();
  const probesPort = await freePort();
  const logPath = join(tmpdir(), `keypool-bench-dispense-${process.pid}.log`);
  const logFile = await open(logPath, "w");
  const operator = spawn(
    ...onServerCore(process.execPath, [
      "src/main.ts",
      "operator",
      "--kubeconfig",
      plane.kubeconfigPath,
      "--no-probes",
      "--port",
      String(port),
      "--address",
      "127.0.0.1",
      "--probes-port",
      String(probesPort),
      "--probes-address",
      "127.0.0.1",
      // BENCH_AUTH=none measures the dispenser without auth, to see what auth costs.
      ...(process.env.BENCH_AUTH === "none" ? ["--auth", "none"] : []),
    ]),
    {
      stdio: ["ignore", logFile.fd, logFile.fd],
      env: {
        ...process.env,
        ...(process.env.BENCH_PROFILE
          ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` }
          : {}),
      },
    },
  );
  await logFile.close();
  const base = `http://127.0.0.1:${port}`;
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
  const bareHalf = median(await repeat(() => load(bare.url, headers, Math.round(barePeak.rps / 2))));
  const half = median(await repeat(() => load(keyUrl, headers, Math.round(peak.rps / 2))));
  bare.stop();
  const authMetrics = (await (await fetch(`http://127.0.0.1:${probesPort}/metrics`)).text())
    .split("\n")
    .filter((l) =>
      /^keypool_(auth_requests_total|nodejs_eventloop_lag_(p50|p99|max)_seconds|nodejs_gc_duration_seconds_(sum|count))/.test(
        l,
      ),
    );
  operator.kill("SIGTERM");
  await once(operator, "exit");
  log(`operator log: ${logPath}`);

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
