/**
 * How long the watcher waits after a failure, and a wait that stop() can cut short.
 *
 * The delay is the controller's one backoff (../backoff.ts: equal-jitter exponential, doubling
 * from initialMs up to maxMs), so watchers that failed together do not retry together. What is
 * the watcher's own: the count of failures starts over once the last failure is older than
 * BACKOFF_RESET_MS (or twice maxMs, if longer), as client-go's reflector resets its backoff
 * after a stretch of health.
 */
import type { Clock } from "../../pool/clock.ts";
import { backoffDelay } from "../backoff.ts";

/** A new backoff sequence starts when the last failure is older than this. */
const BACKOFF_RESET_MS = 120_000;

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  clock: Clock;
  /** In [0, 1); Math.random unless a test fixes it. */
  random?: () => number;
}

export class Backoff {
  readonly #o: BackoffOptions;
  #failures = 0;
  #lastFailureAt = 0;

  constructor(options: BackoffOptions) {
    this.#o = options;
  }

  /** Counts a failure and answers how long to wait before the next try. */
  nextMs(): number {
    const { initialMs, maxMs, clock, random = Math.random } = this.#o;
    const at = clock.now();
    if (at - this.#lastFailureAt > Math.max(BACKOFF_RESET_MS, 2 * maxMs)) this.#failures = 0;
    this.#lastFailureAt = at;
    this.#failures++;
    return backoffDelay(this.#failures - 1, { baseMs: initialMs, maxMs }, random);
  }
}

/** Sleeps that `wake()` ends at once (stop() uses it); after `wake()`, no more sleeping. */
export class Pause {
  #woken = false;
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    if (this.#woken) return Promise.resolve();
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

  /** Ends the sleep in progress, and every later one. */
  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }
}
