/**
 * The watcher's cache (its indexer): the objects of one collection by namespace/name. It applies
 * watch events and whole lists, and answers with the changes it made; it emits nothing and logs
 * nothing itself. Repeats of what it holds (same resourceVersion) are no change.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { CacheChange, WatchEventType } from "./types.ts";

export class ObjectCache<T extends KubernetesObject> {
  #objects = new Map<string, T>();

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#objects.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    const all = [...this.#objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  get size(): number {
    return this.#objects.size;
  }

  /** Applies one watch event; the change it made, or undefined when it changed nothing. */
  apply(type: WatchEventType, object: T): CacheChange<T> | undefined {
    const key = keyOf(object);
    const old = this.#objects.get(key);
    if (type === "DELETED") {
      if (!old) return undefined;
      this.#objects.delete(key);
      return ["DELETED", object, old];
    }
    // A resumed watch may repeat what the cache already holds.
    if (old && versionOf(old) === versionOf(object)) return undefined;
    this.#objects.set(key, object);
    return [old ? "MODIFIED" : "ADDED", object, old];
  }

  /**
   * Swaps in a full list and answers what differs from before: additions and modifications in
   * list order, then deletions. Objects whose resourceVersion did not change keep their old copy.
   */
  replace(items: T[]): CacheChange<T>[] {
    const previous = this.#objects;
    const next = new Map<string, T>();
    const changes: CacheChange<T>[] = [];
    for (const object of items) {
      const key = keyOf(object);
      const old = previous.get(key);
      if (old && versionOf(old) === versionOf(object)) {
        next.set(key, old);
        continue;
      }
      next.set(key, object);
      changes.push([old ? "MODIFIED" : "ADDED", object, old]);
    }
    for (const [key, old] of previous) {
      if (!next.has(key)) changes.push(["DELETED", old, old]);
    }
    this.#objects = next;
    return changes;
  }
}

/** The cache key of an object: "namespace/name", or "name" for a cluster-scoped one. */
function keyOf(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name ?? "";
  return namespace ? `${namespace}/${name}` : name;
}

function versionOf(object: KubernetesObject): string | undefined {
  return object.metadata?.resourceVersion;
}
