/**
 * rotate-check: the keys the pool's Secrets hold now against the keys its status shows, by key id.
 * The Secrets are read with the user's own credentials and resolved exactly as the operator
 * resolves them (resolvePoolKeys: entries, commas and newlines, the keypool.dev/secret label,
 * duplicates); each key becomes its id (sha256 prefix) at once, and only ids and entry names
 * (secret/<name>#<entry>) leave this module, never a key.
 */
import type { V1Secret } from "@kubernetes/client-node";
import { KeyPoolSpec } from "../api/keypool.ts";
import type { KeyState } from "../api/keypool.ts";
import { keyId } from "../pool/identity.ts";
import { resolvePoolKeys, SECRET_LABEL, type SecretCache } from "../sources/kubernetes/secrets.ts";
import type { Cluster, KeyPoolObject } from "./cluster.ts";
import { PluginError } from "./errors.ts";
import { renderTable } from "./table.ts";

/** A key of the Secrets, by id and entry name. */
export interface SecretKey {
  id: string;
  source: string;
}

export interface RotationItem {
  id: string;
  source: string;
  /** Its state in the pool's status; absent when the status does not show it. */
  state?: KeyState;
  until?: string;
}

export interface Rotation {
  namespace: string;
  name: string;
  /** In the Secrets, not (or no longer) among the pool's keys: the operator adds it. */
  new: RotationItem[];
  /** Among the pool's keys, gone from the Secrets: the operator drains it. */
  removed: RotationItem[];
  unchanged: RotationItem[];
  /** In the Secrets, kept out by spec.drainedKeys. */
  drained: RotationItem[];
  /** Gone from the Secrets and already Draining: it leaves at `until`. */
  leaving: RotationItem[];
  /** What the operator would complain about too (missing Secrets, unlabelled ones, duplicates). */
  problems: Array<{ reason: string; message: string }>;
}

/** Compares the Secrets' keys with the status's, by id. Pure. */
export function compareKeys(
  pool: KeyPoolObject,
  secretKeys: readonly SecretKey[],
): Omit<Rotation, "problems"> {
  const status = new Map((pool.status?.keyStatuses ?? []).map((k) => [k.id, k]));
  const inSecrets = new Set(secretKeys.map((k) => k.id));
  const drained = new Set(pool.spec.drainedKeys ?? []);
  const out: Omit<Rotation, "problems"> = {
    namespace: pool.metadata.namespace,
    name: pool.metadata.name,
    new: [],
    removed: [],
    unchanged: [],
    drained: [],
    leaving: [],
  };
  const item = (id: string, source: string): RotationItem => {
    const known = status.get(id);
    return {
      id,
      source,
      ...(known ? { state: known.state } : {}),
      ...(known?.until ? { until: known.until } : {}),
    };
  };
  for (const key of secretKeys) {
    const known = status.get(key.id);
    if (drained.has(key.id)) out.drained.push(item(key.id, key.source));
    else if (known && known.state !== "Draining") out.unchanged.push(item(key.id, key.source));
    else out.new.push(item(key.id, key.source));
  }
  for (const known of status.values()) {
    if (inSecrets.has(known.id)) continue;
    if (known.state === "Draining") out.leaving.push(item(known.id, known.source));
    else out.removed.push(item(known.id, known.source));
  }
  return out;
}

/** Reads the pool's Secrets and resolves their keys to ids, as the operator would. */
export async function secretKeysOf(
  cluster: Cluster,
  pool: KeyPoolObject,
): Promise<{ keys: SecretKey[]; problems: Rotation["problems"] }> {
  const parsed = KeyPoolSpec.safeParse(pool.spec);
  if (!parsed.success) {
    throw new PluginError(
      "api_error",
      `KeyPool ${pool.metadata.namespace}/${pool.metadata.name} has an invalid spec: ${parsed.error.issues[0]?.message ?? "invalid"}`,
    );
  }
  const spec = parsed.data;
  const namespace = pool.metadata.namespace;
  // What the operator's cache would hold: the labelled Secrets the pool names, or those it selects.
  const named = new Map<string, V1Secret | undefined>();
  for (const ref of spec.keys ?? []) {
    const name = ref.secretRef.name;
    if (!named.has(name)) named.set(name, await cluster.getSecret(namespace, name));
  }
  const selected = spec.secretSelector ? await cluster.listSecrets(namespace, SECRET_LABEL) : [];
  const labelled = (s: V1Secret | undefined) => s?.metadata?.labels?.[SECRET_LABEL] !== undefined;
  const cache: SecretCache = {
    get: (_ns, name) => {
      const secret = named.get(name) ?? selected.find((s) => s.metadata?.name === name);
      return labelled(secret) ? secret : undefined;
    },
    list: () => selected,
  };
  const resolved = await resolvePoolKeys(namespace, spec, cache, async (_ns, name) =>
    named.get(name) === undefined ? "missing" : "unlabelled",
  );
  return {
    keys: resolved.entries.map((entry) => ({ id: keyId(entry.key), source: entry.source })),
    problems: resolved.problems.map((p) => ({ reason: p.reason, message: p.message })),
  };
}

export async function rotateCheck(cluster: Cluster, pool: KeyPoolObject): Promise<Rotation> {
  const { keys, problems } = await secretKeysOf(cluster, pool);
  return { ...compareKeys(pool, keys), problems };
}

const CHANGES = ["new", "removed", "unchanged", "drained", "leaving"] as const;

export function renderRotation(rotation: Rotation): string {
  const rows = CHANGES.flatMap((change) =>
    rotation[change].map((k) => [change, k.id, k.source, k.state ?? "-", k.until ?? "-"]),
  );
  const summary = CHANGES.filter((c) => rotation[c].length)
    .map((c) => `${rotation[c].length} ${c}`)
    .join(", ");
  const lines = [
    `KeyPool ${rotation.namespace}/${rotation.name}: ${summary || "no keys in its Secrets or its status"}`,
  ];
  if (rotation.new.length || rotation.removed.length) {
    lines.push(
      "  the status does not show these changes yet: the operator applies a Secret change within a second " +
        "(if it does not, check the problems below and the operator's logs)",
    );
  }
  for (const p of rotation.problems) lines.push(`  ${p.reason}: ${p.message}`);
  const table = rows.length ? `\n${renderTable(["CHANGE", "KEY ID", "SOURCE", "STATE", "UNTIL"], rows)}` : "";
  return `${lines.join("\n")}\n${table}`;
}
