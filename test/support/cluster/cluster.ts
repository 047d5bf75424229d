/**
 * The cluster's public face, for main.ts and for tests: up() starts the daemon in the
 * background and follows it until the cluster is ready (or failed, then cleans up); down()
 * tears down whatever is there; status() reports; loadImage() imports an image archive;
 * leftovers() lists what of the cluster remains on the machine.
 */
import { spawn } from "node:child_process";
import { copyFile, mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureBinaries, withLock } from "../control-plane/build.ts";
import { isAlive } from "../control-plane/processes.ts";
import { buildClusterBinaries } from "./build.ts";
import { tail } from "./components.ts";
import { importImage } from "./images.ts";
import { kubectlFor } from "./kube.ts";
import { type ClusterLayout, clusterLayout } from "./layout.ts";
import { type Leftover, leftovers as findLeftovers } from "./leftovers.ts";
import { currentMounts, mountsUnder } from "./mounts.ts";
import { type ClusterState, daemonAlive, readState } from "./state.ts";
import { teardown } from "./teardown.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

export type Log = (line: string) => void;

export class ClusterError extends Error {
  override name = "ClusterError";
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface UpOptions {
  dir: string;
  log?: Log;
  /** Also write the admin kubeconfig here. */
  kubeconfig?: string;
  /** How long to wait for the cluster once its binaries are built (default 10 min). */
  timeoutMs?: number;
}

export interface UpResult {
  layout: ClusterLayout;
  kubeconfig: string;
  apiServer: string;
  /** Whether it was already up (nothing started). */
  alreadyUp: boolean;
  state: ClusterState;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds what is missing, starts the daemon, follows its log until the cluster is ready. Two
 * `up`s for the same run directory take turns (a lock beside it); the second finds it up.
 */
export async function up(options: UpOptions): Promise<UpResult> {
  const log = options.log ?? (() => {});
  return withLock(clusterLayout(options.dir).dir, log, () => upLocked(options, log));
}

async function upLocked(options: UpOptions, log: Log): Promise<UpResult> {
  const layout = clusterLayout(options.dir);
  const existing = await readState(layout.stateFile);
  if (daemonAlive(existing) && existing?.phase === "ready") {
    if (options.kubeconfig) await copyFile(layout.kubeconfig, options.kubeconfig);
    return {
      layout,
      kubeconfig: layout.kubeconfig,
      apiServer: existing.apiServer ?? "",
      alreadyUp: true,
      state: existing,
    };
  }
  if (daemonAlive(existing)) {
    throw new ClusterError(
      "cluster_busy",
      `a cluster daemon (pid ${existing?.daemonPid}) is ${existing?.phase} in ${layout.dir}; run down first`,
    );
  }
  if (existing?.phase !== "down" && (await stat(layout.dir).catch(() => undefined))) {
    log(`cleaning up after an earlier run in ${layout.dir}`);
    const left = await teardown(layout, { log });
    if (left.length > 0) {
      throw new ClusterError(
        "cluster_leftovers",
        `an earlier run left things that down could not remove:\n${left.map((l) => `${l.kind} ${l.what}`).join("\n")}`,
      );
    }
  }

  if (existing?.phase === "down" && mountsUnder(await currentMounts(), layout.dir).length === 0) {
    // A clean down left only logs and state.json: start afresh.
    await rm(layout.dir, { recursive: true, force: true });
  }

  await ensureBinaries({ log });
  await buildClusterBinaries({ log });

  await mkdir(layout.logs, { recursive: true });
  const daemonLog = await open(layout.daemonLog, "w");
  const child = spawn(process.execPath, [MAIN, "daemon", "--dir", layout.dir], {
    detached: true,
    stdio: ["ignore", daemonLog.fd, daemonLog.fd],
    cwd: "/",
  });
  await daemonLog.close();
  child.unref();
  const daemonPid = child.pid ?? 0;
  log(`cluster daemon pid ${daemonPid}, log ${layout.daemonLog}`);

  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let shown = 0;
  for (;;) {
    const text = await readFile(layout.daemonLog, "utf8").catch(() => "");
    const lines = text.slice(shown).split("\n");
    const complete = lines.slice(0, -1);
    for (const line of complete) log(line);
    shown += complete.reduce((n, l) => n + l.length + 1, 0);

    const state = await readState(layout.stateFile);
    if (state?.phase === "ready" && state.daemonPid === daemonPid) {
      if (options.kubeconfig) await copyFile(layout.kubeconfig, options.kubeconfig);
      return {
        layout,
        kubeconfig: layout.kubeconfig,
        apiServer: state.apiServer ?? "",
        alreadyUp: false,
        state,
      };
    }
    const failed = state?.phase === "failed" || !isAlive(daemonPid);
    if (failed || Date.now() > deadline) {
      const why = failed
        ? (state?.error ??
          `the daemon exited (last lines of ${layout.daemonLog}:\n${await tail(layout.daemonLog)})`)
        : `not ready after ${(options.timeoutMs ?? 600_000) / 1000} s (at: ${state?.step ?? "?"})`;
      log(`up failed: ${why}`);
      log("tearing down what was started (logs stay in the run directory)");
      const left = await teardown(layout, { log });
      if (left.length > 0)
        log(`leftovers after the failed up:\n${left.map((l) => `  ${l.kind} ${l.what}`).join("\n")}`);
      throw new ClusterError("cluster_start_failed", why);
    }
    await sleep(250);
  }
}

export async function down(options: { dir: string; log?: Log; keepDir?: boolean }): Promise<Leftover[]> {
  return teardown(clusterLayout(options.dir), { log: options.log, keepDir: options.keepDir });
}

export interface ComponentStatus {
  name: string;
  pid: number | undefined;
  alive: boolean;
}

export interface ClusterStatus {
  layout: ClusterLayout;
  state: ClusterState | undefined;
  daemonAlive: boolean;
  components: ComponentStatus[];
}

/** What state.json and the pid files say, checked against the processes that exist. */
export async function status(dir: string): Promise<ClusterStatus> {
  const layout = clusterLayout(dir);
  const state = await readState(layout.stateFile);
  const pidFiles = [
    ...(await readdir(join(layout.controlPlane)).catch(() => [] as string[]))
      .filter((f) => f.endsWith(".pid"))
      .map((f) => join(layout.controlPlane, f)),
    ...(await readdir(layout.pids).catch(() => [] as string[])).map((f) => join(layout.pids, f)),
  ];
  const components = await Promise.all(
    pidFiles.map(async (file) => {
      const pid = Number(await readFile(file, "utf8").catch(() => "")) || undefined;
      const name = file.slice(file.lastIndexOf("/") + 1).replace(/\.pid$/, "");
      return { name, pid, alive: pid !== undefined && isAlive(pid) };
    }),
  );
  return { layout, state, daemonAlive: daemonAlive(state), components };
}

export async function loadImage(dir: string, archive: string): Promise<string[]> {
  const layout = clusterLayout(dir);
  const state = await readState(layout.stateFile);
  if (!daemonAlive(state)) throw new ClusterError("cluster_not_running", `no cluster is running in ${dir}`);
  return importImage(layout, archive);
}

export async function leftovers(dir: string): Promise<Leftover[]> {
  const layout = clusterLayout(dir);
  return findLeftovers(layout, (await readState(layout.stateFile)) ?? {});
}

/** `kubectl get nodes` and pods, for status output (empty when the API is not there). */
export async function describeCluster(kubectlPath: string, layout: ClusterLayout): Promise<string> {
  const kubectl = kubectlFor(kubectlPath, layout.kubeconfig, layout.kubectlCache);
  const r = await kubectl(["get", "nodes,pods", "-A", "-o", "wide"], { allowFail: true, timeoutMs: 15_000 });
  return (r.stdout || r.stderr).trimEnd();
}
