/**
 * What the operator's caches keep of the objects they watch: the watchers' transforms (as
 * controller-runtime's cache TransformFunc and cert-manager's metadata stripping). The API server
 * sends managedFields, every annotation (kubectl's last-applied-configuration is a copy of the
 * whole object) and every Secret entry; the operator reads a fraction of that. Each transform
 * builds a new object (its argument is left alone) and accepts its own output, so a cached copy
 * can be trimmed again when what is read shrinks.
 *
 * - KeyPools keep everything but managedFields and the annotations that are not keypool.dev/*:
 *   spec and status (the reconciler and snapshotFromStatus read them), and the metadata
 *   onlyStatusChanged compares.
 * - Secrets keep name, namespace, uid, resourceVersion and labels (secretSelector matches them),
 *   and `data` only for the entries `wanted` says a pool reads; the names of the others go to
 *   `droppedEntries`, so a reader knows they exist and fetches them (SecretCache.refetch).
 * - Price-list ConfigMaps lose managedFields and annotations; their data is a few price lists.
 * Pure: no I/O, no clock.
 */
import type { KubernetesObject, V1ConfigMap, V1ObjectMeta } from "@kubernetes/client-node";
import { GROUP } from "../api/keypool.ts";
import type { CachedSecret } from "../sources/kubernetes/secrets.ts";

/** Annotations a cached KeyPool keeps: the operator's own (keypool.dev/probe-requested-at). */
const KEPT_ANNOTATION_PREFIX = `${GROUP}/`;

/** A KeyPool without managedFields and without annotations other than keypool.dev/*. */
export function trimKeyPool<T extends KubernetesObject>(pool: T): T {
  if (!pool.metadata) return pool;
  const { managedFields: _managedFields, annotations, ...metadata } = pool.metadata;
  const ours = Object.entries(annotations ?? {}).filter(([key]) => key.startsWith(KEPT_ANNOTATION_PREFIX));
  return {
    ...pool,
    // Absent rather than empty, so two trimmed copies compare equal however they came.
    metadata: ours.length ? { ...metadata, annotations: Object.fromEntries(ours) } : metadata,
  };
}

/**
 * A Secret with `data` only for the entries `wanted` accepts; the others are named in
 * `droppedEntries` (with those an earlier trim dropped). stringData is write-only: the API
 * server never sends it, and it is not kept.
 */
export function trimSecret(secret: CachedSecret, wanted: (entry: string) => boolean): CachedSecret {
  const data: Record<string, string> = {};
  const dropped = new Set(secret.droppedEntries);
  for (const [entry, value] of Object.entries(secret.data ?? {})) {
    if (wanted(entry)) data[entry] = value;
    else dropped.add(entry);
  }
  const meta = secret.metadata;
  const metadata: V1ObjectMeta = {
    name: meta?.name,
    namespace: meta?.namespace,
    uid: meta?.uid,
    resourceVersion: meta?.resourceVersion,
    ...(meta?.labels ? { labels: meta.labels } : {}),
  };
  return {
    apiVersion: secret.apiVersion,
    kind: secret.kind,
    metadata,
    data,
    ...(dropped.size ? { droppedEntries: [...dropped].sort() } : {}),
  };
}

/** A ConfigMap without managedFields and annotations. */
export function trimConfigMap(configMap: V1ConfigMap): V1ConfigMap {
  if (!configMap.metadata) return configMap;
  const { managedFields: _managedFields, annotations: _annotations, ...metadata } = configMap.metadata;
  return { ...configMap, metadata };
}

/** What the Secret caches hold, for tests and for a gauge. */
export interface SecretCacheStats {
  /** Secrets cached. */
  objects: number;
  /** Entries whose value is held. */
  entriesKept: number;
  /** Entries no pool reads: named, value not held. */
  entriesDropped: number;
  /** Characters of the values held (base64, as the API server sends them). */
  bytesKept: number;
}

export function secretCacheStats(secrets: Iterable<CachedSecret>): SecretCacheStats {
  const stats: SecretCacheStats = { objects: 0, entriesKept: 0, entriesDropped: 0, bytesKept: 0 };
  for (const secret of secrets) {
    stats.objects++;
    for (const value of Object.values(secret.data ?? {})) {
      stats.entriesKept++;
      stats.bytesKept += value.length;
    }
    stats.entriesDropped += secret.droppedEntries?.length ?? 0;
  }
  return stats;
}
