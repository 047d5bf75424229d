/**
 * The run directory's state.json: who runs the cluster (the daemon's pid, for stale detection
 * as the harness's owner.pid), how far `up` got, and what `down` must put back (sysctls,
 * pre-existing shared iptables chains). Written before each step that changes the machine.
 */
import { readFileSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { isAlive } from "../control-plane/processes.ts";

/** starting → ready (or failed) → stopping; "down" once teardown finished (the file stays). */
export type Phase = "starting" | "ready" | "failed" | "stopping" | "down";

export interface ClusterState {
  daemonPid: number;
  phase: Phase;
  /** The step `up` is at (or failed at). */
  step: string;
  startedAt: string;
  readyAt?: string;
  error?: string;
  /** /proc/sys paths → the value before up. */
  sysctls: Record<string, string>;
  /** CNI-HOSTPORT-* chains present before up ("<flavour>/<table>/<chain>"). */
  preexistingChains: string[];
  /** nftables tables present before up ("<family> <name>"). */
  preexistingNftTables?: string[];
  /** System directories missing before up (host-files.ts SYSTEM_DIRS): ours to remove. */
  createdDirs?: string[];
  apiServer?: string;
  kubeconfig?: string;
  kubernetesVersion?: string;
}

export async function readState(path: string): Promise<ClusterState | undefined> {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as ClusterState;
  } catch {
    return undefined;
  }
}

/** Writes atomically (rename), so a reader never sees half a file. */
export async function writeState(path: string, state: ClusterState): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/**
 * Whether the state's daemon still runs (a dead one means an interrupted run to clean up): its
 * pid is alive and still a cluster daemon (not a recycled pid after a reboot).
 */
export function daemonAlive(state: ClusterState | undefined): boolean {
  if (state === undefined || state.daemonPid <= 0 || !isAlive(state.daemonPid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${state.daemonPid}/cmdline`, "utf8").split("\0");
    return cmdline.includes("daemon") && cmdline.some((arg) => arg.endsWith("main.ts"));
  } catch {
    return false;
  }
}
