/**
 * leftovers(): what of the cluster is still on the machine. Empty after a clean `down`; the
 * e2e asserts exactly that. Each entry names its kind and the thing itself (a pid and command
 * line, a mount point, an interface, an iptables chain or rule, an nftables table, a cgroup, a
 * file or directory).
 */
import { command } from "./command.ts";
import { ourCgroups } from "./host.ts";
import { ourEmptyNftTables, ourSystemFiles, remainingCreatedDirs } from "./host-files.ts";
import { clusterProcesses } from "./host-processes.ts";
import { iptablesLeftovers } from "./iptables.ts";
import { type ClusterLayout, NAMES } from "./layout.ts";
import { currentMounts, mountsUnder } from "./mounts.ts";

export type LeftoverKind =
  "process" | "mount" | "netns" | "interface" | "iptables" | "nftables" | "cgroup" | "file";

export interface Leftover {
  kind: LeftoverKind;
  what: string;
}

/** The interfaces of ours: the bridge and every veth attached to it. */
export async function ourInterfaces(): Promise<string[]> {
  const r = await command("ip", ["-j", "link", "show"], { allowFail: true });
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout || "[]") as { ifname: string; master?: string }[];
  return links.filter((l) => l.ifname === NAMES.bridge || l.master === NAMES.bridge).map((l) => l.ifname);
}

/** What up recorded about the machine before changing it (state.json). */
export interface Recorded {
  /** CNI-HOSTPORT-* chains that existed before up: someone else's. */
  preexistingChains?: readonly string[];
  /** nftables tables that existed before up. */
  preexistingNftTables?: readonly string[];
  /** System directories up's components created. */
  createdDirs?: readonly string[];
}

export async function leftovers(layout: ClusterLayout, recorded: Recorded = {}): Promise<Leftover[]> {
  const [processes, mounts, interfaces, chains, nft, cgroups, files, dirs] = await Promise.all([
    clusterProcesses(layout.dir),
    currentMounts(),
    ourInterfaces(),
    iptablesLeftovers(recorded.preexistingChains),
    recorded.preexistingNftTables ? ourEmptyNftTables(recorded.preexistingNftTables) : Promise.resolve([]),
    ourCgroups(),
    ourSystemFiles(layout),
    remainingCreatedDirs(layout, recorded.createdDirs ?? []),
  ]);
  return [
    ...processes.map((p) => ({ kind: "process" as const, what: `${p.pid} ${p.cmdline}` })),
    ...mountsUnder(mounts, layout.dir).map((m) => ({
      kind: m.fsType === "nsfs" ? ("netns" as const) : ("mount" as const),
      what: `${m.mountPoint} (${m.fsType})`,
    })),
    ...interfaces.map((what) => ({ kind: "interface" as const, what })),
    ...chains.map((what) => ({ kind: "iptables" as const, what })),
    ...nft.map((what) => ({ kind: "nftables" as const, what: `table ${what}` })),
    ...cgroups.map((what) => ({ kind: "cgroup" as const, what })),
    ...files.map((what) => ({ kind: "file" as const, what })),
    ...dirs.map((what) => ({ kind: "file" as const, what: `${what}/ (created by up)` })),
  ];
}

export function formatLeftovers(found: readonly Leftover[]): string {
  return found.map((l) => `${l.kind.padEnd(9)} ${l.what}`).join("\n");
}
