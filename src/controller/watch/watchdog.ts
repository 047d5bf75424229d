/**
 * The watchdog: a watch that shows no sign of life for `ms` is given up on.
 *
 * A TCP connection can go half-open (a NAT or load balancer forgets it, the API server's host
 * vanishes) and then delivers nothing, forever, with no error (kubernetes-client/javascript#2432,
 * #596). Two timers see to it, both set to the same `ms`:
 * - `Watchdog`, re-armed by every event and bookmark, ends the watch (the watcher relists);
 * - client-node's `Watch` aborts a stream after `requestTimeoutMs` without a byte (30 s by
 *   default, #3020) with a TimeoutError, which `watchWithInactivity` sets to `ms` too.
 * The API server sends a bookmark about once a minute to every watch that asked for them, so a
 * healthy quiet watch is never aborted by the 120 s default.
 */
import { type KubeConfig, Watch } from "@kubernetes/client-node";

export class Watchdog {
  readonly #ms: number;
  readonly #onSilent: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number, onSilent: () => void) {
    this.#ms = ms;
    this.#onSilent = onSilent;
  }

  /** (Re)starts the countdown: a sign of life. */
  arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onSilent, this.#ms);
  }

  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A client-node `Watch` whose own byte-inactivity timeout is `ms`. */
export function watchWithInactivity(kc: KubeConfig, ms: number): Watch {
  const watch = new Watch(kc);
  // The field is public in JS but declared private in watch.d.ts.
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = ms;
  return watch;
}

/** The error client-node's `Watch` ends a stream with when its inactivity timer fired. */
export function isInactivityTimeout(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === "TimeoutError";
}
