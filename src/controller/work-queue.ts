/**
 * A rate-limited work queue of string keys (`namespace/name`), like client-go's workqueue:
 *
 * - A key added many times while it waits is processed once: ten Secret updates in a burst are
 *   one reconcile.
 * - A key is never processed by two workers at once. Added while it is being processed, it is
 *   processed again after the current run ends.
 * - `addAfter` delays a key; when a key is already waiting, the earlier time wins.
 * - `addRateLimited` delays a key by its own exponential backoff (with jitter); `forget` resets it.
 *   The queue never retries by itself: a worker's thrown error is only logged, and the caller
 *   decides (typically `addRateLimited` on failure, `forget` on success).
 * - `shutdown()` stops handing out keys, drops queued and delayed ones, and waits for the keys in
 *   flight. Dropping is safe because reconciles are level-triggered: the next start lists
 *   everything again.
 */
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { backoffDelay } from "./backoff.ts";

export interface WorkQueueOptions {
  /** When delayed keys are due; the timers that wake the queue are real. */
  clock: Clock;
  /** First rate-limited delay. Default 100 ms. */
  baseDelayMs?: number;
  /** Ceiling of the rate-limited delay. Default 5 min. */
  maxDelayMs?: number;
  logger?: Logger;
  /** Source of jitter in [0, 1); tests may pin it. Default Math.random. */
  random?: () => number;
}

export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #log: Logger | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;

  /** Keys ready to be handed out, in order. */
  #ready: string[] = [];
  /** Keys that need processing: queued in #ready, or added again while processing. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  /** Delayed keys and when they become ready (epoch ms). */
  readonly #waiting = new Map<string, number>();
  #waitTimer: ReturnType<typeof setTimeout> | undefined;
  #waitTimerAt = Infinity;
  readonly #failures = new Map<string, number>();

  #worker: Worker | undefined;
  #idleWorkers: (() => void)[] = [];
  #loops: Promise<void>[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.#clock = options.clock;
    this.#baseDelayMs = options.baseDelayMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 300_000;
    this.#log = options.logger?.child({ component: "work-queue" });
    this.#random = options.random ?? Math.random;
  }

  /** Queues a key now, unless it is already queued. */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    // Being processed: it goes back to #ready when that run ends.
    if (this.#processing.has(key)) return;
    this.#ready.push(key);
    this.#idleWorkers.shift()?.();
  }

  /** Queues a key after a delay; if it is already waiting, the earlier time wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const at = this.#clock.now() + delayMs;
    const current = this.#waiting.get(key);
    if (current !== undefined && current <= at) return;
    this.#waiting.set(key, at);
    this.#scheduleWaiting();
  }

  /** Queues a key after its backoff: baseDelayMs doubling per call up to maxDelayMs, jittered into [d/2, d]. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.addAfter(
      key,
      backoffDelay(failures, { baseMs: this.#baseDelayMs, maxMs: this.#maxDelayMs }, this.#random),
    );
  }

  /** Resets a key's backoff (call it when the key was processed successfully). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times addRateLimited was called for a key since it was last forgotten. */
  retries(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Starts `concurrency` workers. Call once. */
  start(worker: Worker, concurrency = 1): void {
    if (this.#worker) throw new Error("the work queue is already started");
    if (this.#shuttingDown) throw new Error("the work queue is shut down");
    this.#worker = worker;
    for (let i = 0; i < Math.max(1, concurrency); i++) this.#loops.push(this.#loop());
  }

  /** Stops handing out keys, drops queued and delayed keys, and waits for the keys in flight. */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#waitTimerAt = Infinity;
    this.#waiting.clear();
    this.#ready = [];
    this.#dirty.clear();
    for (const wake of this.#idleWorkers.splice(0)) wake();
    await Promise.all(this.#loops);
  }

  /** Keys ready and waiting for a worker (the queue depth). */
  get length(): number {
    return this.#ready.length;
  }

  /** Keys delayed by addAfter / addRateLimited. */
  get delayed(): number {
    return this.#waiting.size;
  }

  /** Keys being processed right now. */
  get processing(): number {
    return this.#processing.size;
  }

  async #loop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    for (;;) {
      const key = this.#ready.shift();
      if (key === undefined) {
        if (this.#shuttingDown) return;
        await new Promise<void>((resolve) => this.#idleWorkers.push(resolve));
        continue;
      }
      this.#dirty.delete(key);
      this.#processing.add(key);
      try {
        await worker(key);
      } catch (err) {
        // "key" is a redacted field name in our logger (it usually holds an API key).
        this.#log?.error({ err, item: key }, "work item failed");
      } finally {
        this.#processing.delete(key);
        if (this.#dirty.has(key)) {
          this.#ready.push(key);
          this.#idleWorkers.shift()?.();
        }
      }
    }
  }

  /** Moves due keys to #ready and sets one timer for the next due key. */
  #scheduleWaiting(): void {
    const now = this.#clock.now();
    let next = Infinity;
    for (const [key, at] of this.#waiting) {
      if (at <= now) {
        this.#waiting.delete(key);
        this.add(key);
      } else if (at < next) {
        next = at;
      }
    }
    if (next === this.#waitTimerAt) return;
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#waitTimerAt = next;
    if (next === Infinity) return;
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = undefined;
      this.#waitTimerAt = Infinity;
      this.#scheduleWaiting();
    }, next - now);
  }
}
