/**
 * `down`: removes the cluster from the machine, whatever state it is in (running, half
 * started, or its daemon killed with SIGKILL). One path for all of them, driven by what is
 * found on the machine rather than by what was recorded:
 *
 *  1. stop the daemon (SIGTERM: it stops its supervised components), SIGKILL if it hangs;
 *  2. kill what remains: pod processes first, then shims, components, supervisors;
 *  3. unmount everything under the run directory (pod volumes, rootfs, shm, netns);
 *  4. delete the veths and the bridge;
 *  5. remove our iptables rules and chains (IPv4/IPv6), conntrack entries of our ranges;
 *  6. remove the cgroups, files of ours in system paths (host-files.ts), directories and
 *     nftables tables up created, put sysctls back;
 *  7. delete the run directory except logs/ (for a post-mortem).
 *
 * Returns leftovers() afterwards: empty when everything went.
 */
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { withLock } from "../control-plane/build.ts";
import { isAlive } from "../control-plane/processes.ts";
import { command } from "./command.ts";
import { removeCgroups, restoreSysctls } from "./host.ts";
import { clusterProcesses } from "./host-processes.ts";
import { removeIptables } from "./iptables.ts";
import { type ClusterLayout, NAMES, NETWORK } from "./layout.ts";
import { type Leftover, leftovers, ourInterfaces } from "./leftovers.ts";
import {
  createdDirsToRemove,
  deleteNftTables,
  ourEmptyNftTables,
  ourSystemFiles,
  removeEmptyTree,
} from "./host-files.ts";
import { currentMounts, mountsUnder, unmountAll } from "./mounts.ts";
import { daemonAlive, readState, writeState } from "./state.ts";

type Log = (line: string) => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `pid` runs (a zombie, exited but not yet reaped by whoever adopted it, does not). */
async function running(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return stat !== "" && stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await running(pid))) return true;
    await sleep(100);
  }
  return !(await running(pid));
}

function kill(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Kills the cluster's processes until none is left (or time runs out). */
async function killProcesses(dir: string, log: Log, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  for (let round = 0; Date.now() - started < timeoutMs; round++) {
    const procs = await clusterProcesses(dir);
    if (procs.length === 0) return;
    // Pods and shims die at once (nothing to save); the rest get SIGTERM, SIGKILL after 3 s.
    const hard = (p: (typeof procs)[number]) =>
      p.inPod || p.exe.startsWith("containerd-shim") || Date.now() - started > 3_000;
    if (round === 0) {
      const pods = procs.filter((p) => p.inPod).length;
      log(`stopping ${pods} pod process(es) and ${procs.length - pods} other process(es)`);
    }
    for (const p of procs) kill(p.pid, hard(p) ? "SIGKILL" : "SIGTERM");
    await sleep(200);
  }
}

export interface DownOptions {
  log?: Log;
  /** Keep the run directory entirely (default: remove all but logs/). */
  keepDir?: boolean;
}

/** Tears down (see the header). Two at once (a user's down, a failed up's) take turns. */
export async function teardown(layout: ClusterLayout, options: DownOptions = {}): Promise<Leftover[]> {
  return withLock(`${layout.dir}-down`, options.log ?? (() => {}), () => teardownLocked(layout, options));
}

async function teardownLocked(layout: ClusterLayout, options: DownOptions): Promise<Leftover[]> {
  const started = Date.now();
  const log = (line: string) => options.log?.(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
  const state = await readState(layout.stateFile);

  if (state && daemonAlive(state) && state.daemonPid !== process.pid) {
    log(`stopping the cluster daemon (pid ${state.daemonPid})`);
    kill(state.daemonPid, "SIGTERM");
    if (!(await waitForExit(state.daemonPid, 45_000))) {
      log("the daemon did not stop within 45 s: SIGKILL");
      kill(state.daemonPid, "SIGKILL");
      await waitForExit(state.daemonPid, 5_000);
    }
    log("daemon stopped");
  }

  await killProcesses(layout.dir, log);

  const mounted = mountsUnder(await currentMounts(), layout.dir).length;
  const stuckMounts = await unmountAll(layout.dir);
  if (mounted > 0) log(`unmounted ${mounted - stuckMounts.length} of ${mounted} mounts`);
  if (stuckMounts.length > 0)
    log(`mounts that would not go: ${stuckMounts.map((m) => m.mountPoint).join(", ")}`);

  // Veths first (deleting a pod's netns removes its pair; these are the ones left), then the bridge.
  const interfaces = await ourInterfaces();
  for (const ifname of [
    ...interfaces.filter((i) => i !== NAMES.bridge),
    ...interfaces.filter((i) => i === NAMES.bridge),
  ]) {
    await command("ip", ["link", "delete", ifname], { allowFail: true });
  }
  if (interfaces.length > 0) log(`deleted ${interfaces.join(", ")}`);

  await removeIptables(state?.preexistingChains ?? []).catch((err: Error) => log(`iptables: ${err.message}`));
  for (const range of [NETWORK.clusterCidr, NETWORK.serviceCidr]) {
    for (const flag of ["-s", "-d"]) {
      await command("conntrack", ["-D", flag, range], { allowFail: true });
    }
  }

  const stuckCgroups = await removeCgroups();
  if (stuckCgroups.length > 0) log(`cgroups that would not go: ${stuckCgroups.join(", ")}`);
  for (const file of await ourSystemFiles(layout)) await rm(file, { force: true });
  for (const dir of await createdDirsToRemove(layout, state?.createdDirs ?? [])) await removeEmptyTree(dir);
  if (state?.preexistingNftTables) await deleteNftTables(await ourEmptyNftTables(state.preexistingNftTables));
  if (state) await restoreSysctls(state.sysctls);
  log("removed iptables rules, cgroups and files of ours");

  // Never remove files while something is still mounted below: rm would reach into it.
  if (!options.keepDir && stuckMounts.length === 0) {
    // etcd's and kube-apiserver's logs live with the control plane: keep them with the others.
    for (const name of await readdir(layout.controlPlane).catch(() => [] as string[])) {
      if (name.endsWith(".log"))
        await rename(join(layout.controlPlane, name), join(layout.logs, name)).catch(() => undefined);
    }
    const entries = await readdir(layout.dir).catch(() => [] as string[]);
    await Promise.all(
      entries
        .filter((name) => join(layout.dir, name) !== layout.logs)
        .map((name) => rm(join(layout.dir, name), { recursive: true, force: true })),
    );
  }
  if (!options.keepDir && stuckMounts.length === 0) {
    // What leftovers() needs later: what on the machine was someone else's before up.
    await mkdir(layout.dir, { recursive: true });
    await writeState(layout.stateFile, {
      daemonPid: 0,
      phase: "down",
      step: "down",
      startedAt: state?.startedAt ?? "",
      sysctls: {},
      preexistingChains: state?.preexistingChains ?? [],
      ...(state?.preexistingNftTables ? { preexistingNftTables: state.preexistingNftTables } : {}),
      ...(state?.createdDirs ? { createdDirs: state.createdDirs } : {}),
    });
  }
  return leftovers(layout, state ?? {});
}
