/**
 * Finding the cluster's processes on the machine, whoever started them: container processes
 * (in the kubelet's cgroup root), containerd shims (their -address is our socket), and the
 * components and their supervisors (our run directory is in their command line). The caller
 * and its ancestors are never included (`down --dir <run>` names the run directory too).
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { basename } from "node:path";
import { NAMES } from "./layout.ts";

export interface HostProcess {
  pid: number;
  ppid: number;
  /** The executable's file name. */
  exe: string;
  cmdline: string;
  /** Whether it runs in a pod (inside our cgroup root). */
  inPod: boolean;
}

/** Executables whose command line naming the run directory makes them ours. */
export const COMPONENT_EXES = new Set([
  "node",
  "containerd",
  "containerd-shim",
  "containerd-shim-runc-v2",
  "runc",
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
  "kubelet",
  "ctr",
]);

/** Whether a /proc/<pid>/cgroup text puts the process under our cgroup root. */
export function inOurCgroup(cgroupText: string): boolean {
  return cgroupText.split("\n").some((line) => {
    const path = line.split(":").slice(2).join(":");
    return path === `/${NAMES.cgroupRoot}` || path.startsWith(`/${NAMES.cgroupRoot}/`);
  });
}

/** Whether a command line names `dir` (as a whole path or a path inside it). */
export function namesDir(cmdline: string, dir: string): boolean {
  return cmdline.split(/[\s=]/).some((arg) => arg === dir || arg.startsWith(`${dir}/`));
}

async function ancestors(): Promise<Set<number>> {
  const seen = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !seen.has(pid)) {
    seen.add(pid);
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
  }
  return seen;
}

interface ProcessInfo {
  pid: number;
  ppid: number;
  exe: string;
  cmdline: string;
  cgroup: string;
}

/** Every process but the caller and its ancestors. */
async function processes(): Promise<ProcessInfo[]> {
  const skip = await ancestors();
  const found: ProcessInfo[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || skip.has(pid)) continue;
    const [cmdRaw, cgroup, stat, exePath] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => ""),
      readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => ""),
      readFile(`/proc/${pid}/stat`, "utf8").catch(() => ""),
      readlink(`/proc/${pid}/exe`).catch(() => ""),
    ]);
    if (!stat) continue;
    const cmdline = cmdRaw.replace(/\0+$/, "").replace(/\0/g, " ");
    const exe =
      basename(exePath.replace(/ \(deleted\)$/, "")) ||
      stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] ?? 0);
    found.push({ pid, ppid, exe, cmdline, cgroup });
  }
  return found;
}

/** The cluster's processes now. */
export async function clusterProcesses(dir: string): Promise<HostProcess[]> {
  return (await processes()).flatMap(({ pid, ppid, exe, cmdline, cgroup }) => {
    const inPod = inOurCgroup(cgroup);
    return inPod || (COMPONENT_EXES.has(exe) && namesDir(cmdline, dir))
      ? [{ pid, ppid, exe, cmdline, inPod }]
      : [];
  });
}

/** containerd daemons that are not the cluster's (they share /run/containerd with ours). */
export async function foreignContainerds(dir: string): Promise<number[]> {
  return (await processes())
    .filter((p) => p.exe === "containerd" && !namesDir(p.cmdline, dir))
    .map((p) => p.pid);
}

/** SIGKILLs every process in the cluster's pods (they hold connections kube-apiserver would wait for). */
export async function killPodProcesses(dir: string): Promise<number> {
  const pods = (await clusterProcesses(dir)).filter((p) => p.inPod);
  for (const p of pods) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  return pods.length;
}
