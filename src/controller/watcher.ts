/**
 * ResourceWatcher: a list+watch cache of one collection that keeps itself alive.
 *
 * Built on client-node's `Watch` (one watch request) rather than its `ListWatch`, which stops for
 * good on any error other than 410 (kubernetes-client/javascript#2385) and cannot notice a
 * half-open connection (#2432); docs/adr/0001-watcher.md says why and what was checked. The
 * parts, in src/controller/watch/:
 *
 * - reflector.ts: the one loop list → watch → (list | watch) → …, so a relist never races a watch
 *   over the cache; every error restarts with jittered exponential backoff (retry.ts).
 * - list-pager.ts: LIST page by page; an expired continue token restarts it unpaginated.
 * - watch-session.ts: one watch from the list's resourceVersion, with bookmarks; a clean close
 *   resumes from the last resourceVersion seen, a 410 Gone relists.
 * - watchdog.ts: a watch with no sign of life for `watchdogMs` is aborted and relisted.
 * - relists.ts: relist() and the periodic relist, which diffs the list against the cache and
 *   emits the differences, repairing any event that was missed.
 * - cache.ts: the objects by namespace/name, and the changes a list or an event makes to them;
 *   an optional transform trims each object before it is stored.
 * - types.ts: event types, stats, errors.
 * watch/ may import @kubernetes/client-node, undici, src/kube-client.ts, src/log.ts,
 * src/pool/clock.ts (the Clock type) and src/controller/backoff.ts; nothing else of the
 * controller imports it but this file. Time comes from the injected clock; the timers are real.
 *
 * This class wires them: it owns the cache, emits its changes to `onEvent`, and answers
 * start/stop/relist and the liveness questions. Objects are the parsed JSON from the API server;
 * logs carry kind, namespace, name and resourceVersion only, never object contents (Secrets hold
 * keys).
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { ObjectCache } from "./watch/cache.ts";
import { Reflector } from "./watch/reflector.ts";
import { stoppedError, type WatchEventType, type WatcherStats } from "./watch/types.ts";

export { WatcherError, WatcherErrorCode, type WatchEventType, type WatcherStats } from "./watch/types.ts";

export interface WatcherOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Collection path, e.g. "/apis/keypool.dev/v1alpha1/keypools" or "/api/v1/namespaces/ai/secrets". */
  path: string;
  /** e.g. "keypool.dev/secret" */
  labelSelector?: string;
  logger: Logger;
  /** Time for liveness (staleForMs) and the backoff's reset; the timers are real. */
  clock: Clock;
  /**
   * Called for every change to the cache, after the cache is updated. `object` and `old` are what
   * the cache holds: transformed, when there is a transform.
   */
  onEvent: (type: WatchEventType, object: T, old: T | undefined) => void;
  /**
   * What the cache keeps of each object from a list or a watch, applied before it is stored and
   * before onEvent sees it (controller-runtime's cache TransformFunc). It must not mutate its
   * argument, and must accept its own output (retransform() feeds it back). Default: all of it.
   */
  transform?: (object: T) => T;
  /** Abort and relist when a watch shows no sign of life for this long. Default 120_000. */
  watchdogMs?: number;
  /** Full relist (diffed against the cache) this often. Default 600_000. */
  relistIntervalMs?: number;
  /** Retry delays after errors: doubling from initialMs (default 500) up to maxMs (default 30_000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Items per LIST page. Default 500. */
  pageSize?: number;
}

export class ResourceWatcher<T extends KubernetesObject> {
  readonly stats: WatcherStats = { lists: 0, watchesStarted: 0, errors: 0, relists410: 0, watchdogAborts: 0 };

  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #onEvent: WatcherOptions<T>["onEvent"];
  readonly #cache: ObjectCache<T>;
  readonly #reflector: Reflector<T>;
  #synced = false;
  #stopped = false;
  #startedAt: number | undefined;
  #running: Promise<void> | undefined;
  #start: PromiseWithResolvers<void> | undefined;

  constructor(options: WatcherOptions<T>) {
    this.#onEvent = options.onEvent;
    this.#cache = new ObjectCache<T>(options.transform);
    this.#clock = options.clock;
    this.#log = options.logger.child({ component: "watcher", path: options.path });
    this.#reflector = new Reflector<T>({
      kc: options.kc,
      path: options.path,
      labelSelector: options.labelSelector,
      pageSize: options.pageSize ?? 500,
      watchdogMs: options.watchdogMs ?? 120_000,
      relistIntervalMs: options.relistIntervalMs ?? 600_000,
      backoff: { initialMs: options.backoff?.initialMs ?? 500, maxMs: options.backoff?.maxMs ?? 30_000 },
      logger: this.#log,
      clock: options.clock,
      stats: this.stats,
      onList: (items, resourceVersion) => this.#listed(items, resourceVersion),
      onWatchEvent: (type, object) => {
        if (!this.acceptWatchEvent(type, object)) return;
        const change = this.#cache.apply(type, object);
        if (change) this.#emit(...change);
      },
      watchResourceVersion: (resourceVersion) => this.watchResourceVersion(resourceVersion),
    });
  }

  /** Resolves once the first list has filled the cache; rejects (code watcher_stopped) if stop() comes first. */
  start(): Promise<void> {
    if (this.#start) return this.#start.promise;
    if (this.#stopped) return Promise.reject(stoppedError());
    this.#start = Promise.withResolvers();
    this.#startedAt = this.#clock.now();
    this.#running = this.#reflector.run();
    return this.#start.promise;
  }

  /** Aborts the watch or list in flight and clears every timer. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      const err = stoppedError();
      this.#reflector.stop(err);
      if (!this.#synced) this.#start?.reject(err);
    }
    await this.#running;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(namespace, name);
  }

  list(namespace?: string): T[] {
    return this.#cache.list(namespace);
  }

  get size(): number {
    return this.#cache.size;
  }

  /**
   * Stores a copy read outside the watch (a GET) if the cache still holds `expected` itself (or a
   * copy of the same resourceVersion), so a newer copy the watch stored meanwhile wins; a stored
   * copy with another resourceVersion is emitted as MODIFIED. Answers whether it was stored.
   */
  swap(expected: T, object: T): boolean {
    const { stored, change } = this.#cache.swap(expected, object);
    if (change) this.#emit(...change);
    return stored;
  }

  /** Runs the transform again over one cached object (what it keeps shrank). Emits nothing. */
  retransform(namespace: string | undefined, name: string): void {
    this.#cache.retransform(namespace, name);
  }

  /** The first list is done. */
  get synced(): boolean {
    return this.#synced;
  }

  /** ms since the last sign of life (list, watch opened, event, bookmark), or since start(); for liveness. */
  staleForMs(at: number = this.#clock.now()): number {
    const since = this.#reflector.lastAlive ?? this.#startedAt;
    return since === undefined ? 0 : Math.max(0, at - since);
  }

  /** A watch stream is open right now. */
  get connected(): boolean {
    return this.#reflector.connected;
  }

  /**
   * Lists again now (ending the open watch) and resolves when a list that started after this call
   * has been applied. While the API server is unreachable it waits for the retries.
   */
  relist(): Promise<void> {
    if (this.#stopped || !this.#running) return Promise.reject(stoppedError("the watcher is not running"));
    return this.#reflector.relist();
  }

  /** The resourceVersion the next watch starts from. A seam for tests that force a 410 Gone. */
  protected watchResourceVersion(resourceVersion: string): string {
    return resourceVersion;
  }

  /** Whether a watch event is applied to the cache. A seam for tests that simulate a missed event. */
  protected acceptWatchEvent(_type: WatchEventType, _object: T): boolean {
    return true;
  }

  /** A full list: swap it into the cache, emit what differs, and resolve start() the first time. */
  #listed(items: T[], resourceVersion: string): void {
    const changes = this.#cache.replace(items);
    const initial = this.stats.lists === 1;
    if (changes.length > 0 || initial) {
      this.#log[initial ? "debug" : "info"](
        { objects: this.#cache.size, changes: changes.length, resourceVersion },
        initial ? "listed" : "relist changed the cache",
      );
    }
    for (const [type, object, old] of changes) this.#emit(type, object, old);
    if (!this.#synced) {
      this.#synced = true;
      this.#start?.resolve();
    }
  }

  #emit(type: WatchEventType, object: T, old: T | undefined): void {
    const meta = object.metadata;
    const about = { type, kind: object.kind, namespace: meta?.namespace, name: meta?.name };
    this.#log.debug({ ...about, resourceVersion: meta?.resourceVersion }, "cache changed");
    try {
      this.#onEvent(type, object, old);
    } catch (err) {
      this.#log.error({ err, ...about }, "onEvent threw");
    }
  }
}
