/**
 * Mounts the cluster leaves while it runs, all under its run directory: the kubelet's root
 * (bind-mounted onto itself, rshared), pod volumes (tmpfs for Secrets and ServiceAccount
 * tokens), containerd's overlay root filesystems and sandbox /dev/shm, and pod network
 * namespaces (nsfs, under containerd's state dir). Read from /proc/self/mountinfo; unmounted
 * deepest and newest first.
 */
import { readFile } from "node:fs/promises";
import { command } from "./command.ts";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/<pid>/mountinfo text, in the kernel's order (oldest first). */
export function parseMountInfo(text: string): MountEntry[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .flatMap((line) => {
      const fields = line.split(" ");
      const dash = fields.indexOf("-");
      const mountPoint = fields[4];
      const fsType = fields[dash + 1];
      const source = fields[dash + 2];
      if (dash < 0 || !mountPoint || !fsType) return [];
      return [{ mountPoint: unescape(mountPoint), fsType, source: unescape(source ?? "") }];
    });
}

/** Whether `path` is `dir` or inside it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/** The mounts at or under `dir`, in the order to unmount them: newest first. */
export function mountsUnder(entries: readonly MountEntry[], dir: string): MountEntry[] {
  return entries.filter((m) => isUnder(m.mountPoint, dir)).reverse();
}

export async function currentMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile("/proc/self/mountinfo", "utf8"));
}

/**
 * Unmounts everything under `dir`, repeating while mounts remain (stacked mounts, or ones
 * that propagate back). A busy mount is detached lazily. Returns what is still there.
 */
export async function unmountAll(dir: string, rounds = 5): Promise<MountEntry[]> {
  for (let round = 0; round < rounds; round++) {
    const mounts = mountsUnder(await currentMounts(), dir);
    if (mounts.length === 0) return [];
    for (const m of mounts) {
      const r = await command("umount", [m.mountPoint], { allowFail: true });
      if (r.code !== 0) await command("umount", ["-l", m.mountPoint], { allowFail: true });
    }
  }
  return mountsUnder(await currentMounts(), dir);
}
