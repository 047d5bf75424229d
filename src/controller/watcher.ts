/**
 * ResourceWatcher: a list+watch cache of one collection that keeps itself alive.
 *
 * Built on client-node's `Watch` (one watch request) rather than its `ListWatch`, which stops for
 * good on any error other than 410 (kubernetes-client/javascript#2385) and cannot notice a
 * half-open connection (#2432). Here:
 *
 * - LIST is paginated (`limit` + `continue`); a 410 on a continue token restarts the list
 *   unpaginated (like client-go's pager), so an expired token cannot loop.
 * - WATCH starts at the list's resourceVersion with bookmarks and a server-side timeout of 5–10 min
 *   (randomised like client-go); a clean close resumes from the last resourceVersion seen.
 * - Every error restarts with jittered exponential backoff; a 410 Gone (HTTP status or an ERROR
 *   event carrying a Status with code 410) relists.
 * - A watchdog aborts a watch that shows no sign of life (event, bookmark; bytes via `Watch`'s own
 *   inactivity timer, #3020) for `watchdogMs`, and relists. The API server sends a bookmark about
 *   once a minute to every watch that asked for them, so a healthy quiet watch is never aborted
 *   by the 120 s default.
 * - A periodic relist diffs the list against the cache and emits the differences, repairing any
 *   event that was missed.
 *
 * One loop runs list → watch → (list | watch) → …, so a relist never races a watch over the
 * cache. Objects are the parsed JSON from the API server; logs carry kind, namespace, name and
 * resourceVersion only, never object contents (Secrets hold keys).
 */
import { type KubeConfig, type KubernetesObject, Watch } from "@kubernetes/client-node";
import { fetch } from "undici";
import { requestAuth, sharedTransport } from "../kube-client.ts";
import type { Logger } from "../log.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatcherOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Collection path, e.g. "/apis/keypool.dev/v1alpha1/keypools" or "/api/v1/namespaces/ai/secrets". */
  path: string;
  /** e.g. "keypool.dev/secret" */
  labelSelector?: string;
  logger: Logger;
  /** Called for every change to the cache, after the cache is updated. */
  onEvent: (type: WatchEventType, object: T, old: T | undefined) => void;
  /** Abort and relist when a watch shows no sign of life for this long. Default 120_000. */
  watchdogMs?: number;
  /** Full relist (diffed against the cache) this often. Default 600_000. */
  relistIntervalMs?: number;
  /** Retry delays after errors: doubling from initialMs (default 500) up to maxMs (default 30_000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Items per LIST page. Default 500. */
  pageSize?: number;
}

export interface WatcherStats {
  /** Completed full lists (the first one, relists after 410 / watchdog, periodic relists). */
  lists: number;
  watchesStarted: number;
  /** Failed lists and watches (network errors, HTTP errors, ERROR events other than 410). */
  errors: number;
  /** 410 Gone answers (watch or list continue token) that made the watcher list again. */
  relists410: number;
  /** Watches aborted because nothing arrived for watchdogMs. */
  watchdogAborts: number;
}

export const WatcherErrorCode = {
  /** stop() was called before the operation could finish. */
  Stopped: "watcher_stopped",
  /** A LIST answered with an HTTP error (the status is in `status`). */
  ListFailed: "watcher_list_failed",
  /** A watch stream delivered an ERROR event other than 410 Gone. */
  WatchError: "watcher_watch_error",
} as const;
export type WatcherErrorCode = (typeof WatcherErrorCode)[keyof typeof WatcherErrorCode];

export class WatcherError extends Error {
  override name = "WatcherError";
  readonly code: WatcherErrorCode;
  readonly status: number | undefined;
  constructor(code: WatcherErrorCode, message: string, status?: number) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** A new backoff sequence starts when the last failure is older than this. */
const BACKOFF_RESET_MS = 120_000;
/** A watch closed cleanly sooner than this without any event is treated like a failure (no hot loop). */
const MIN_HEALTHY_WATCH_MS = 1_000;
/** Server-side watch timeout, randomised in [min, max) seconds like client-go's reflector. */
const WATCH_TIMEOUT_S = { min: 300, max: 600 };
/** LIST requests are aborted after this long (or watchdogMs, if longer). */
const LIST_TIMEOUT_MS = 60_000;

type WatchEnd =
  | { reason: "closed"; events: number; durationMs: number }
  | { reason: "gone" | "watchdog" | "relist" | "stopped" }
  | { reason: "error"; error: unknown };

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface ListPage {
  kind?: string;
  apiVersion?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubernetesObject[];
}

interface Status {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

export class ResourceWatcher<T extends KubernetesObject> {
  readonly stats: WatcherStats = { lists: 0, watchesStarted: 0, errors: 0, relists410: 0, watchdogAborts: 0 };

  readonly #kc: KubeConfig;
  readonly #path: string;
  readonly #labelSelector: string | undefined;
  readonly #log: Logger;
  readonly #onEvent: WatcherOptions<T>["onEvent"];
  readonly #watchdogMs: number;
  readonly #relistIntervalMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #pageSize: number;
  readonly #watch: Watch;

  #cache = new Map<string, T>();
  #resourceVersion = "";
  #needList = true;
  #synced = false;
  #connected = false;
  #startedAt: number | undefined;
  #lastAlive: number | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #startWaiter: Waiter | undefined;
  #startPromise: Promise<void> | undefined;
  #listWaiters: Waiter[] = [];
  #failures = 0;
  #lastFailureAt = 0;
  #goneInARow = 0;
  /** Ends the open watch attempt, if any. */
  #endWatch: ((end: WatchEnd) => void) | undefined;
  #listAbort: AbortController | undefined;
  #wake: (() => void) | undefined;
  #relistTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: WatcherOptions<T>) {
    this.#kc = options.kc;
    this.#path = options.path;
    this.#labelSelector = options.labelSelector;
    this.#onEvent = options.onEvent;
    this.#watchdogMs = options.watchdogMs ?? 120_000;
    this.#relistIntervalMs = options.relistIntervalMs ?? 600_000;
    this.#backoffInitialMs = options.backoff?.initialMs ?? 500;
    this.#backoffMaxMs = options.backoff?.maxMs ?? 30_000;
    this.#pageSize = options.pageSize ?? 500;
    this.#log = options.logger.child({ component: "watcher", path: options.path });
    this.#watch = new Watch(sharedTransport(options.kc));
    // Watch aborts a stream after requestTimeoutMs without a byte (30 s by default, #3020); make
    // that the same watchdog. The field is public in JS but declared private in watch.d.ts.
    (this.#watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = this.#watchdogMs;
  }

  /** Resolves once the first list has filled the cache; rejects (code watcher_stopped) if stop() comes first. */
  start(): Promise<void> {
    if (this.#startPromise) return this.#startPromise;
    if (this.#stopped) return Promise.reject(stoppedError());
    const { promise, resolve, reject } = deferred();
    this.#startPromise = promise;
    this.#startWaiter = { resolve, reject };
    this.#startedAt = Date.now();
    this.#running = this.#run();
    return promise;
  }

  /** Aborts the watch or list in flight and clears every timer. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      clearTimeout(this.#relistTimer);
      this.#relistTimer = undefined;
      this.#wake?.();
      this.#endWatch?.({ reason: "stopped" });
      this.#listAbort?.abort(stoppedError());
      const err = stoppedError();
      this.#startWaiter?.reject(err);
      this.#startWaiter = undefined;
      for (const waiter of this.#listWaiters.splice(0)) waiter.reject(err);
    }
    await this.#running;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    const all = [...this.#cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  get size(): number {
    return this.#cache.size;
  }

  /** The first list is done. */
  get synced(): boolean {
    return this.#synced;
  }

  /** ms since the last sign of life (list, watch opened, event, bookmark), or since start(); for liveness. */
  staleForMs(now: number = Date.now()): number {
    const since = this.#lastAlive ?? this.#startedAt;
    return since === undefined ? 0 : Math.max(0, now - since);
  }

  /** A watch stream is open right now. */
  get connected(): boolean {
    return this.#connected;
  }

  /**
   * Lists again now (ending the open watch) and resolves when a list that started after this call
   * has been applied. While the API server is unreachable it waits for the retries.
   */
  relist(): Promise<void> {
    if (this.#stopped || !this.#running) return Promise.reject(stoppedError("the watcher is not running"));
    const waiter = deferred();
    this.#listWaiters.push(waiter);
    this.#needList = true;
    this.#endWatch?.({ reason: "relist" });
    return waiter.promise;
  }

  /** The resourceVersion the next watch starts from. A seam for tests that force a 410 Gone. */
  protected watchResourceVersion(resourceVersion: string): string {
    return resourceVersion;
  }

  /** Whether a watch event is applied to the cache. A seam for tests that simulate a missed event. */
  protected acceptWatchEvent(_type: WatchEventType, _object: T): boolean {
    return true;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (this.#needList) {
          await this.#listOnce();
          continue;
        }
        const end = await this.#watchOnce();
        await this.#afterWatch(end);
      } catch (err) {
        if (this.#stopped) break;
        this.#failed(err, "list failed");
        await this.#sleep(this.#nextBackoffMs());
      }
    }
    this.#connected = false;
  }

  async #afterWatch(end: WatchEnd): Promise<void> {
    switch (end.reason) {
      case "stopped":
        return;
      case "relist":
        this.#needList = true;
        return;
      case "closed":
        // The server's timeoutSeconds ran out (or it shut down): resume where we were.
        if (end.events === 0 && end.durationMs < MIN_HEALTHY_WATCH_MS) {
          this.#log.debug({ durationMs: end.durationMs }, "watch closed at once; backing off");
          await this.#sleep(this.#nextBackoffMs());
        }
        return;
      case "gone":
        this.stats.relists410++;
        this.#needList = true;
        this.#log.info({ resourceVersion: this.#resourceVersion }, "watch answered 410 Gone; relisting");
        // A relist whose own resourceVersion is already gone would otherwise loop hot.
        if (++this.#goneInARow > 1) await this.#sleep(this.#nextBackoffMs());
        return;
      case "watchdog":
        this.stats.watchdogAborts++;
        this.#needList = true;
        this.#log.warn({ watchdogMs: this.#watchdogMs }, "watch silent for too long; aborted, relisting");
        return;
      case "error":
        this.#failed(end.error, "watch failed");
        await this.#sleep(this.#nextBackoffMs());
        return;
    }
  }

  // ---- LIST ----

  async #listOnce(): Promise<void> {
    this.#needList = false;
    const waiters = this.#listWaiters.splice(0);
    try {
      const { items, resourceVersion } = await this.#fetchList();
      if (this.#stopped) throw stoppedError();
      this.#resourceVersion = resourceVersion;
      this.stats.lists++;
      this.#alive();
      this.#replace(items);
      this.#scheduleRelist();
      if (!this.#synced) {
        this.#synced = true;
        this.#startWaiter?.resolve();
        this.#startWaiter = undefined;
      }
      for (const waiter of waiters) waiter.resolve();
    } catch (err) {
      this.#needList = true;
      if (this.#stopped) for (const waiter of waiters) waiter.reject(stoppedError());
      else this.#listWaiters.unshift(...waiters);
      throw err;
    }
  }

  async #fetchList(): Promise<{ items: T[]; resourceVersion: string }> {
    let items: T[] = [];
    let continueToken: string | undefined;
    let paginate = true;
    for (;;) {
      const url = this.#url();
      if (paginate) url.searchParams.set("limit", String(this.#pageSize));
      if (continueToken) url.searchParams.set("continue", continueToken);
      const { status, body } = await this.#get(url);
      if (status === 410 && continueToken) {
        // The snapshot behind the token was compacted: start over, in one request this time.
        this.stats.relists410++;
        this.#log.info("list continue token expired (410); listing again without pagination");
        items = [];
        continueToken = undefined;
        paginate = false;
        continue;
      }
      if (status !== 200) {
        const message = statusMessage(body);
        throw new WatcherError(
          WatcherErrorCode.ListFailed,
          `LIST ${this.#path} answered ${status}${message ? `: ${message}` : ""}`,
          status,
        );
      }
      const page = JSON.parse(body) as ListPage;
      // Items of a list carry no kind/apiVersion; watch events do. Make them alike.
      const kind = page.kind?.replace(/List$/, "");
      for (const item of page.items ?? []) {
        if (kind && !item.kind) item.kind = kind;
        if (page.apiVersion && !item.apiVersion) item.apiVersion = page.apiVersion;
        items.push(item as T);
      }
      continueToken = page.metadata?.continue || undefined;
      if (!continueToken) return { items, resourceVersion: page.metadata?.resourceVersion ?? "" };
    }
  }

  async #get(url: URL): Promise<{ status: number; body: string }> {
    const { headers, dispatcher } = await requestAuth(this.#kc, url);
    const controller = new AbortController();
    this.#listAbort = controller;
    const timeoutMs = Math.max(LIST_TIMEOUT_MS, this.#watchdogMs);
    const timer = setTimeout(
      () => controller.abort(new Error(`LIST timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const res = await fetch(url, {
        method: "GET",
        headers: { ...headers, accept: "application/json" },
        dispatcher,
        signal: controller.signal,
      });
      return { status: res.status, body: await res.text() };
    } finally {
      clearTimeout(timer);
      this.#listAbort = undefined;
    }
  }

  /** Swaps in the listed objects and emits what differs from the cache. */
  #replace(items: T[]): void {
    const previous = this.#cache;
    const next = new Map<string, T>();
    const changes: [WatchEventType, T, T | undefined][] = [];
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
    this.#cache = next;
    const initial = this.stats.lists === 1;
    if (changes.length > 0 || initial) {
      this.#log[initial ? "debug" : "info"](
        { objects: next.size, changes: changes.length, resourceVersion: this.#resourceVersion },
        initial ? "listed" : "relist changed the cache",
      );
    }
    for (const [type, object, old] of changes) this.#emit(type, object, old);
  }

  #scheduleRelist(): void {
    clearTimeout(this.#relistTimer);
    this.#relistTimer = setTimeout(() => {
      this.#relistTimer = undefined;
      this.#log.debug("periodic relist");
      this.relist().catch(() => {
        // Only a stop() rejects it; failures are retried by the loop.
      });
    }, this.#relistIntervalMs);
  }

  // ---- WATCH ----

  async #watchOnce(): Promise<WatchEnd> {
    const { promise, resolve } = Promise.withResolvers<WatchEnd>();
    const startedAt = Date.now();
    let controller: AbortController | undefined;
    let ended = false;
    let events = 0;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const armWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => end({ reason: "watchdog" }), this.#watchdogMs);
    };
    const end = (result: WatchEnd) => {
      if (ended) return;
      ended = true;
      clearTimeout(watchdog);
      this.#connected = false;
      this.#endWatch = undefined;
      controller?.abort();
      resolve(result);
    };
    this.#endWatch = end;
    armWatchdog();

    const resourceVersion = this.watchResourceVersion(this.#resourceVersion);
    const params: Record<string, string | number | boolean> = {
      resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds:
        WATCH_TIMEOUT_S.min + Math.floor(Math.random() * (WATCH_TIMEOUT_S.max - WATCH_TIMEOUT_S.min)),
    };
    if (this.#labelSelector) params.labelSelector = this.#labelSelector;
    this.stats.watchesStarted++;
    this.#log.debug({ resourceVersion }, "watch starting");

    const onEvent = (phase: string, object: unknown) => {
      if (ended) return;
      events++;
      armWatchdog();
      this.#alive();
      // Watch swallows anything thrown here; do not let a bug vanish silently.
      try {
        this.#handleEvent(phase, object, end);
      } catch (err) {
        this.#log.error({ err }, "handling a watch event failed");
      }
    };
    const onDone = (err: unknown) => {
      if (err == null) end({ reason: "closed", events, durationMs: Date.now() - startedAt });
      else if (isTimeout(err)) end({ reason: "watchdog" });
      else if ((err as { statusCode?: number }).statusCode === 410) end({ reason: "gone" });
      else end({ reason: "error", error: err });
    };
    try {
      controller = await this.#watch.watch(this.#path, params, onEvent, onDone);
    } catch (err) {
      end({ reason: "error", error: err });
    }
    if (ended) {
      controller?.abort();
    } else {
      this.#connected = true;
      this.#alive();
    }
    return promise;
  }

  #handleEvent(phase: string, object: unknown, end: (result: WatchEnd) => void): void {
    switch (phase) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const obj = object as T;
        this.#goneInARow = 0;
        this.#noteVersion(obj);
        if (this.acceptWatchEvent(phase, obj)) this.#apply(phase, obj);
        return;
      }
      case "BOOKMARK":
        this.#goneInARow = 0;
        this.#noteVersion(object as KubernetesObject);
        return;
      case "ERROR": {
        const status = object as Status | undefined;
        if (status?.code === 410) {
          end({ reason: "gone" });
        } else {
          const message = `watch ${this.#path} sent an ERROR event: ${status?.code ?? "?"} ${status?.reason ?? ""} ${status?.message ?? ""}`;
          end({
            reason: "error",
            error: new WatcherError(WatcherErrorCode.WatchError, message.trim(), status?.code),
          });
        }
        return;
      }
      default:
        this.#log.warn({ phase }, "unknown watch event type; ignored");
    }
  }

  #apply(type: WatchEventType, object: T): void {
    const key = keyOf(object);
    const old = this.#cache.get(key);
    if (type === "DELETED") {
      if (!old) return;
      this.#cache.delete(key);
      this.#emit("DELETED", object, old);
      return;
    }
    // A resumed watch may repeat what the cache already holds.
    if (old && versionOf(old) === versionOf(object)) return;
    this.#cache.set(key, object);
    this.#emit(old ? "MODIFIED" : "ADDED", object, old);
  }

  #noteVersion(object: KubernetesObject | undefined): void {
    const rv = object?.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
  }

  // ---- shared ----

  #emit(type: WatchEventType, object: T, old: T | undefined): void {
    const meta = object.metadata;
    this.#log.debug(
      {
        type,
        kind: object.kind,
        namespace: meta?.namespace,
        name: meta?.name,
        resourceVersion: meta?.resourceVersion,
      },
      "cache changed",
    );
    try {
      this.#onEvent(type, object, old);
    } catch (err) {
      this.#log.error(
        { err, type, kind: object.kind, namespace: meta?.namespace, name: meta?.name },
        "onEvent threw",
      );
    }
  }

  #url(): URL {
    const cluster = this.#kc.getCurrentCluster();
    if (!cluster) throw new Error("the KubeConfig has no current cluster");
    const url = new URL(cluster.server + this.#path);
    if (this.#labelSelector) url.searchParams.set("labelSelector", this.#labelSelector);
    return url;
  }

  #alive(): void {
    this.#lastAlive = Date.now();
  }

  #failed(err: unknown, message: string): void {
    this.stats.errors++;
    this.#log.warn({ err, resourceVersion: this.#resourceVersion }, message);
  }

  /** Equal-jitter exponential backoff: a delay in [d/2, d], d doubling per failure up to maxMs. */
  #nextBackoffMs(): number {
    const now = Date.now();
    if (now - this.#lastFailureAt > Math.max(BACKOFF_RESET_MS, 2 * this.#backoffMaxMs)) this.#failures = 0;
    this.#lastFailureAt = now;
    this.#failures++;
    const ceiling = Math.min(this.#backoffMaxMs, this.#backoffInitialMs * 2 ** (this.#failures - 1));
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = () => res();
    reject = rej;
  });
  return { promise, resolve, reject };
}

function keyOf(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name ?? "";
  return namespace ? `${namespace}/${name}` : name;
}

function versionOf(object: KubernetesObject): string | undefined {
  return object.metadata?.resourceVersion;
}

function isTimeout(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === "TimeoutError";
}

function stoppedError(message = "the watcher was stopped"): WatcherError {
  return new WatcherError(WatcherErrorCode.Stopped, message);
}

/** The message of a Status body, if the body is one. */
function statusMessage(body: string): string | undefined {
  try {
    const status = JSON.parse(body) as Status;
    return status.kind === "Status" ? status.message : undefined;
  } catch {
    return undefined;
  }
}
