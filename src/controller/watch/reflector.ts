/**
 * The reflector (client-go's name for it): the loop that keeps a store in step with one
 * collection. list → watch → (list | watch) → …, in one loop, so a relist never races a watch
 * over the store; after each watch, one switch decides what comes next (afterWatch). It owns the
 * LIST pager, the watch sessions, the backoff and the relist schedule; the store (what to do with
 * a list and with an event) is the caller's.
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { sharedTransport } from "../../kube-client.ts";
import type { Logger } from "../../log.ts";
import type { Clock } from "../../pool/clock.ts";
import { Backoff, Pause } from "./retry.ts";
import { ListPager } from "./list-pager.ts";
import { Relists } from "./relists.ts";
import { stoppedError, type WatchEventType, type WatcherStats } from "./types.ts";
import { type WatchEnd, WatchSession } from "./watch-session.ts";
import { watchWithInactivity } from "./watchdog.ts";

/** A watch closed cleanly sooner than this without any event is treated like a failure (no hot loop). */
const MIN_HEALTHY_WATCH_MS = 1_000;
/** LIST requests are aborted after this long (or watchdogMs, if longer). */
const LIST_TIMEOUT_MS = 60_000;

export interface ReflectorOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  path: string;
  labelSelector: string | undefined;
  pageSize: number;
  watchdogMs: number;
  relistIntervalMs: number;
  backoff: { initialMs: number; maxMs: number };
  logger: Logger;
  clock: Clock;
  /** Counted into as things happen. */
  stats: WatcherStats;
  /** A full list arrived (stats.lists already counts it): make the store hold exactly `items`. */
  onList: (items: T[], resourceVersion: string) => void;
  /** A watch event arrived: apply it to the store. */
  onWatchEvent: (type: WatchEventType, object: T) => void;
  /** The resourceVersion a watch starts from, given the last one seen. */
  watchResourceVersion: (resourceVersion: string) => string;
}

export class Reflector<T extends KubernetesObject> {
  readonly #o: ReflectorOptions<T>;
  readonly #log: Logger;
  readonly #pager: ListPager<T>;
  readonly #watch: ReturnType<typeof watchWithInactivity>;
  readonly #backoff: Backoff;
  readonly #pause = new Pause();
  readonly #relists: Relists;
  #resourceVersion = "";
  #goneInARow = 0;
  #stopped = false;
  /** The open watch attempt, if any. */
  #session: WatchSession<T> | undefined;
  /** When the last sign of life came: a list, a watch opened, an event, a bookmark. */
  lastAlive: number | undefined;

  constructor(options: ReflectorOptions<T>) {
    this.#o = options;
    this.#log = options.logger;
    this.#backoff = new Backoff({ ...options.backoff, clock: options.clock });
    this.#pager = new ListPager<T>({
      kc: options.kc,
      path: options.path,
      labelSelector: options.labelSelector,
      pageSize: options.pageSize,
      timeoutMs: Math.max(LIST_TIMEOUT_MS, options.watchdogMs),
      logger: options.logger,
      onContinueExpired: () => options.stats.relists410++,
    });
    this.#watch = watchWithInactivity(sharedTransport(options.kc), options.watchdogMs);
    this.#relists = new Relists(options.relistIntervalMs, () => {
      this.#log.debug("periodic relist");
      this.relist().catch(() => {
        // Only a stop() rejects it; failures are retried by the loop.
      });
    });
  }

  /** A watch stream is open right now. */
  get connected(): boolean {
    return this.#session?.connected ?? false;
  }

  /** Runs until stop(); never rejects. */
  async run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (this.#relists.due) await this.#listOnce();
        else await this.#afterWatch(await this.#watchOnce());
      } catch (err) {
        if (this.#stopped) break;
        this.#failed(err, "list failed");
        await this.#pause.sleep(this.#backoff.nextMs());
      }
    }
  }

  /** Lists again now (ending the open watch); resolves once a list begun after this call is applied. */
  relist(): Promise<void> {
    const listed = this.#relists.request();
    this.#session?.end({ reason: "relist" });
    return listed;
  }

  /** Ends the watch or list in flight, every wait and timer; relist() callers get `err`. */
  stop(err: Error): void {
    this.#stopped = true;
    this.#pause.wake();
    this.#session?.end({ reason: "stopped" });
    this.#pager.abort(stoppedError());
    this.#relists.stop(err);
  }

  /** What comes after a watch ended: resume, relist, or wait first. */
  async #afterWatch(end: WatchEnd): Promise<void> {
    switch (end.reason) {
      case "stopped":
        return;
      case "relist":
        this.#relists.due = true;
        return;
      case "closed":
        // The server's timeoutSeconds ran out (or it shut down): resume where we were.
        if (end.events === 0 && end.durationMs < MIN_HEALTHY_WATCH_MS) {
          this.#log.debug({ durationMs: end.durationMs }, "watch closed at once; backing off");
          await this.#pause.sleep(this.#backoff.nextMs());
        }
        return;
      case "gone":
        this.#o.stats.relists410++;
        this.#relists.due = true;
        this.#log.info({ resourceVersion: this.#resourceVersion }, "watch answered 410 Gone; relisting");
        // A relist whose own resourceVersion is already gone would otherwise loop hot.
        if (++this.#goneInARow > 1) await this.#pause.sleep(this.#backoff.nextMs());
        return;
      case "watchdog":
        this.#o.stats.watchdogAborts++;
        this.#relists.due = true;
        this.#log.warn({ watchdogMs: this.#o.watchdogMs }, "watch silent for too long; aborted, relisting");
        return;
      case "error":
        this.#failed(end.error, "watch failed");
        await this.#pause.sleep(this.#backoff.nextMs());
        return;
    }
  }

  async #listOnce(): Promise<void> {
    const batch = this.#relists.begin();
    try {
      const { items, resourceVersion } = await this.#pager.list();
      if (this.#stopped) throw stoppedError();
      this.#resourceVersion = resourceVersion;
      this.#o.stats.lists++;
      this.lastAlive = this.#o.clock.now();
      this.#o.onList(items, resourceVersion);
      this.#relists.applied(batch);
    } catch (err) {
      if (this.#stopped) this.#relists.stop(stoppedError(), batch);
      else this.#relists.failed(batch);
      throw err;
    }
  }

  #watchOnce(): Promise<WatchEnd> {
    const { clock } = this.#o;
    const session = new WatchSession<T>({
      watch: this.#watch,
      path: this.#o.path,
      labelSelector: this.#o.labelSelector,
      resourceVersion: this.#o.watchResourceVersion(this.#resourceVersion),
      watchdogMs: this.#o.watchdogMs,
      logger: this.#log,
      clock,
      onAlive: () => (this.lastAlive = clock.now()),
      onProgress: (resourceVersion) => {
        this.#goneInARow = 0;
        if (resourceVersion) this.#resourceVersion = resourceVersion;
      },
      onObject: this.#o.onWatchEvent,
    });
    this.#session = session;
    this.#o.stats.watchesStarted++;
    return session.run();
  }

  #failed(err: unknown, message: string): void {
    this.#o.stats.errors++;
    this.#log.warn({ err, resourceVersion: this.#resourceVersion }, message);
  }
}
