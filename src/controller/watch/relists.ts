/**
 * When the watcher lists: first, after a 410 Gone or a watchdog abort, when someone calls
 * relist(), and every `intervalMs` (the periodic relist that repairs a missed event). The promise
 * relist() answers settles when a list that began after the call has been applied, or is
 * rejected by stop(); a failed list keeps its callers waiting for the retry.
 */
export class Relists {
  /** The next step of the watcher's loop is a list. */
  due = true;
  readonly #intervalMs: number;
  readonly #onInterval: () => void;
  #waiters: PromiseWithResolvers<void>[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** `onInterval` is called `intervalMs` after each completed list. */
  constructor(intervalMs: number, onInterval: () => void) {
    this.#intervalMs = intervalMs;
    this.#onInterval = onInterval;
  }

  /** Asks for a list; resolves when one that began after this call has been applied. */
  request(): Promise<void> {
    const waiter: PromiseWithResolvers<void> = Promise.withResolvers();
    this.#waiters.push(waiter);
    this.due = true;
    return waiter.promise;
  }

  /** A list begins: it answers the callers waiting so far. */
  begin(): PromiseWithResolvers<void>[] {
    this.due = false;
    return this.#waiters.splice(0);
  }

  /** The list begun with `batch` was applied: its callers are answered, the interval restarts. */
  applied(batch: PromiseWithResolvers<void>[]): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onInterval();
    }, this.#intervalMs);
    for (const waiter of batch) waiter.resolve();
  }

  /** The list begun with `batch` failed: a list is due again, and its callers wait for it. */
  failed(batch: PromiseWithResolvers<void>[]): void {
    this.due = true;
    this.#waiters.unshift(...batch);
  }

  /** No more lists: the timer stops and every caller gets `err`, including those of `batch`. */
  stop(err: Error, batch: PromiseWithResolvers<void>[] = []): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const waiter of [...batch, ...this.#waiters.splice(0)]) waiter.reject(err);
  }
}
