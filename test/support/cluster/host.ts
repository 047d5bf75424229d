/**
 * What the cluster changes on the machine itself, and how to undo it:
 *
 * - the pod bridge (kpbr0) with the node address, created before kube-apiserver so it can bind
 *   there; the CNI bridge plugin then attaches pods to it;
 * - sysctls pods need (IPv4 forwarding; bridged traffic through iptables for Services), with
 *   their old values recorded so `down` puts them back;
 * - the kubelet's cgroup root in every cgroup hierarchy;
 * - an iptables chain refusing to forward pod traffic to anything outside 198.18.0.0/15 (the
 *   machine routes, but nothing of the cluster's may leave it).
 */
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { command } from "./command.ts";
import { NAMES, NETWORK } from "./layout.ts";

/** Our own iptables chain (iptables.ts counts KEYPOOL-* as ours). */
export const EGRESS_CHAIN = "KEYPOOL-EGRESS";
/** All the cluster's addresses: pods, Services, the node. */
export const CLUSTER_RANGE = "198.18.0.0/15";

export const CGROUP_FS = "/sys/fs/cgroup";

/** Sysctls set to 1 for the cluster (as /proc/sys paths). */
export const SYSCTLS = [
  "/proc/sys/net/ipv4/ip_forward",
  "/proc/sys/net/bridge/bridge-nf-call-iptables",
] as const;

/** Sets the sysctls, returning the values to restore (only those that changed). */
export async function setSysctls(): Promise<Record<string, string>> {
  if (!(await stat("/proc/sys/net/bridge").catch(() => undefined))) {
    await command("modprobe", ["br_netfilter"], { allowFail: true });
  }
  const changed: Record<string, string> = {};
  for (const path of SYSCTLS) {
    const before = (await readFile(path, "utf8").catch(() => undefined))?.trim();
    if (before === undefined)
      throw new Error(`${path} is missing: the cluster needs it (is br_netfilter loaded?)`);
    if (before !== "1") {
      changed[path] = before;
      await writeFile(path, "1");
    }
  }
  return changed;
}

export async function restoreSysctls(saved: Record<string, string>): Promise<void> {
  for (const [path, value] of Object.entries(saved)) {
    await writeFile(path, value).catch(() => undefined);
  }
}

/** Creates the bridge with the node address (idempotent). */
export async function createBridge(): Promise<void> {
  const exists = await command("ip", ["link", "show", NAMES.bridge], { allowFail: true });
  if (exists.code !== 0) await command("ip", ["link", "add", NAMES.bridge, "type", "bridge"]);
  const addrs = await command("ip", ["-o", "-4", "addr", "show", "dev", NAMES.bridge]);
  if (!addrs.stdout.includes(` ${NETWORK.nodeIp}/`)) {
    const prefix = NETWORK.podCidr.split("/")[1];
    await command("ip", ["addr", "add", `${NETWORK.nodeIp}/${prefix}`, "dev", NAMES.bridge]);
  }
  await command("ip", ["link", "set", NAMES.bridge, "up"]);
}

/** The cgroup hierarchies mounted under /sys/fs/cgroup (v1 controllers, name=systemd, unified). */
export async function cgroupHierarchies(): Promise<string[]> {
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  return mounts
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f[4]?.startsWith(`${CGROUP_FS}/`) && /^cgroup2?$/.test(f[f.indexOf("-") + 1] ?? ""))
    .map((f) => f[4] as string);
}

/** Creates the kubelet's cgroup root in each hierarchy (cpuset needs cpus/mems filled in). */
export async function createCgroupRoot(): Promise<void> {
  for (const hierarchy of await cgroupHierarchies()) {
    const dir = join(hierarchy, NAMES.cgroupRoot);
    await mkdir(dir, { recursive: true });
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      const own = await readFile(join(dir, file), "utf8").catch(() => undefined);
      if (own !== undefined && own.trim() === "") {
        await writeFile(join(dir, file), await readFile(join(hierarchy, file), "utf8"));
      }
    }
  }
}

/** Every cgroup directory under our root, deepest first (the order rmdir needs). */
export async function ourCgroups(): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string) {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
    found.push(dir);
  }
  for (const hierarchy of await cgroupHierarchies()) {
    const root = join(hierarchy, NAMES.cgroupRoot);
    if (await stat(root).catch(() => undefined)) await walk(root);
  }
  return found;
}

/** Removes our cgroups (they must hold no processes); returns those that would not go. */
export async function removeCgroups(): Promise<string[]> {
  const stuck: string[] = [];
  for (const dir of await ourCgroups()) {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") stuck.push(`${dir}: ${err.code}`);
    });
  }
  return stuck;
}

/**
 * Pods may reach the cluster's addresses (each other, Services after kube-proxy's DNAT, the
 * node) and nothing else: forwarded traffic from the pod range elsewhere is refused at once.
 */
export async function isolatePods(): Promise<void> {
  const exists = await command("iptables", ["-t", "filter", "-S", EGRESS_CHAIN], { allowFail: true });
  if (exists.code === 0) return;
  await command("iptables", ["-t", "filter", "-N", EGRESS_CHAIN]);
  await command("iptables", ["-t", "filter", "-A", EGRESS_CHAIN, "-d", CLUSTER_RANGE, "-j", "RETURN"]);
  await command("iptables", [
    "-t",
    "filter",
    "-A",
    EGRESS_CHAIN,
    "-j",
    "REJECT",
    "--reject-with",
    "icmp-net-prohibited",
  ]);
  await command("iptables", [
    "-t",
    "filter",
    "-I",
    "FORWARD",
    "1",
    "-s",
    NETWORK.clusterCidr,
    "-m",
    "comment",
    "--comment",
    "keypool cluster: pods stay inside",
    "-j",
    EGRESS_CHAIN,
  ]);
}
