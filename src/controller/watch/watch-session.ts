/**
 * One watch request, from open to end: starts at a resourceVersion with bookmarks and a
 * server-side timeout of 5-10 min (randomised like client-go's reflector), hands every object
 * event and bookmark on, and ends with one `WatchEnd` saying why:
 * - "closed": the server ended the stream cleanly (its timeoutSeconds ran out, or it shut down);
 * - "gone": 410 Gone, as the HTTP status or as an ERROR event carrying a Status with code 410;
 * - "watchdog": no sign of life for watchdogMs (watchdog.ts);
 * - "error": anything else (network, HTTP status, another ERROR event);
 * - "relist" / "stopped": ended from outside with `end()`.
 * It neither retries nor touches the cache: the reflector decides what comes next.
 */
import type { KubernetesObject, Watch } from "@kubernetes/client-node";
import type { Logger } from "../../log.ts";
import type { Clock } from "../../pool/clock.ts";
import { type Status, type WatchEventType, WatcherError, WatcherErrorCode } from "./types.ts";
import { isInactivityTimeout, Watchdog } from "./watchdog.ts";

export type WatchEnd =
  | { reason: "closed"; events: number; durationMs: number }
  | { reason: "gone" | "watchdog" | "relist" | "stopped" }
  | { reason: "error"; error: unknown };

/** Server-side watch timeout, randomised in [min, max) seconds like client-go's reflector. */
const WATCH_TIMEOUT_S = { min: 300, max: 600 };

export interface WatchSessionOptions<T extends KubernetesObject> {
  watch: Watch;
  path: string;
  labelSelector: string | undefined;
  resourceVersion: string;
  watchdogMs: number;
  logger: Logger;
  clock: Clock;
  /** A sign of life: the stream opened, or an event or bookmark arrived. */
  onAlive: () => void;
  /** An object event or a bookmark arrived, carrying this resourceVersion (if any). */
  onProgress: (resourceVersion: string | undefined) => void;
  /** An ADDED, MODIFIED or DELETED event, after onProgress. */
  onObject: (type: WatchEventType, object: T) => void;
}

export class WatchSession<T extends KubernetesObject> {
  readonly #o: WatchSessionOptions<T>;
  readonly #watchdog: Watchdog;
  readonly #done = Promise.withResolvers<WatchEnd>();
  #controller: AbortController | undefined;
  #ended = false;
  #connected = false;
  #events = 0;

  constructor(options: WatchSessionOptions<T>) {
    this.#o = options;
    this.#watchdog = new Watchdog(options.watchdogMs, () => this.end({ reason: "watchdog" }));
  }

  /** The stream is open and has not ended. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Opens the watch; resolves when it has ended, for whatever reason. */
  async run(): Promise<WatchEnd> {
    const startedAt = this.#o.clock.now();
    this.#watchdog.arm();
    const params: Record<string, string | number | boolean> = {
      resourceVersion: this.#o.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds:
        WATCH_TIMEOUT_S.min + Math.floor(Math.random() * (WATCH_TIMEOUT_S.max - WATCH_TIMEOUT_S.min)),
    };
    if (this.#o.labelSelector) params.labelSelector = this.#o.labelSelector;
    this.#o.logger.debug({ resourceVersion: this.#o.resourceVersion }, "watch starting");

    const onEvent = (phase: string, object: unknown) => {
      if (this.#ended) return;
      this.#events++;
      this.#watchdog.arm();
      this.#o.onAlive();
      // Watch swallows anything thrown here; do not let a bug vanish silently.
      try {
        this.#handle(phase, object);
      } catch (err) {
        this.#o.logger.error({ err }, "handling a watch event failed");
      }
    };
    const onDone = (err: unknown) => {
      if (err == null)
        this.end({ reason: "closed", events: this.#events, durationMs: this.#o.clock.now() - startedAt });
      else if (isInactivityTimeout(err)) this.end({ reason: "watchdog" });
      else if ((err as { statusCode?: number }).statusCode === 410) this.end({ reason: "gone" });
      else this.end({ reason: "error", error: err });
    };
    try {
      this.#controller = await this.#o.watch.watch(this.#o.path, params, onEvent, onDone);
    } catch (err) {
      this.end({ reason: "error", error: err });
    }
    if (this.#ended) {
      this.#controller?.abort();
    } else {
      this.#connected = true;
      this.#o.onAlive();
    }
    return this.#done.promise;
  }

  /** Ends the watch (the first end wins) and closes its stream. */
  end(result: WatchEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#watchdog.disarm();
    this.#connected = false;
    this.#controller?.abort();
    this.#done.resolve(result);
  }

  #handle(phase: string, object: unknown): void {
    switch (phase) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const obj = object as T;
        this.#o.onProgress(obj?.metadata?.resourceVersion);
        this.#o.onObject(phase, obj);
        return;
      }
      case "BOOKMARK":
        this.#o.onProgress((object as KubernetesObject | undefined)?.metadata?.resourceVersion);
        return;
      case "ERROR": {
        const status = object as Status | undefined;
        if (status?.code === 410) {
          this.end({ reason: "gone" });
        } else {
          const message = `watch ${this.#o.path} sent an ERROR event: ${status?.code ?? "?"} ${status?.reason ?? ""} ${status?.message ?? ""}`;
          this.end({
            reason: "error",
            error: new WatcherError(WatcherErrorCode.WatchError, message.trim(), status?.code),
          });
        }
        return;
      }
      default:
        this.#o.logger.warn({ phase }, "unknown watch event type; ignored");
    }
  }
}
