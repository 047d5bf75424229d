/**
 * What the watcher's parts share: the event types it emits, its counters, and its errors (a
 * `WatcherError` with a stable `code`). No I/O here.
 */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** One change to the cache: what happened, the object now, the object before (if any). */
export type CacheChange<T> = [type: WatchEventType, object: T, old: T | undefined];

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

export function stoppedError(message = "the watcher was stopped"): WatcherError {
  return new WatcherError(WatcherErrorCode.Stopped, message);
}

/** A metav1.Status, as the API server sends it in error bodies and ERROR watch events. */
export interface Status {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** The message of a Status body, if the body is one. */
export function statusMessage(body: string): string | undefined {
  try {
    const status = JSON.parse(body) as Status;
    return status.kind === "Status" ? status.message : undefined;
  } catch {
    return undefined;
  }
}
