/** Helpers shared by the benchmarks. */
import { execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { open, readdir, readFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import autocannon from "autocannon";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../src/api/keypool.ts";
import { threadsOf } from "../src/background-threads.ts";
import { ensureBinaries } from "../test/support/control-plane/build.ts";
import { ControlPlane, freePort } from "../test/support/control-plane/control-plane.ts";
import { eventually } from "../test/support/eventually.ts";
import { startRedis } from "../test/support/redis-server.ts";
import { threadCores, threadStat } from "../test/support/proc.ts";

/** Runs the harness's kubectl against `plane` as admin; throws with stderr on failure. */
export function kubectlAt(plane: ControlPlane, args: string[]): Promise<string> {
  const kubectl = plane.kubectl;
  if (!kubectl) throw new Error("no kubectl next to the control-plane binaries");
  return new Promise((resolve, reject) => {
    execFile(kubectl, ["--kubeconfig", plane.kubeconfigPath, ...args], (err, stdout, stderr) =>
      err ? reject(new Error(`kubectl ${args.join(" ")}: ${stderr}`)) : resolve(stdout),
    );
  });
}

/**
 * A control plane for a benchmark: started (binaries built if needed), the KeyPool CRD
 * installed, and `namespace` created. Stop it with `plane.stop()`.
 */
export async function benchControlPlane(
  namespace: string,
  log: (line: string) => void,
  options: { pinToLoadCore?: boolean } = {},
) {
  const plane = await ControlPlane.start({ binaries: await ensureBinaries({ log }) });
  log(`control plane ${plane.version.gitVersion} at ${plane.server}`);
  const moved = options.pinToLoadCore ? await pinControlPlane(plane) : 0;
  if (moved) log(`control plane (${moved} processes) on core 1, with the load generator`);
  await kubectlAt(plane, ["apply", "--server-side", "-f", "crds/keypool.dev_keypools.yaml"]);
  await kubectlAt(plane, ["wait", "--for=condition=Established", `crd/${PLURAL}.${GROUP}`]);
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  return { plane, kc, core };
}

/**
 * etcd, kube-apiserver and their supervisors onto core 1 (all threads), so the server under test
 * has core 0 to itself: otherwise the API server's work on the operator's status writes and
 * watches preempts the operator, a cost the bare baseline never pays. Both bench/dispense and
 * bench/proxy do this (in bench/proxy core 1 also carries the fake provider, for direct and
 * proxied calls alike).
 */
async function pinControlPlane(plane: ControlPlane): Promise<number> {
  if (!pinned) return 0;
  let moved = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes(plane.dir)) continue;
    try {
      execFileSync("taskset", ["-a", "-cp", "1", entry], { stdio: "ignore" });
      moved++;
    } catch {
      // gone meanwhile
    }
  }
  return moved;
}

/** One load run: throughput, latency percentiles (ms) and failures. */
export interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** 2xx answers of the run (autocannon's count, not a rate times seconds). */
  ok: number;
}

/** The run with the median throughput, and median latencies across runs. */
export function median(results: Result[]): Result {
  const mid = <T>(values: T[], by: (v: T) => number) =>
    [...values].sort((a, b) => by(a) - by(b))[values.length >> 1] as T;
  return {
    rps: mid(results, (r) => r.rps).rps,
    p50: mid(results, (r) => r.p50).p50,
    p99: mid(results, (r) => r.p99).p99,
    errors: results.reduce((n, r) => n + r.errors, 0),
    non2xx: results.reduce((n, r) => n + r.non2xx, 0),
    ok: results.reduce((n, r) => n + r.ok, 0),
  };
}

export interface LoadOptions {
  headers: Record<string, string>;
  method?: "GET" | "POST";
  body?: string;
  connections: number;
  seconds: number;
  /** Requests per second across all connections; as fast as it goes when absent. */
  overallRate?: number;
}

/** autocannon against `url` (latencies in whole milliseconds: its histogram's unit). */
export async function load(url: string, o: LoadOptions): Promise<Result> {
  const result = await autocannon({
    url,
    headers: o.headers,
    method: o.method ?? "GET",
    ...(o.body !== undefined ? { body: o.body } : {}),
    connections: o.connections,
    duration: o.seconds,
    ...(o.overallRate ? { overallRate: o.overallRate } : {}),
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    ok: result["2xx"],
  };
}

/**
 * With taskset available and 2+ cores, each server under test runs on core 0 and this process
 * (the load generator) on core 1, so they do not preempt each other and latency percentiles
 * measure the server, not the scheduler. All of this process's threads (`-a`): V8's worker
 * threads exist from the start, and with only the main thread moved they stayed free to run on
 * core 0, where a scheduler trace of bench/proxy showed them delaying the operator by up to 4.5 ms.
 */
export const pinned = (() => {
  try {
    if (availableParallelism() < 2) return false;
    execFileSync("taskset", ["-a", "-cp", "1", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** Node flags for the process under test, from BENCH_NODE_FLAGS (--trace-gc, --max-semi-space-size=...). */
export function benchNodeFlags(): string[] {
  return (process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
}

/**
 * `keypool operator` on loopback ports against the bench's control plane, without key probes
 * (the bench keys are fake, the providers unreachable).
 */
export function operatorArgs(kubeconfig: string, port: number, probesPort: number): string[] {
  return [
    "operator",
    "--kubeconfig",
    kubeconfig,
    "--no-probes",
    "--port",
    String(port),
    "--address",
    "127.0.0.1",
    "--probes-port",
    String(probesPort),
    "--probes-address",
    "127.0.0.1",
  ];
}

/** `command args` on `core` (0: servers under test, 1: the load generator and its helpers). */
export function onCore(core: 0 | 1, command: string, args: string[]): [string, string[]] {
  return pinned ? ["taskset", ["-c", String(core), command, ...args]] : [command, args];
}

/** A KeyPool `name` in `namespace` (the spec's keys come from Secret `<name>-keys`, created here). */
export async function benchPool(
  kc: KubeConfig,
  core: CoreV1Api,
  namespace: string,
  name: string,
  keys: string[],
  spec: Record<string, unknown>,
): Promise<void> {
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: `${name}-keys`, labels: { "keypool.dev/secret": "true" } },
      stringData: Object.fromEntries(keys.map((k, i) => [`k${i}`, k])),
    },
  });
  await eventually(() =>
    kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      body: {
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name },
        spec: { ...spec, keys: [{ secretRef: { name: `${name}-keys` } }] },
      },
    }),
  );
}

/** A ServiceAccount `client` allowed to `use` `pools`, and a token of it with audience keypool. */
export async function clientToken(
  kc: KubeConfig,
  core: CoreV1Api,
  namespace: string,
  pools: string[],
): Promise<string> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "client" } } });
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: "use-pool" },
      rules: [{ apiGroups: [GROUP], resources: [PLURAL], verbs: ["use"], resourceNames: pools }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "use-pool" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "use-pool" },
      subjects: [{ kind: "ServiceAccount", name: "client", namespace }],
    },
  });
  const res = await core.createNamespacedServiceAccountToken({
    namespace,
    name: "client",
    body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
  });
  return res.status?.token as string;
}

/**
 * `keypool operator` on the server core, at info level (every request writes its audit line, as
 * in production) with its log in a file (as it would go to the container runtime), not through
 * the load generator. BENCH_PROFILE=dir writes a CPU profile of it there.
 *
 * Returns once /readyz answers 200. A free port can be taken by someone else before the operator
 * binds it (seen: EADDRINUSE on the probes port, and a benchmark waiting forever); an operator
 * that exits before it is ready is started again on other ports, up to three times.
 */
export async function benchOperator(plane: ControlPlane, name: string, extraArgs: string[] = []) {
  const logPath = join(tmpdir(), `keypool-bench-${name}-${process.pid}.log`);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const probesPort = await freePort();
    const logFile = await open(logPath, "w");
    const child = spawn(
      ...onCore(0, process.execPath, [
        ...benchNodeFlags(),
        "src/main.ts",
        ...operatorArgs(plane.kubeconfigPath, port, probesPort),
        ...extraArgs,
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
    let gone = false;
    const exited = once(child, "exit").then(() => {
      gone = true;
    });
    const outcome = await eventually(async () => {
      if (gone) return "exited" as const;
      const res = await fetch(`http://127.0.0.1:${probesPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? ("ready" as const) : undefined;
    }, 60_000);
    if (outcome === "exited") {
      if (attempt < 3) continue;
      const tail = (await readFile(logPath, "utf8")).slice(-500);
      throw new Error(`keypool operator exited before it was ready, ${attempt} times; last log:\n${tail}`);
    }
    return {
      /** The operator's process id (taskset execs it, so it is the child's). */
      pid: child.pid as number,
      url: `http://127.0.0.1:${port}`,
      metricsUrl: `http://127.0.0.1:${probesPort}/metrics`,
      logPath,
      async stop() {
        child.kill("SIGTERM");
        await exited;
      },
    };
  }
}

/**
 * A spinning process at the lowest scheduling class (SCHED_IDLE) on each core, for the length of
 * a benchmark. On a virtual machine an idle vCPU halts, and waking it for the next request takes
 * the host's scheduler: measured here, that alone moved a bare node:http server's p99 at 1,000
 * requests/s from 0.27 ms to 1.3 ms. SCHED_IDLE work runs only when nothing else wants the core
 * and gives it up at once, so the cores stay awake without taking time from the processes
 * measured. For the fixed-rate latency runs only, the same for every server in them: with both
 * vCPUs spinning, peak throughput of the operator measured about a fifth lower here (the host's
 * hyperthreads are shared, presumably), so peaks are measured without. BENCH_KEEP_AWAKE=0 turns
 * it off.
 */
export interface Spinners {
  /** Stops the spinners. */
  stop(): void;
  /** Each spinner's process id (taskset and chrt exec it), by core; empty when none run. */
  pids: number[];
}

export function keepCoresAwake(log: (line: string) => void): Spinners {
  if (!pinned || process.env.BENCH_KEEP_AWAKE === "0") return { stop: () => {}, pids: [] };
  const spinners = ([0, 1] as const).map((core) =>
    spawn("taskset", ["-c", String(core), "chrt", "--idle", "0", process.execPath, "-e", "for(;;);"], {
      stdio: "ignore",
    }).on("error", () => {}),
  );
  log("cores kept awake by SCHED_IDLE spinners (BENCH_KEEP_AWAKE=0 turns this off)");
  const kill = () => {
    for (const s of spinners) s.kill("SIGKILL");
  };
  process.once("exit", kill);
  return {
    stop: () => {
      process.off("exit", kill);
      kill();
    },
    pids: spinners.map((s) => s.pid ?? 0),
  };
}

/**
 * Core 0 for the servers under test alone, for the latency runs, as `cset shield` would make it:
 * every thread of another process that may run on core 0 and on others, and that this user may
 * move, gets the others, and its own cores back at the end. Threads held to core 0 alone stay:
 * the servers (`onCore(0)`), the spinner there, the kernel's per-core threads. On this machine a
 * scheduler trace of bench/proxy found the VM's init agent (at nice -10) taking core 0 for 2-9 ms
 * at a time, 300-500 ms per minute, each time holding up the calls in flight; on core 1 it delays
 * the direct and the proxied calls alike. Threads started meanwhile by a moved process keep the
 * other cores. BENCH_SHIELD=0 turns it off.
 */
export function shieldServerCore(log: (line: string) => void): () => void {
  if (!pinned || process.env.BENCH_SHIELD === "0") return () => {};
  const moved: Array<{ tid: number; cores: number[] }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    for (const { tid } of threadsOf(pid)) {
      try {
        const cores = threadCores(pid, tid);
        const others = cores.filter((core) => core !== 0);
        if (others.length === cores.length || others.length === 0) continue;
        execFileSync("taskset", ["-pc", others.join(","), String(tid)], { stdio: "ignore" });
        moved.push({ tid, cores });
      } catch {
        // A kernel thread, another user's process, or gone: it stays.
      }
    }
  }
  log(
    `core 0 shielded: ${moved.length} threads of other processes moved off it (BENCH_SHIELD=0 turns this off)`,
  );
  return () => {
    for (const { tid, cores } of moved) {
      try {
        execFileSync("taskset", ["-pc", cores.join(","), String(tid)], { stdio: "ignore" });
      } catch {
        // ended meanwhile
      }
    }
  };
}

/**
 * Time the machine itself took from the benchmark, as Linux accounts it: per core, the steal time
 * (the hypervisor ran something else on this virtual CPU) and the busy time (user, nice, system,
 * irq and softirq; both from /proc/stat, in 10 ms units); the CPU time of one process's threads
 * by thread name (/proc/<pid>/task), and of the main threads of other processes (the spinners).
 * A reading is a snapshot; `since` gives what happened between two. Empty where there is no /proc.
 */
export interface MachineReading {
  stealMs: number[];
  busyMs: number[];
  threadCpuMs: Record<string, number>;
  /** CPU time of each of `others`, in their order. */
  othersCpuMs: number[];
}

export function machineReading(pid: number, others: number[] = []): MachineReading {
  const reading: MachineReading = { stealMs: [], busyMs: [], threadCpuMs: {}, othersCpuMs: [] };
  try {
    for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
      // cpuN user nice system idle iowait irq softirq steal ...
      if (!/^cpu\d/.test(line)) continue;
      const ticks = line.trim().split(/\s+/).map(Number);
      reading.stealMs.push((ticks[8] ?? 0) * 10);
      reading.busyMs.push([1, 2, 3, 6, 7].reduce((sum, i) => sum + (ticks[i] ?? 0), 0) * 10);
    }
    for (const { tid, name } of threadsOf(pid)) {
      reading.threadCpuMs[name] = (reading.threadCpuMs[name] ?? 0) + threadStat(pid, tid).cpuMs;
    }
    reading.othersCpuMs = others.map((other) => threadStat(other, other).cpuMs);
  } catch {
    // No /proc here, or the process is gone: what was read so far.
  }
  return reading;
}

/** What happened between two readings. */
export function since(before: MachineReading, after: MachineReading): MachineReading {
  const threadCpuMs: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after.threadCpuMs))
    threadCpuMs[name] = ms - (before.threadCpuMs[name] ?? 0);
  const minus = (a: number[], b: number[]) => a.map((ms, i) => ms - (b[i] ?? 0));
  return {
    stealMs: minus(after.stealMs, before.stealMs),
    busyMs: minus(after.busyMs, before.busyMs),
    threadCpuMs,
    othersCpuMs: minus(after.othersCpuMs, before.othersCpuMs),
  };
}

/**
 * The `--state-store redis` variant of bench/dispense and bench/proxy runs unless BENCH_REDIS=0:
 * a second operator, the same but for that flag, against a redis-server the benchmark starts.
 */
export const benchRedisOn = process.env.BENCH_REDIS !== "0";

/** aim met / aim missed, for figures printed beside an aim (never asserted). */
export const aim = (met: boolean) => (met ? "aim met" : "aim missed");

/**
 * A redis-server for the `--state-store redis` variant (test/support/redis-server.ts: a free
 * loopback port, persistence off), on core 1 with the load generator and the control plane, so
 * the operator under test keeps core 0 to itself, as the memory operator does. The benchmark's
 * own affinity (core 1, inherited by what it starts) already put it there; set again explicitly
 * for all of its threads (bio threads included).
 */
export async function benchRedis(log: (line: string) => void) {
  const server = await startRedis();
  if (pinned) execFileSync("taskset", ["-a", "-cp", "1", String(server.pid)], { stdio: "ignore" });
  const info = redisInfoFields(String(await server.command("INFO", "server")));
  const version = info.get("redis_version") ?? "?";
  const where = pinned ? "on core 1, with the load generator" : "not pinned";
  log(`redis-server ${version} at ${server.url} (pid ${server.pid}, ${where})`);
  return { server, version, where };
}

type RedisCommander = { command(...args: string[]): Promise<unknown> };

function redisInfoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

/** What Redis says about itself at one moment: per-command calls (scripts' own commands too), memory, CPU. */
export interface RedisReading {
  /** INFO commandstats: calls and microseconds by command (lower case, `memory|usage` style). */
  commands: Record<string, { calls: number; usec: number }>;
  usedMemory: number;
  /** used_cpu_user + used_cpu_sys, ms. */
  cpuMs: number;
}

/** One INFO (commandstats, memory, cpu: one command, so a reading adds one `info` call to the next). */
export async function redisReading(redis: RedisCommander): Promise<RedisReading> {
  const fields = redisInfoFields(String(await redis.command("INFO", "commandstats", "memory", "cpu")));
  const commands: RedisReading["commands"] = {};
  for (const [name, value] of fields) {
    if (!name.startsWith("cmdstat_")) continue;
    const calls = Number(/(?:^|,)calls=(\d+)/.exec(value)?.[1] ?? 0);
    const usec = Number(/(?:^|,)usec=(\d+)/.exec(value)?.[1] ?? 0);
    commands[name.slice("cmdstat_".length)] = { calls, usec };
  }
  const cpu = (name: string) => Number(fields.get(name) ?? 0) * 1000;
  return {
    commands,
    usedMemory: Number(fields.get("used_memory") ?? 0),
    cpuMs: cpu("used_cpu_user") + cpu("used_cpu_sys"),
  };
}

/** MEMORY USAGE (exact: SAMPLES 0) of every key matching a pattern, by the letter after `}:`. */
const POOL_MEMORY = `
local cursor, out = '0', {}
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local kind = string.match(key, '}:(%a)') or '?'
    local bytes = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') or 0
    local entry = out[kind] or { 0, 0 }
    out[kind] = { entry[1] + 1, entry[2] + bytes }
  end
until cursor == '0'
local flat = {}
for kind, entry in pairs(out) do
  flat[#flat + 1] = kind
  flat[#flat + 1] = entry[1]
  flat[#flat + 1] = entry[2]
end
return flat
`;

/** The pool's keys in Redis (`<base>:*`), counted and sized by kind (src/state/scripts.ts has the layout). */
export interface RedisPoolMemory {
  keys: number;
  bytes: number;
  byKind: Record<string, { keys: number; bytes: number }>;
  /** Members of the open-leases zset `<base>:o` (ended leases stay there until the next sweep). */
  leaseEntries: number;
}

export async function redisPoolMemory(redis: RedisCommander, base: string): Promise<RedisPoolMemory> {
  const flat = (await redis.command("EVAL", POOL_MEMORY, "0", `${base}:*`)) as Array<string | number>;
  const byKind: RedisPoolMemory["byKind"] = {};
  let keys = 0;
  let bytes = 0;
  for (let i = 0; i + 2 < flat.length; i += 3) {
    const entry = { keys: Number(flat[i + 1]), bytes: Number(flat[i + 2]) };
    byKind[String(flat[i])] = entry;
    keys += entry.keys;
    bytes += entry.bytes;
  }
  const leaseEntries = Number(await redis.command("ZCARD", `${base}:o`));
  return { keys, bytes, byKind, leaseEntries };
}

/**
 * The lines both benchmarks print about Redis after the run: commands per call served (evalsha:
 * the reservations and lease ends; every command the scripts ran, per call), its CPU, memory
 * before and after, and the pool's keys by kind, per pool key and per open lease, for sizing.
 * `empty`: read before the operator connected; `before` and `after`: around the variant's load
 * runs (redisPoolMemory, after them, is not counted).
 */
export function redisLines(o: {
  what: string;
  served: number;
  empty: RedisReading;
  before: RedisReading;
  after: RedisReading;
  pool: RedisPoolMemory;
  base: string;
  poolKeys: number;
}): string[] {
  const delta = Object.entries(o.after.commands)
    .map(([name, c]) => ({
      name,
      // Less the first reading's own INFO (a command's stats count once it has run).
      calls: c.calls - (o.before.commands[name]?.calls ?? 0) - (name === "info" ? 1 : 0),
      usec: c.usec - (o.before.commands[name]?.usec ?? 0),
    }))
    .filter((c) => c.calls > 0)
    .sort((a, b) => b.calls - a.calls);
  const evalsha = delta.find((c) => c.name === "evalsha") ?? { calls: 0, usec: 0 };
  const perCall = (n: number) => (o.served ? n / o.served : Number.NaN);
  const n = (v: number) => Math.round(v).toLocaleString("en-US");
  const kb = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(2)} MiB`;
  const leases = o.pool.byKind["l"] ?? { keys: 0, bytes: 0 };
  const openZset = o.pool.byKind["o"] ?? { keys: 0, bytes: 0 };
  const leaseBytes = leases.bytes + openZset.bytes;
  const rest = o.pool.bytes - leaseBytes;
  const kinds = Object.entries(o.pool.byKind)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, k]) => `${kind}: ${n(k.keys)} ${k.keys === 1 ? "key" : "keys"}, ${n(k.bytes)} B`)
    .join(", ");
  return [
    `  Redis commands during the variant's runs: evalsha ${n(evalsha.calls)} calls, ${(evalsha.usec / Math.max(1, evalsha.calls)).toFixed(1)} us each inside Redis; ${n(o.served)} ${o.what}s served (2xx at the load generators): ${perCall(evalsha.calls).toFixed(3)} evalsha per ${o.what}`,
    `  every command per ${o.what} (the scripts' own included): ${delta.map((c) => `${c.name} ${perCall(c.calls).toFixed(2)}`).join(", ")}`,
    `  redis-server CPU during the variant's runs: ${n(o.after.cpuMs - o.before.cpuMs)} ms, ${((1000 * (o.after.cpuMs - o.before.cpuMs)) / Math.max(1, o.served)).toFixed(1)} us per ${o.what}`,
    `  used_memory: ${mb(o.empty.usedMemory)} before the operator connected, ${mb(o.before.usedMemory)} before the runs, ${mb(o.after.usedMemory)} after`,
    `  the pool's keys (${o.base}:*, MEMORY USAGE): ${n(o.pool.keys)} keys, ${kb(o.pool.bytes)}: ${n(o.pool.bytes / o.poolKeys)} B per pool key (${o.poolKeys} keys); by kind: ${kinds}`,
    `  of which leases (l: one per open lease; o: the zset of leases, ${n(o.pool.leaseEntries)} entries, ended ones until the next sweep): ${kb(leaseBytes)}${leases.keys ? `, ${n(leaseBytes / leases.keys)} B per open lease` : ""}; the rest (states, windows, in-flight and usage counters): ${n(rest)} B, ${n(rest / o.poolKeys)} B per pool key`,
  ];
}

/** keypool_state_store_up in an operator's /metrics text ("?" when absent: no store configured). */
export const stateStoreUpIn = (metricsText: string): string =>
  /^keypool_state_store_up(?:\{[^}]*\})? (\S+)/m.exec(metricsText)?.[1] ?? "?";

/**
 * keypool_state_store_up from an operator's /metrics. A scrape resets the event-loop lag
 * figures: after the runs, read it with stateStoreUpIn from the one scrape taken then.
 */
export async function stateStoreUp(metricsUrl: string): Promise<string> {
  return stateStoreUpIn(await (await fetch(metricsUrl)).text());
}

/**
 * `keypool serve` on the server core with the pools `env` defines (`NAME_KEYS`, `NAME_BASE_URL`:
 * src/sources/files/env.ts), auth none on loopback, its log in a file as benchOperator's. Node
 * flags from `nodeFlags` and BENCH_NODE_FLAGS. With `inspect`, the inspector listens on a free
 * loopback port and `inspectorUrl` is its WebSocket address (from the "Debugger listening" line).
 * `cwd`: the directory whose bin/keypool.js runs (a built package, say); the checkout by default.
 */
export async function benchServe(
  name: string,
  env: Record<string, string>,
  options: { inspect?: boolean; nodeFlags?: string[]; args?: string[]; cwd?: string } = {},
) {
  const logPath = join(tmpdir(), `keypool-bench-${name}-${process.pid}.log`);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const probesPort = await freePort();
    const logFile = await open(logPath, "w");
    const startedAtMs = Date.now();
    const child = spawn(
      ...onCore(0, process.execPath, [
        ...(options.inspect ? ["--inspect=127.0.0.1:0"] : []),
        ...(options.nodeFlags ?? []),
        ...benchNodeFlags(),
        "bin/keypool.js",
        "serve",
        "--port",
        String(port),
        "--probes-port",
        String(probesPort),
        ...(options.args ?? []),
      ]),
      {
        stdio: ["ignore", logFile.fd, logFile.fd],
        ...(options.cwd ? { cwd: options.cwd } : {}),
        env: {
          ...process.env,
          ...env,
          ...(process.env.BENCH_PROFILE
            ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}` }
            : {}),
        },
      },
    );
    await logFile.close();
    let gone = false;
    const exited = once(child, "exit").then(() => {
      gone = true;
    });
    const outcome = await eventually(async () => {
      if (gone) return "exited" as const;
      const res = await fetch(`http://127.0.0.1:${probesPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? ("ready" as const) : undefined;
    }, 60_000);
    if (outcome === "exited") {
      if (attempt < 3) continue;
      const tail = (await readFile(logPath, "utf8")).slice(-500);
      throw new Error(`keypool serve exited before it was ready, ${attempt} times; last log:\n${tail}`);
    }
    const inspectorUrl = options.inspect
      ? /Debugger listening on (ws:\/\/\S+)/.exec(await readFile(logPath, "utf8"))?.[1]
      : undefined;
    if (options.inspect && !inspectorUrl) throw new Error(`no inspector address in ${logPath}`);
    return {
      pid: child.pid as number,
      url: `http://127.0.0.1:${port}`,
      metricsUrl: `http://127.0.0.1:${probesPort}/metrics`,
      logPath,
      inspectorUrl,
      /** When it was started (ms since the epoch), to place a request in its --trace-gc output. */
      startedAtMs,
      async stop() {
        child.kill("SIGTERM");
        await exited;
      },
    };
  }
}

/** A process's resident set now and at its peak (VmRSS, VmHWM in /proc/<pid>/status), bytes; NaN without /proc. */
export function residentOf(pid: number): { rss: number; peak: number } {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    // no /proc: NaN below
  }
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** A process's resident set (VmRSS), bytes; NaN without /proc. */
export const rssOf = (pid: number): number => residentOf(pid).rss;
