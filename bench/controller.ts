/**
 * npm run bench:controller — the operator at scale on a real control plane (the test harness),
 * for each scenario of N KeyPools x K keys (one labelled Secret of K entries per pool), each on a
 * fresh control plane:
 *
 *   1. setup: the Secrets, then the KeyPools, created with bounded concurrency (timed);
 *   2. cold start: the operator starts with every object there; time until every pool reports
 *      Ready=True (polled by paginated LISTs of the namespace's KeyPools), status writes by then
 *      (its /metrics keypool_status_writes_total), and, beside it, time until every pool serves
 *      keys (keypool_pools on /metrics: pools with an engine), which waits on no status write;
 *      then an idle period and the writes in it;
 *   3. memory: RSS (/proc/<pid>/status) after cold start, V8 heap and external memory from
 *      process.memoryUsage() (over the inspector protocol: the operator runs with --inspect on a
 *      loopback port), again after the idle period and a forced GC; then a heap snapshot,
 *      summarised (bench/heap-snapshot.ts): top constructors, and the heap attributed to the
 *      informer caches, the pool engines and the rest by dominators (operatorPart below);
 *   4. churn: one key added to each of M Secrets at once; time until every one shows in status;
 *   5. baselines, same run: a bare client merge-patching statuses as fast as it can with the same
 *      concurrency (what the API server allows here), and a bare @kubernetes/client-node informer
 *      over the same KeyPools and Secrets in a child process (bench/informer-baseline.ts), for
 *      its time to synced and its memory: the operator's figures as ratios to it.
 *
 * With taskset and two cores the operator and the informer baseline run on core 0, the control
 * plane and this process on core 1 (bench/support.ts `pinned`); during setup, before the operator
 * starts, the control plane and this process have both cores.
 *
 * Aims are printed beside the figures, never asserted: 1,000 x 20 under 200 MB RSS; 10,000 x 10
 * under 512 MB RSS and all Ready within 120 s; no status writes when nothing changes.
 *
 * Env: BENCH_SCENARIOS ("1000x20,10000x10"; BENCH_POOLS and BENCH_KEYS, when set, make one
 * scenario), BENCH_CHURN (100 Secrets), BENCH_IDLE_S (30), BENCH_PATCHES (status patches of the
 * bare baseline, 2000 at most), BENCH_CREATE_CONCURRENCY (32 creates at once during setup),
 * BENCH_SNAPSHOT_DIR (also write the operator's heap snapshots there, to open in DevTools),
 * BENCH_NODE_FLAGS (node flags for the operator, e.g. --max-old-space-size=384),
 * BENCH_OPERATOR_MAIN (the operator's entry point: dist/main.js after `npm run build` runs the
 * compiled JavaScript as the image does, without the ~20 MB node's type stripping costs),
 * BENCH_MEMORY_CGROUP (a cgroup directory, e.g. one with memory.limit_in_bytes or memory.max
 * set, that the operator joins before node starts: the cold start under a container's limit).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../src/api/keypool.ts";
import { SECRET_LABEL } from "../src/sources/kubernetes/secrets.ts";
import { freePort } from "../test/support/control-plane/control-plane.ts";
import {
  attribute,
  byConstructor,
  type Category,
  type ConstructorRow,
  dominators,
  HeapSnapshotParser,
  type NodeView,
  SnapshotIndex,
} from "./heap-snapshot.ts";
import { Inspector } from "./inspector.ts";
import {
  aim,
  benchControlPlane,
  benchNodeFlags,
  onCore,
  operatorArgs,
  pinned,
  residentOf,
} from "./support.ts";

interface Scenario {
  pools: number;
  keys: number;
}

/** BENCH_SCENARIOS ("1000x20,10000x10"), else BENCH_POOLS x BENCH_KEYS when either is set. */
function scenariosFrom(env: NodeJS.ProcessEnv): Scenario[] {
  const spec =
    env.BENCH_SCENARIOS ??
    (env.BENCH_POOLS || env.BENCH_KEYS
      ? `${env.BENCH_POOLS ?? 1000}x${env.BENCH_KEYS ?? 20}`
      : "1000x20,10000x10");
  return spec.split(",").map((part) => {
    const match = /^\s*(\d+)\s*x\s*(\d+)\s*$/.exec(part);
    if (!match) throw new Error(`BENCH_SCENARIOS: "${part}" is not POOLSxKEYS`);
    return { pools: Number(match[1]), keys: Number(match[2]) };
  });
}

const SCENARIOS = scenariosFrom(process.env);
const CHURN = Number(process.env.BENCH_CHURN ?? 100);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const PATCHES = Number(process.env.BENCH_PATCHES ?? 2000);
const SNAPSHOT_DIR = process.env.BENCH_SNAPSHOT_DIR;
const MEMORY_CGROUP = process.env.BENCH_MEMORY_CGROUP;
const CREATE_CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 32);
/** Client concurrency of the churn and of the bare status patches (as before: comparable runs). */
const CONCURRENCY = 16;
const PAGE = 500;
const CHURN_LABEL = "bench.keypool.dev/churn";
/** What the operator runs: the TypeScript sources (as npm start), or BENCH_OPERATOR_MAIN (dist/main.js after npm run build, as the image). */
const MAIN = process.env.BENCH_OPERATOR_MAIN ?? fileURLToPath(new URL("../src/main.ts", import.meta.url));
const BASELINE = fileURLToPath(new URL("./informer-baseline.ts", import.meta.url));
const MB = 2 ** 20;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const n = (v: number) => Math.round(v).toLocaleString("en-US");
const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

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

/**
 * Moves the control plane's processes (every thread: etcd's and the API server's Go threads) and
 * this one onto `cores` ("0-1" during setup, when the operator does not run yet; "1" after, as
 * benchControlPlane pinned them). Setup is bounded by the API server and by this process's
 * client (about as much CPU per create): on one shared core, 10,000 Secrets and 10,000 KeyPools
 * took minutes. Nothing when not pinned.
 */
async function moveControlPlane(dir: string, cores: string): Promise<void> {
  if (!pinned) return;
  const pids = [String(process.pid)];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(dir)) pids.push(entry);
  }
  for (const pid of pids) {
    try {
      execFileSync("taskset", ["-a", "-cp", cores, pid], { stdio: "ignore" });
    } catch {
      // gone meanwhile
    }
  }
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
}

/** The operator as its own process (on core 0 when pinned), with the inspector on a loopback port. */
async function spawnOperator(kubeconfig: string) {
  const probesPort = await freePort();
  const [command, args] = onCore(0, process.execPath, [
    ...benchNodeFlags(),
    "--inspect=127.0.0.1:0",
    MAIN,
    ...operatorArgs(kubeconfig, 0, probesPort),
    "--log-level",
    "warn",
  ]);
  // BENCH_MEMORY_CGROUP: the operator joins that cgroup before node starts, so it runs under its
  // memory limit as in a container (node sizes its heap from the limit; the kernel kills at it).
  const [file, argv] = MEMORY_CGROUP
    ? ["sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', MEMORY_CGROUP, command, ...args]]
    : [command, args];
  const child = spawn(file, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, KUBERNETES_SERVICE_HOST: "", KEYPOOL_SHUTDOWN_DELAY: "0s" },
  });
  const tail: string[] = [];
  let inspectorUrl: string | undefined;
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on("line", (line) => {
      inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
      tail.push(line);
      if (tail.length > 40) tail.shift();
    });
  const exited = once(child, "exit");
  const alive = () => {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `operator exited with ${child.exitCode ?? child.signalCode}${child.signalCode === "SIGKILL" ? " (out of memory?)" : ""}:\n${tail.join("\n")}`,
      );
  };
  for (let waited = 0; !inspectorUrl; waited += 50) {
    alive();
    if (waited > 30_000) throw new Error("no inspector address from the operator in 30 s");
    await sleep(50);
  }
  // The inspector session is a CDP connection: it adds nothing to the heap until used.
  const inspector = await Inspector.connect(inspectorUrl);
  return {
    child,
    pid: child.pid as number,
    probesPort,
    inspector,
    alive,
    async stop() {
      inspector.close();
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

interface Memory {
  rss: number;
  peak: number;
  usage: NodeJS.MemoryUsage;
}

/** The child process of bench/informer-baseline.ts: its time to synced and memory after GC. */
async function informerBaseline(kubeconfig: string, namespace: string) {
  const startedAt = Date.now();
  const child: ChildProcess = spawn(
    ...onCore(0, process.execPath, ["--expose-gc", BASELINE, kubeconfig, namespace]),
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout as NonNullable<ChildProcess["stdout"]> })[
    Symbol.asyncIterator
  ]();
  const nextLine = async <T>() => {
    const line = await lines.next();
    if (line.done) throw new Error("the informer baseline exited early");
    return JSON.parse(line.value) as T;
  };
  const synced = await nextLine<{
    syncedMs: number;
    pools: number;
    secrets: number;
    memory: NodeJS.MemoryUsage;
  }>();
  const wallMs = Date.now() - startedAt;
  const resident = residentOf(child.pid as number);
  child.stdin?.write("snapshot\n");
  const heap = await nextLine<{ rows: ConstructorRow[]; total: number; count: number }>();
  child.stdin?.end();
  await once(child, "exit");
  return { ...synced, wallMs, rss: resident.rss, peak: resident.peak, heap };
}

/**
 * Which part of the operator a heap node belongs to, for attribute(): the outermost node a rule
 * names claims everything it dominates (what would be freed with it alone). The heuristic:
 * - an informer cache: a ResourceWatcher (src/controller/watcher.ts), named by the collection
 *   path its reflector lists (#reflector.#o.path), with its ObjectCache, the cached objects and
 *   their strings; an ObjectCache reached otherwise counts as "informer caches";
 * - the pool engines: the classes of src/pool (PoolRegistry first: it holds every
 *   KeyPoolEngine, KeyRecord, usage window and lease table);
 * - code and modules: compiled code by node type (bytecode, SharedFunctionInfos, scripts), the
 *   ES module loader and its module records, and strings only the roots hold, which are mostly
 *   module source text (@kubernetes/client-node's generated API is the largest);
 * - @kubernetes/client-node's objects by constructor (V1*, *Api, KubeConfig, Watch, ...), and
 *   prom-client's metric Registry.
 * What parts share (a KeyPool's spec both the cache and the engine hold, say) is dominated by
 * neither and stays "(other)", with module state, closures and the runtime's own objects.
 */
const ENGINE = new Set([
  "PoolRegistry",
  "KeyPoolEngine",
  "KeyRecord",
  "LeaseTable",
  "RoundRobinSet",
  "LeastRecentlyUsedSet",
  "LeastLoadedSet",
  "WeightedSet",
  "LowestCostSet",
  "SpendCounter",
  "PoolSpending",
  "PriceTable",
  "ExactWindow",
  "BucketedWindow",
  "RateAverage",
  "IndexedHeap",
  "NoticeMemory",
  "FigureSum",
]);
const CLIENT_NODE =
  /^(V\d\w*|\w+V\d\w*Api|KubeConfig|Watch|ObjectSerializer|ServerConfiguration|\w+Authenticator)$/;
const CACHE_OF: Record<string, string> = {
  keypools: "KeyPool informer cache",
  secrets: "Secret informer cache",
  configmaps: "ConfigMap (pricing) informer cache",
};
const CODE = "code and modules (bytecode, scripts, module sources, loader)";

function operatorPart(node: NodeView): string | undefined {
  if (node.constructorName === "ResourceWatcher") {
    const path = node.follow("#reflector", "#o", "path")?.text() ?? "";
    return CACHE_OF[/\/(\w+)$/.exec(path)?.[1] ?? ""] ?? "informer caches";
  }
  if (node.constructorName === "ObjectCache") return "informer caches";
  if (ENGINE.has(node.constructorName)) return "pool engines (src/pool)";
  if (
    node.type === "code" ||
    node.constructorName === "ModuleLoader" ||
    node.name.endsWith("SourceTextModule")
  )
    return CODE;
  if (node.type === "string" && node.dominatorName === "(synthetic)") return CODE;
  if (CLIENT_NODE.test(node.constructorName)) return "@kubernetes/client-node objects";
  if (node.constructorName === "Registry") return "metrics (prom-client Registry)";
  return undefined;
}

async function createObjects(
  core: Awaited<ReturnType<typeof benchControlPlane>>["core"],
  objects: CustomObjectsApi,
  namespace: string,
  { pools, keys }: Scenario,
) {
  const indexes = Array.from({ length: pools }, (_, i) => i);
  let t = Date.now();
  await inParallel(indexes, CREATE_CONCURRENCY, (i) =>
    core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: `keys-${i}`, labels: { [SECRET_LABEL]: "true" } },
        stringData: secretData(i, keys),
      },
    }),
  );
  const secretsMs = Date.now() - t;
  t = Date.now();
  await inParallel(indexes, CREATE_CONCURRENCY, (i) =>
    objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      body: {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: `pool-${i}`, ...(i < CHURN ? { labels: { [CHURN_LABEL]: "true" } } : {}) },
        spec: { provider: "openai", keys: [{ secretRef: { name: `keys-${i}` } }] },
      },
    }),
  );
  return { secretsMs, poolsMs: Date.now() - t };
}

type PoolItem = {
  status?: { conditions?: Array<{ type: string; status: string }>; keys?: { total?: number } };
};

/** Every KeyPool of the namespace (or those with `labelSelector`), PAGE at a time. */
async function listPools(objects: CustomObjectsApi, namespace: string, labelSelector?: string) {
  const items: PoolItem[] = [];
  let token: string | undefined;
  do {
    const page = (await objects.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      limit: PAGE,
      ...(token ? { _continue: token } : {}),
      ...(labelSelector ? { labelSelector } : {}),
    })) as { items: PoolItem[]; metadata?: { _continue?: string; continue?: string } };
    items.push(...page.items);
    token = page.metadata?._continue ?? page.metadata?.continue;
  } while (token);
  return items;
}

const isReady = (p: PoolItem) =>
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

type Row = [string, string, string?];

async function runScenario(scenario: Scenario): Promise<string[]> {
  const { pools, keys } = scenario;
  const namespace = `bench-${pools}x${keys}`;
  const churn = Math.min(pools, CHURN);
  const { plane, kc, core } = await benchControlPlane(namespace, log, { pinToLoadCore: true });
  try {
    const objects = kc.makeApiClient(CustomObjectsApi);
    log(
      `${namespace}: creating ${n(pools)} Secrets x ${keys} keys and ${n(pools)} KeyPools, ${CREATE_CONCURRENCY} at once`,
    );
    await moveControlPlane(plane.dir, "0-1");
    const setup = await createObjects(core, objects, namespace, scenario).finally(() =>
      moveControlPlane(plane.dir, "1"),
    );

    const started = Date.now();
    const operator = await spawnOperator(plane.kubeconfigPath);
    // Serving keys does not wait on status writes: when did every pool have its keys? Read from
    // the operator's keypool_pools (pools with an engine), scraped as Prometheus would, but often.
    let servingMs: number | undefined;
    let scrapes = 0;
    let scrapeMs = 0;
    const serving = (async () => {
      while (servingMs === undefined && Date.now() - started < 900_000) {
        const t = Date.now();
        const known = await metric(operator.probesPort, "keypool_pools").catch(() => 0);
        scrapes++;
        scrapeMs += Date.now() - t;
        if (known >= pools) servingMs = Date.now() - started;
        else await sleep(Math.max(500, 4 * (Date.now() - t)));
      }
    })();
    let polls = 0;
    let pollMs = 0;
    let lastLog = started;
    for (;;) {
      operator.alive();
      const t = Date.now();
      const ready = (await listPools(objects, namespace)).filter(isReady).length;
      polls++;
      pollMs += Date.now() - t;
      if (ready === pools) break;
      if (Date.now() - lastLog > 10_000) {
        log(`  ${s1(Date.now() - started)}: ${n(ready)}/${n(pools)} Ready`);
        lastLog = Date.now();
      }
      if (Date.now() - started > 900_000) throw new Error(`only ${ready}/${pools} Ready after 15 min`);
      // A poll lists every pool: at least twice its own time between polls, so it takes no more
      // than a third of the control plane's time.
      await sleep(Math.max(250, 2 * (Date.now() - t)));
    }
    const coldMs = Date.now() - started;
    await serving;
    const writesCold = await metric(operator.probesPort, "keypool_status_writes_total");
    const cold: Memory = {
      ...residentOf(operator.pid),
      usage: await operator.inspector.memoryUsage(),
    };
    log(`  all Ready in ${s1(coldMs)}; idle for ${IDLE_S} s`);

    await sleep(IDLE_S * 1000);
    const writesIdle = (await metric(operator.probesPort, "keypool_status_writes_total")) - writesCold;
    await operator.inspector.collectGarbage();
    await operator.inspector.collectGarbage();
    const gced: Memory = {
      ...residentOf(operator.pid),
      usage: await operator.inspector.memoryUsage(),
    };

    // A heap snapshot is built inside the operator and needs memory of its own: under a
    // container's limit (BENCH_MEMORY_CGROUP) it would be what gets the process killed.
    let heap:
      | {
          constructors: ReturnType<typeof byConstructor>;
          parts: Category[];
          snapshotMs: number;
          summaryMs: number;
        }
      | undefined;
    if (!MEMORY_CGROUP) {
      log("  heap snapshot");
      let t = Date.now();
      const parser = new HeapSnapshotParser();
      const snapshotFile = SNAPSHOT_DIR
        ? join(SNAPSHOT_DIR, `operator-${namespace}.heapsnapshot`)
        : undefined;
      await operator.inspector.heapSnapshot(parser, snapshotFile);
      const snapshotMs = Date.now() - t;
      t = Date.now();
      const index = new SnapshotIndex(parser.end());
      const constructors = byConstructor(index, 10);
      const parts = attribute(index, dominators(index), operatorPart, 3);
      heap = { constructors, parts, snapshotMs, summaryMs: Date.now() - t };
    }

    // Churn: one key added to `churn` Secrets at once (their pools carry CHURN_LABEL).
    log(`  churn: ${churn} Secrets`);
    const writesBeforeChurn = await metric(operator.probesPort, "keypool_status_writes_total");
    let t = Date.now();
    await inParallel(
      Array.from({ length: churn }, (_, i) => i),
      CONCURRENCY,
      (i) =>
        core.patchNamespacedSecret(
          {
            namespace,
            name: `keys-${i}`,
            body: { stringData: { extra: `sk-bench-extra-${i}-${"y".repeat(24)}` } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        ),
    );
    for (;;) {
      const items = await listPools(objects, namespace, `${CHURN_LABEL}=true`);
      if (items.filter((p) => p.status?.keys?.total === keys + 1).length === churn) break;
      if (Date.now() - t > 300_000) throw new Error("churn not reflected after 5 min");
      await sleep(100);
    }
    const churnMs = Date.now() - t;
    const writesChurn =
      (await metric(operator.probesPort, "keypool_status_writes_total")) - writesBeforeChurn;
    await operator.stop();

    // Baseline 1: a bare client patching statuses, same concurrency as the churn.
    const patches = Math.min(pools, PATCHES);
    t = Date.now();
    await inParallel(
      Array.from({ length: patches }, (_, i) => i),
      CONCURRENCY,
      (i) =>
        objects.patchNamespacedCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name: `pool-${i}`,
            body: { status: { observedGeneration: 99 } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        ),
    );
    const patchesPerSec = patches / ((Date.now() - t) / 1000);
    const coldWritesPerSec = writesCold / (coldMs / 1000);
    /** How long the bare client would take for the cold start's writes, at its rate. */
    const patchesMs = (writesCold / patchesPerSec) * 1000;

    // Baseline 2: a bare informer over the same objects, alone in its process.
    log("  informer baseline");
    const base = await informerBaseline(plane.kubeconfigPath, namespace);

    // Aims (printed, never asserted).
    const rssAim = pools >= 10_000 ? 512 * MB : 200 * MB;
    const readyAim = pools >= 10_000 ? 120_000 : undefined;
    const rssAimText = `aim < ${mb(rssAim)}`;
    const baseMisses = base.rss >= rssAim ? `; the bare informer alone misses it (${mb(base.rss)})` : "";
    const u = (m: Memory) =>
      `RSS ${mb(m.rss)}, heap used ${mb(m.usage.heapUsed)} of ${mb(m.usage.heapTotal)}, external ${mb(m.usage.external)} (array buffers ${mb(m.usage.arrayBuffers)})`;
    const rows: Row[] = [
      [
        "pools x keys",
        `${n(pools)} x ${keys} (${n(pools * keys)} keys), namespace ${namespace}, kube-apiserver ${plane.version.gitVersion}`,
      ],
      [
        "setup",
        `${n(pools)} Secrets in ${s1(setup.secretsMs)} (${n(pools / (setup.secretsMs / 1000))}/s), ${n(pools)} KeyPools in ${s1(setup.poolsMs)} (${n(pools / (setup.poolsMs / 1000))}/s), ${CREATE_CONCURRENCY} creates at once${pinned ? ", control plane and bench on both cores" : ""}`,
      ],
      [
        "cold start: all pools Ready",
        `${s1(coldMs)} (from spawn; ${polls} paginated polls, ${(pollMs / polls).toFixed(0)} ms each)`,
        readyAim
          ? `aim < ${s1(readyAim)}: ${aim(coldMs < readyAim)}${patchesMs >= readyAim ? `; the bare patches miss it too (${s1(patchesMs)} for as many writes)` : ""}`
          : undefined,
      ],
      [
        "cold start: every pool serving keys",
        servingMs === undefined
          ? "not seen"
          : `${s1(servingMs)} (from spawn; keypool_pools on /metrics, ${scrapes} scrapes, ${(scrapeMs / scrapes).toFixed(0)} ms each)`,
      ],
      [
        "status writes during cold start",
        `${n(writesCold)} (${coldWritesPerSec.toFixed(0)}/s, ${(writesCold / pools).toFixed(2)} per pool)`,
      ],
      [`status writes in ${IDLE_S} s idle after`, `${n(writesIdle)}`, `aim 0: ${aim(writesIdle === 0)}`],
      [
        "operator after cold start",
        `${u(cold)}; peak RSS ${mb(cold.peak)}`,
        `${rssAimText}: ${aim(cold.rss < rssAim)}${baseMisses}`,
      ],
      [
        `operator after ${IDLE_S} s idle and a forced GC`,
        u(gced),
        `${rssAimText}: ${aim(gced.rss < rssAim)}${baseMisses}`,
      ],
      [
        "baseline: bare informer (makeInformer), same objects",
        `${base.pools} KeyPools + ${base.secrets} Secrets synced ${s1(base.syncedMs)} after its start (${s1(base.wallMs)} to its report); after GC: RSS ${mb(base.rss)}, heap used ${mb(base.memory.heapUsed)}, external ${mb(base.memory.external)} (array buffers ${mb(base.memory.arrayBuffers)})`,
        base.rss >= rssAim ? `${rssAimText}: the baseline misses it too` : undefined,
      ],
      [
        "operator / bare informer, after GC",
        `RSS ${ratio(gced.rss, base.rss)}, heap used ${ratio(gced.usage.heapUsed, base.memory.heapUsed)}, RSS above it ${mb(gced.rss - base.rss)}`,
      ],
      [
        `churn: key added to ${churn} Secrets, all in status`,
        `${n(churnMs)} ms, ${n(writesChurn)} status writes`,
      ],
      [
        `baseline: bare status patches (${n(patches)}), ${CONCURRENCY} at once`,
        `${patchesPerSec.toFixed(0)}/s`,
      ],
      [
        "operator cold-start write rate / bare patches",
        `${ratio(coldWritesPerSec, patchesPerSec)} (the bare client would take ${s1(patchesMs)} for the ${n(writesCold)} writes)`,
      ],
    ];

    const width = Math.max(...rows.map(([k]) => k.length));
    const lines = rows.map(([k, v, a]) => `${k.padEnd(width)}  ${v}${a ? `   [${a}]` : ""}`);
    const row = (r: ConstructorRow) => `${r.name} ${(r.selfSize / MB).toFixed(1)} MB (${n(r.count)})`;
    if (heap) {
      const { constructors, parts, snapshotMs, summaryMs } = heap;
      const pct = (b: number) => `${((100 * b) / constructors.total).toFixed(1)}%`;
      lines.push(
        "",
        `operator heap snapshot after GC: ${n(constructors.count)} nodes, ${(constructors.total / MB).toFixed(1)} MB of self sizes (taken in ${s1(snapshotMs)}, summarised here in ${s1(summaryMs)})`,
        "  top constructors by self size (count):",
        ...constructors.rows.map(
          (r) =>
            `    ${(r.selfSize / MB).toFixed(1).padStart(7)} MB ${pct(r.selfSize).padStart(6)}  ${r.name} (${n(r.count)})`,
        ),
        "  by part (dominator tree: each part's outermost node claims all it alone retains; rules in operatorPart):",
        ...parts.map(
          (c: Category) =>
            `    ${(c.selfSize / MB).toFixed(1).padStart(7)} MB ${pct(c.selfSize).padStart(6)}  ${c.name}: ${c.top.map(row).join(", ")}`,
        ),
      );
    } else {
      lines.push("", `no heap snapshot: the operator runs under the memory limit of ${MEMORY_CGROUP}`);
    }
    lines.push(
      "  bare informer's heap after GC, top constructors:",
      `    ${base.heap.rows.slice(0, 6).map(row).join(", ")}; ${(base.heap.total / MB).toFixed(1)} MB in all`,
    );
    return lines;
  } finally {
    await plane.stop();
  }
}

const printed: string[] = [
  `node ${process.version}, operator from ${MAIN}${MEMORY_CGROUP ? ` in ${MEMORY_CGROUP}` : ""}, ${pinned ? "operator and informer baseline on core 0, control plane and bench on core 1" : "not pinned"}; aims: 1,000 x 20 under 200 MB RSS, 10,000 x 10 under 512 MB RSS and all Ready within 120 s, no idle writes`,
];
for (const scenario of SCENARIOS) {
  const block = [
    "",
    `== ${n(scenario.pools)} KeyPools x ${scenario.keys} keys ==`,
    ...(await runScenario(scenario)),
  ];
  // Each scenario as soon as it is done (a later one may fail), and all together at the end.
  log(block.join("\n"));
  printed.push(...block);
}
console.log(printed.join("\n"));
process.exit(0);
