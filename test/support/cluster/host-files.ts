/**
 * What the cluster leaves in system paths it cannot be told to avoid, and how to recognise it
 * as ours:
 *
 * - containerd 1.6 puts shim sockets in /run/containerd/s/, named sha256("<our socket>/<ns>/<id>");
 * - libcni caches results in /var/lib/cni/results/: `keypool-<sandbox>-eth0` (our network) and
 *   `cni-loopback-<sandbox>-lo` (containerd's loopback network, ours by sandbox id);
 * - the kubelet links container logs from /var/log/containers/ into our pod log dir;
 * - directories created on the way (/run/containerd, /var/lib/cni, /var/log/containers...):
 *   removed when empty, if they did not exist before `up` (state.json records which);
 * - nftables tables iptables-nft creates (ip nat, ip6 mangle...): deleted when they did not
 *   exist before `up` and hold no rule.
 */
import { createHash } from "node:crypto";
import { readdir, readlink, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { command } from "./command.ts";
import { foreignContainerds } from "./host-processes.ts";
import { type ClusterLayout, NAMES } from "./layout.ts";
import { isUnder } from "./mounts.ts";

/** libcni's result cache (containerd 1.6 cannot move it). */
export const CNI_CACHE_DIR = "/var/lib/cni/results";
/** The kubelet links container logs here whatever its podLogsDir. */
export const CONTAINER_LOG_LINKS = "/var/log/containers";
/** containerd 1.6's fixed shim socket directory. */
export const SHIM_SOCKET_DIR = "/run/containerd/s";

/** System directories the cluster's components create when missing. */
export const SYSTEM_DIRS = [
  "/run/containerd",
  "/var/lib/cni",
  "/var/log/containers",
  "/usr/libexec/kubernetes",
] as const;

/** The shim socket path containerd 1.6 derives for a task (runtime/v2/shim: SocketAddress). */
export function shimSocket(containerdSocket: string, namespace: string, id: string): string {
  const digest = createHash("sha256").update(`${containerdSocket}/${namespace}/${id}`).digest("hex");
  return join(SHIM_SOCKET_DIR, digest);
}

async function names(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** Sandbox and container ids our containerd knows (from its state and root directories). */
async function ourContainerIds(layout: ClusterLayout): Promise<{ tasks: string[]; sandboxes: string[] }> {
  const ns = NAMES.containerdNamespace;
  const tasks = await names(join(layout.containerd.state, "io.containerd.runtime.v2.task", ns));
  const sandboxes = [
    ...(await names(join(layout.containerd.root, "io.containerd.grpc.v1.cri", "sandboxes"))),
    ...(await names(join(layout.containerd.state, "io.containerd.grpc.v1.cri", "sandboxes"))),
  ];
  return { tasks, sandboxes };
}

/** Files of ours outside the run directory. */
export async function ourSystemFiles(layout: ClusterLayout): Promise<string[]> {
  const { tasks, sandboxes } = await ourContainerIds(layout);
  const cache = await names(CNI_CACHE_DIR);
  const ours = cache.filter((n) => n.startsWith(`${NAMES.cniNetwork}-`));
  const ids = new Set([
    ...tasks,
    ...sandboxes,
    ...ours.map((n) => n.slice(NAMES.cniNetwork.length + 1).replace(/-[^-]+$/, "")),
  ]);
  const loopback = cache.filter((n) => ids.has(/^cni-loopback-(.+)-lo$/.exec(n)?.[1] ?? ""));
  const sockets = [];
  for (const id of tasks) {
    const path = shimSocket(layout.containerd.socket, NAMES.containerdNamespace, id);
    if (await stat(path).catch(() => undefined)) sockets.push(path);
  }
  const links: string[] = [];
  for (const name of await names(CONTAINER_LOG_LINKS)) {
    const target = await readlink(join(CONTAINER_LOG_LINKS, name)).catch(() => "");
    if (isUnder(target, layout.dir)) links.push(join(CONTAINER_LOG_LINKS, name));
  }
  return [...[...ours, ...loopback].map((n) => join(CNI_CACHE_DIR, n)), ...sockets, ...links];
}

/** The SYSTEM_DIRS missing now (recorded before up: those are ours to remove later). */
export async function missingSystemDirs(): Promise<string[]> {
  const missing: string[] = [];
  for (const dir of SYSTEM_DIRS) if (!(await stat(dir).catch(() => undefined))) missing.push(dir);
  return missing;
}

/** Removes `dir` and the empty directories below it, bottom-up; keeps anything with files. */
export async function removeEmptyTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
  if (!entries) return;
  for (const e of entries) if (e.isDirectory()) await removeEmptyTree(join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

/**
 * Of the directories up created, those that are ours to remove: all but /run/containerd while
 * another containerd runs (it creates its runc root there too, and may rely on it).
 */
export async function createdDirsToRemove(
  layout: ClusterLayout,
  created: readonly string[],
): Promise<string[]> {
  const shared = (await foreignContainerds(layout.dir)).length > 0;
  return created.filter((dir) => !(shared && dir === "/run/containerd"));
}

/** Of the directories up created (and ours to remove), those still there. */
export async function remainingCreatedDirs(
  layout: ClusterLayout,
  created: readonly string[],
): Promise<string[]> {
  const found: string[] = [];
  for (const dir of await createdDirsToRemove(layout, created)) {
    if (await stat(dir).catch(() => undefined)) found.push(dir);
  }
  return found;
}

/** nftables tables now, as "<family> <name>" (empty when nft is missing). */
export async function nftTables(): Promise<string[]> {
  const r = await command("nft", ["list", "tables"], { allowFail: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("table "))
    .map((l) => l.slice("table ".length));
}

/** How many rules a table holds (nft's JSON listing). */
export async function nftRuleCount(table: string): Promise<number> {
  const r = await command("nft", ["-j", "list", "table", ...table.split(" ")], { allowFail: true });
  if (r.code !== 0) return 0;
  const parsed = JSON.parse(r.stdout || "{}") as { nftables?: Record<string, unknown>[] };
  return (parsed.nftables ?? []).filter((o) => "rule" in o).length;
}

/** Tables that did not exist before up and hold no rule (plus kube-proxy's own, always ours). */
export async function ourEmptyNftTables(preexisting: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const table of await nftTables()) {
    if (table.endsWith(" kube-proxy")) found.push(table);
    else if (!preexisting.includes(table) && (await nftRuleCount(table)) === 0) found.push(table);
  }
  return found;
}

export async function deleteNftTables(tables: readonly string[]): Promise<void> {
  for (const table of tables)
    await command("nft", ["delete", "table", ...table.split(" ")], { allowFail: true });
}
