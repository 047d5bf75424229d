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
        // BENCH_NODE_FLAGS: node flags for the operator (--trace-gc, --max-semi-space-size=...).
        ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean),
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
