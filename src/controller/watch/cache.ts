/**
 * The watcher's cache (its indexer): the objects of one collection by namespace/name. It applies
 * watch events and whole lists, and answers with the changes it made; it emits nothing and logs
 * nothing itself. Repeats of what it holds (same resourceVersion) are no change.
 *
 * An optional transform trims each object before it is stored (controller-runtime's
 * TransformFunc, client-go's TransformFunc): the cache holds, and the changes carry, only what
 * the transform keeps. It runs once per new resourceVersion, never on a repeat.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { CacheChange, WatchEventType } from "./types.ts";

/** What the cache keeps of an object; it must not mutate its argument. */
export type Transform<T> = (object: T) => T;

export class ObjectCache<T extends KubernetesObject> {
  #objects = new Map<string, T>();
  /** The same objects by namespace ("" for cluster-scoped ones), then by key. */
  #byNamespace = new Map<string, Map<string, T>>();
  readonly #transform: Transform<T>;

  constructor(transform: Transform<T> = (object) => object) {
    this.#transform = transform;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#objects.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.#objects.values()];
    const inNamespace = this.#byNamespace.get(namespace);
    return inNamespace ? [...inNamespace.values()] : [];
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
      this.#delete(key, old);
      return ["DELETED", this.#transform(object), old];
    }
    // A resumed watch may repeat what the cache already holds.
    if (old && versionOf(old) === versionOf(object)) return undefined;
    const kept = this.#transform(object);
    this.#set(key, kept);
    return [old ? "MODIFIED" : "ADDED", kept, old];
  }

  /**
   * Stores `object` (transformed), read outside the watch (a GET), only if the cache still holds
   * `expected` itself or a copy of the same resourceVersion: a compare-and-swap, so a newer copy
   * the watch stored meanwhile is never replaced by an older one. Answers whether it was stored,
   * and the change when the resourceVersion moved (a same-version swap changes only what the
   * transform kept).
   */
  swap(expected: T, object: T): { stored: boolean; change?: CacheChange<T> } {
    const key = keyOf(object);
    const current = this.#objects.get(key);
    if (!current || (current !== expected && versionOf(current) !== versionOf(object)))
      return { stored: false };
    const kept = this.#transform(object);
    this.#set(key, kept);
    return versionOf(current) === versionOf(kept)
      ? { stored: true }
      : { stored: true, change: ["MODIFIED", kept, current] };
  }

  /**
   * Runs the transform again over the cached copy (what it keeps shrank); emits nothing, as
   * nothing a reader asks for changed. The transform must accept its own output.
   */
  retransform(namespace: string | undefined, name: string): void {
    const key = namespace ? `${namespace}/${name}` : name;
    const old = this.#objects.get(key);
    if (old) this.#set(key, this.#transform(old));
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
      const kept = this.#transform(object);
      next.set(key, kept);
      changes.push([old ? "MODIFIED" : "ADDED", kept, old]);
    }
    for (const [key, old] of previous) {
      if (!next.has(key)) changes.push(["DELETED", old, old]);
    }
    this.#objects = next;
    this.#byNamespace = new Map();
    for (const [key, object] of next) this.#index(key, object);
    return changes;
  }

  #set(key: string, object: T) {
    this.#objects.set(key, object);
    this.#index(key, object);
  }

  #index(key: string, object: T) {
    const namespace = object.metadata?.namespace ?? "";
    let inNamespace = this.#byNamespace.get(namespace);
    if (!inNamespace) this.#byNamespace.set(namespace, (inNamespace = new Map()));
    inNamespace.set(key, object);
  }

  #delete(key: string, object: T) {
    this.#objects.delete(key);
    const namespace = object.metadata?.namespace ?? "";
    const inNamespace = this.#byNamespace.get(namespace);
    inNamespace?.delete(key);
    if (inNamespace?.size === 0) this.#byNamespace.delete(namespace);
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
