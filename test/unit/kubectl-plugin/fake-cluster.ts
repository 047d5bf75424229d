/** A Cluster in memory for the plugin's unit tests: KeyPools and Secrets, and the patches it got. */
import type { V1Secret } from "@kubernetes/client-node";
import type { Cluster, KeyPoolObject } from "../../../src/kubectl-plugin/cluster.ts";
import { PluginError } from "../../../src/kubectl-plugin/errors.ts";

/** RFC 7386 merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  const out = new Map(Object.entries(base));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) out.delete(key);
    else out.set(key, mergePatch(out.get(key), value));
  }
  return Object.fromEntries(out);
}

export class FakeCluster implements Cluster {
  readonly pools = new Map<string, KeyPoolObject>();
  readonly secrets = new Map<string, V1Secret>();
  readonly patches: object[] = [];
  /** Runs after each read of a pool (a concurrent writer, an operator writing status). */
  onGet: ((pool: KeyPoolObject) => void) | undefined;
  #version = 1;

  addPool(pool: KeyPoolObject): void {
    this.pools.set(`${pool.metadata.namespace}/${pool.metadata.name}`, {
      ...pool,
      metadata: { uid: "uid-1", generation: 1, ...pool.metadata, resourceVersion: String(this.#version++) },
    });
  }

  addSecret(namespace: string, name: string, data: Record<string, string>, labelled = true): void {
    this.secrets.set(`${namespace}/${name}`, {
      metadata: { name, namespace, ...(labelled ? { labels: { "keypool.dev/secret": "true" } } : {}) },
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
    });
  }

  /** Changes a pool as another writer would (bumps its resourceVersion). */
  touch(namespace: string, name: string, change: (pool: KeyPoolObject) => void): void {
    const pool = this.pools.get(`${namespace}/${name}`) as KeyPoolObject;
    change(pool);
    pool.metadata.resourceVersion = String(this.#version++);
  }

  async getPool(namespace: string, name: string): Promise<KeyPoolObject> {
    const pool = this.pools.get(`${namespace}/${name}`);
    if (!pool) throw new PluginError("not_found", `KeyPool ${namespace}/${name} not found`);
    const copy = structuredClone(pool);
    this.onGet?.(pool);
    return copy;
  }

  async listPools(namespace: string | undefined): Promise<KeyPoolObject[]> {
    return [...this.pools.values()].filter(
      (p) => namespace === undefined || p.metadata.namespace === namespace,
    );
  }

  async patchPool(namespace: string, name: string, patch: object): Promise<KeyPoolObject> {
    const pool = this.pools.get(`${namespace}/${name}`);
    if (!pool) throw new PluginError("not_found", `KeyPool ${namespace}/${name} not found`);
    const wanted = (patch as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    if (wanted !== undefined && wanted !== pool.metadata.resourceVersion)
      throw new PluginError("conflict", "conflict");
    this.patches.push(patch);
    const next = mergePatch(pool, patch) as KeyPoolObject;
    if (JSON.stringify(next.spec) !== JSON.stringify(pool.spec))
      next.metadata.generation = (pool.metadata.generation ?? 1) + 1;
    next.metadata.resourceVersion = String(this.#version++);
    this.pools.set(`${namespace}/${name}`, next);
    return structuredClone(next);
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.secrets.get(`${namespace}/${name}`);
  }

  async listSecrets(namespace: string, labelSelector: string): Promise<V1Secret[]> {
    return [...this.secrets.values()].filter(
      (s) => s.metadata?.namespace === namespace && s.metadata.labels?.[labelSelector] !== undefined,
    );
  }
}
