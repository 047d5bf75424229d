/**
 * npm run bench:controller — the operator at scale on a real control plane (the test harness).
 *
 *   1. cold start: N KeyPools x K keys (one labelled Secret of K entries per pool) exist before
 *      the operator starts; time until every pool reports Ready=True;
 *   2. churn: one key added to each of M Secrets at once; time until every one shows in status;
 *   3. operator RSS (from /proc) and status writes per second (its /metrics counter);
 *   4. baseline, same run: a bare client merge-patching the same statuses as fast as it can
 *      with the same concurrency, i.e. what the API server itself allows on this machine.
 *
 * Env: BENCH_POOLS (default 1000), BENCH_KEYS (20), BENCH_CHURN (100).
 */
import { readFile } from "node:fs/promises";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../src/api/keypool.ts";
import { freePort } from "../test/support/control-plane/control-plane.ts";
import { startOperator } from "../test/support/operator-process.ts";
import { benchControlPlane } from "./support.ts";

const POOLS = Number(process.env.BENCH_POOLS ?? 1000);
const KEYS = Number(process.env.BENCH_KEYS ?? 20);
const CHURN = Math.min(POOLS, Number(process.env.BENCH_CHURN ?? 100));
const NS = "bench";
const CONCURRENCY = 16;

const log = (line: string) => process.stderr.write(`${line}\n`);

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const secretData = (pool: number, keys: number) =>
  Object.fromEntries(
    Array.from({ length: keys }, (_, k) => [`k${k}`, `sk-bench-${pool}-${k}-${"x".repeat(24)}`]),
  );

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
}

const { plane, kc, core } = await benchControlPlane(NS, log);
try {
  const objects = kc.makeApiClient(CustomObjectsApi);

  const indexes = Array.from({ length: POOLS }, (_, i) => i);
  let t = Date.now();
  await inParallel(indexes, CONCURRENCY, (i) =>
    core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: `keys-${i}`, labels: { "keypool.dev/secret": "true" } },
        stringData: secretData(i, KEYS),
      },
    }),
  );
  await inParallel(indexes, CONCURRENCY, (i) =>
    objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
      body: {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: `pool-${i}` },
        spec: { provider: "openai", keys: [{ secretRef: { name: `keys-${i}` } }] },
      },
    }),
  );
  log(`created ${POOLS} Secrets x ${KEYS} keys and ${POOLS} KeyPools in ${Date.now() - t} ms`);

  const countReady = async () => {
    const list = (await objects.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NS,
      plural: PLURAL,
    })) as {
      items: Array<{
        status?: { conditions?: Array<{ type: string; status: string }>; keys?: { total?: number } };
      }>;
    };
    return list.items;
  };

  const probesPort = await freePort();
  const started = Date.now();
  const operator = startOperator([
    "--kubeconfig",
    plane.kubeconfigPath,
    "--probes-port",
    String(probesPort),
    "--log-level",
    "warn",
    // The controller alone: no key probes (the bench keys are fake, the providers unreachable).
    "--no-probes",
  ]);
  let readyAt = 0;
  for (;;) {
    const items = await countReady();
    const ready = items.filter((p) =>
      p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
    ).length;
    if (ready === POOLS) {
      readyAt = Date.now();
      break;
    }
    if (Date.now() - started > 600_000) throw new Error(`only ${ready}/${POOLS} Ready after 10 min`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const coldMs = readyAt - started;
  const writesAfterCold = await metric(probesPort, "keypool_status_writes_total");
  const rssCold = await rssMb(operator.child.pid as number);
  const heapCold = (await metric(probesPort, "keypool_nodejs_heap_size_used_bytes")) / 2 ** 20;

  // Churn: add one key to CHURN Secrets at once.
  t = Date.now();
  const churned = indexes.slice(0, CHURN);
  await inParallel(churned, CONCURRENCY, (i) =>
    core.patchNamespacedSecret(
      {
        namespace: NS,
        name: `keys-${i}`,
        body: { stringData: { extra: `sk-bench-extra-${i}-${"y".repeat(24)}` } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    ),
  );
  for (;;) {
    const items = await countReady();
    if (items.filter((p) => p.status?.keys?.total === KEYS + 1).length === CHURN) break;
    if (Date.now() - t > 300_000) throw new Error("churn not reflected after 5 min");
    await new Promise((r) => setTimeout(r, 100));
  }
  const churnMs = Date.now() - t;
  const writesAfterChurn = await metric(probesPort, "keypool_status_writes_total");

  // Idle: nothing changes for 10 s; writes should stop.
  await new Promise((r) => setTimeout(r, 10_000));
  const writesIdle = (await metric(probesPort, "keypool_status_writes_total")) - writesAfterChurn;
  const rssIdle = await rssMb(operator.child.pid as number);
  const heapIdle = (await metric(probesPort, "keypool_nodejs_heap_size_used_bytes")) / 2 ** 20;
  await operator.stop();

  // Baseline: a bare client patching the same statuses, same concurrency.
  t = Date.now();
  await inParallel(indexes, CONCURRENCY, (i) =>
    objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: NS,
        plural: PLURAL,
        name: `pool-${i}`,
        body: { status: { observedGeneration: 99 } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    ),
  );
  const baselineWritesPerSec = POOLS / ((Date.now() - t) / 1000);
  const coldWritesPerSec = writesAfterCold / (coldMs / 1000);

  const rows: Array<[string, string]> = [
    ["pools x keys", `${POOLS} x ${KEYS} (${POOLS * KEYS} keys)`],
    ["cold start: all pools Ready", `${(coldMs / 1000).toFixed(1)} s`],
    ["status writes during cold start", `${writesAfterCold} (${coldWritesPerSec.toFixed(0)} /s)`],
    [`churn: key added to ${CHURN} Secrets, all in status`, `${churnMs} ms`],
    ["status writes for the churn", `${writesAfterChurn - writesAfterCold}`],
    ["status writes in 10 s idle", `${writesIdle}`],
    ["operator RSS after cold start / idle", `${rssCold.toFixed(0)} MB / ${rssIdle.toFixed(0)} MB`],
    [
      "operator V8 heap used after cold start / idle",
      `${heapCold.toFixed(0)} MB / ${heapIdle.toFixed(0)} MB`,
    ],
    ["baseline: bare status patches, same concurrency", `${baselineWritesPerSec.toFixed(0)} /s`],
    ["operator write rate / baseline", `${(coldWritesPerSec / baselineWritesPerSec).toFixed(2)}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(
    `\nnode ${process.version}, kube-apiserver ${plane.version.gitVersion}, ${CONCURRENCY}-way client concurrency\n`,
  );
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
} finally {
  await plane.stop();
}
process.exit(0);
