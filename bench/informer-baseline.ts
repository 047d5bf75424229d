/**
 * The baseline of bench/controller.ts, run as a child process of it so that its memory is its
 * own: a bare @kubernetes/client-node informer (makeInformer) over the KeyPools and the labelled
 * Secrets of one namespace, what the operator's two caches hold at the least, with nothing else.
 *
 *   node --expose-gc bench/informer-baseline.ts <kubeconfig> <namespace>
 *
 * Speaks JSON lines: once both informers have synced it collects garbage and writes
 * `{"syncedMs", "pools", "secrets", "memory"}` (syncedMs since this process started, memory after
 * the collection); then, for each "snapshot" line on stdin, the summary of a heap snapshot (top
 * constructors); it stops when stdin ends.
 */
import { createInterface } from "node:readline";
import { getHeapSnapshot } from "node:v8";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  makeInformer,
  type V1Secret,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../src/api/keypool.ts";
import { SECRET_LABEL } from "../src/sources/kubernetes/secrets.ts";
import { byConstructor, HeapSnapshotParser, SnapshotIndex } from "./heap-snapshot.ts";

const [kubeconfig, namespace] = process.argv.slice(2);
if (!kubeconfig || !namespace) throw new Error("usage: informer-baseline.ts <kubeconfig> <namespace>");
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const objects = kc.makeApiClient(CustomObjectsApi);

const pools = makeInformer<KubernetesObject>(
  kc,
  `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`,
  () => objects.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }),
);
const secrets = makeInformer<V1Secret>(
  kc,
  `/api/v1/namespaces/${namespace}/secrets`,
  () => core.listNamespacedSecret({ namespace, labelSelector: SECRET_LABEL }),
  SECRET_LABEL,
);
for (const informer of [pools, secrets])
  informer.on("error", (err: unknown) => process.stderr.write(`informer error: ${String(err)}\n`));

// start() resolves once the list is in the cache and the watch is open.
await Promise.all([pools.start(), secrets.start()]);
const syncedMs = performance.now();
gc();
gc();
const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
write({
  syncedMs,
  pools: pools.list(namespace).length,
  secrets: secrets.list(namespace).length,
  memory: process.memoryUsage(),
});

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== "snapshot") continue;
  const parser = new HeapSnapshotParser();
  const stream = getHeapSnapshot();
  stream.setEncoding("utf8");
  for await (const chunk of stream) parser.push(chunk as string);
  write(byConstructor(new SnapshotIndex(parser.end()), 10));
}
await Promise.all([pools.stop(), secrets.stop()]);
process.exit(0);
