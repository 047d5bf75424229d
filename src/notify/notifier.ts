/**
 * src/notify — webhook notifications: KeyPool events (a key went Invalid, the pool ran dry, a
 * budget is spent...) POSTed as signed JSON to the webhooks a KeyPool names, with retries, one
 * ordered queue per webhook, dedupe by event id, and a counter per outcome. The operator decides
 * when an event happens and which webhooks a pool has; this folder only delivers.
 *
 * May import: src/api (the notification types a KeyPool names), Node built-ins, pino (types),
 * prom-client, undici. Nothing else in src/: time comes
 * from the injected clock and timers, the logger and the metrics registry are handed in.
 *
 * Files: event.ts (what an event is), body.ts (the JSON sent), signature.ts (headers, HMAC signing
 * and verification), retry.ts (which answers are retried, and when), attempt.ts (one POST),
 * recent-ids.ts (dedupe), metrics.ts (keypool_notifications_total), notifier.ts (the queues).
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { attemptDelivery, GLOBAL_TIMERS, type Timers } from "./attempt.ts";
import { serializeBody } from "./body.ts";
import { type NotificationEvent, type NotificationType, poolKey } from "./event.ts";
import { NotificationMetrics, type NotificationOutcome } from "./metrics.ts";
import { RecentIds } from "./recent-ids.ts";
import { DEFAULT_RETRY, retryDelay, type RetryPolicy } from "./retry.ts";
import { deliveryHeaders } from "./signature.ts";

export type { Timers } from "./attempt.ts";

/** A webhook of a pool, as the operator read it from the KeyPool and its Secrets. */
export interface WebhookTarget {
  /** Unique within the pool; the `webhook` label of the metric and the name in log lines. */
  name: string;
  /** http(s) URL. A secret in itself for Slack-style webhooks: only its origin is ever logged. */
  url: string;
  /** Signs each delivery (X-KeyPool-Signature) when set. */
  signingKey?: string | undefined;
  /** The event types it wants; empty means all. */
  events: ReadonlySet<NotificationType>;
}

export interface NotifierOptions {
  logger: Logger;
  /** Epoch milliseconds: the X-KeyPool-Timestamp of each attempt, and Retry-After dates. */
  clock: { now(): number };
  /** Registers keypool_notifications_total here when given. */
  metrics?: Registry;
  timers?: Timers;
  /** In [0, 1): the backoff's jitter. */
  random?: () => number;
  retry?: Partial<RetryPolicy>;
  /** Deliveries waiting per webhook; when full, the oldest is dropped. */
  queueCapacity?: number;
  /** Event ids remembered for dedupe (least recently seen forgotten first). */
  dedupeCapacity?: number;
  fetch?: typeof globalThis.fetch;
}

export const DEFAULT_QUEUE_CAPACITY = 1_000;
export const DEFAULT_DEDUPE_CAPACITY = 10_000;

interface Delivery {
  event: NotificationEvent;
  /** Serialized once per event; every webhook gets (and signs) the same bytes. */
  body: string;
}

/** One webhook's deliveries, sent one at a time in the order they were queued. */
interface TargetQueue {
  pool: string;
  target: WebhookTarget;
  /** scheme://host:port of target.url: what log lines show of it. */
  origin: string;
  waiting: Delivery[];
  running: boolean;
  /** Aborted when the webhook is removed or the notifier closes. */
  stop: AbortController;
}

interface Final {
  outcome: Exclude<NotificationOutcome, "retried">;
  attempts: number;
  status?: number;
  error?: string;
}

export class Notifier {
  readonly #log: Logger;
  readonly #clock: { now(): number };
  readonly #metrics: NotificationMetrics | undefined;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #retry: RetryPolicy;
  readonly #queueCapacity: number;
  readonly #fetch: typeof globalThis.fetch;
  readonly #recent: RecentIds;
  /** By pool ("namespace/name"), its webhooks by name. */
  readonly #pools = new Map<string, Map<string, TargetQueue>>();
  readonly #drainWaiters = new Set<() => void>();
  /** Deliveries queued or in flight, over all webhooks. */
  #pending = 0;
  #closed = false;

  constructor(options: NotifierOptions) {
    this.#log = options.logger.child({ component: "notifier" });
    this.#clock = options.clock;
    this.#metrics = options.metrics ? new NotificationMetrics(options.metrics) : undefined;
    this.#timers = options.timers ?? GLOBAL_TIMERS;
    this.#random = options.random ?? Math.random;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#queueCapacity = Math.max(1, options.queueCapacity ?? DEFAULT_QUEUE_CAPACITY);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#recent = new RecentIds(options.dedupeCapacity ?? DEFAULT_DEDUPE_CAPACITY);
  }

  /** Deliveries queued or in flight. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Replaces the webhooks of one pool (key "namespace/name"); called when the KeyPool or its
   * Secrets change. A webhook that keeps its name keeps its queue, and its next attempt uses the
   * new URL and signing key; one that is gone has its queued deliveries dropped. A target with
   * a URL that is not http(s), or a name used before it in the list, is left out and logged.
   */
  setTargets(pool: string, targets: readonly WebhookTarget[]): void {
    if (this.#closed) return;
    const before = this.#pools.get(pool) ?? new Map<string, TargetQueue>();
    const after = new Map<string, TargetQueue>();
    for (const target of targets) {
      const origin = originOf(target.url);
      if (origin === undefined) {
        this.#log.warn({ pool, webhook: target.name }, "webhook left out: its url is not an http(s) URL");
        continue;
      }
      if (after.has(target.name)) {
        this.#log.warn(
          { pool, webhook: target.name },
          "webhook left out: another webhook of the pool has its name",
        );
        continue;
      }
      const queue = before.get(target.name);
      if (queue) {
        queue.target = target;
        queue.origin = origin;
        after.set(target.name, queue);
      } else {
        after.set(target.name, {
          pool,
          target,
          origin,
          waiting: [],
          running: false,
          stop: new AbortController(),
        });
      }
    }
    for (const [name, queue] of before) if (!after.has(name)) this.#retire(queue, "webhook removed");
    if (after.size > 0) this.#pools.set(pool, after);
    else this.#pools.delete(pool);
  }

  /** Forgets a pool's webhooks (the KeyPool was deleted); their queued deliveries are dropped. */
  removePool(pool: string): void {
    const queues = this.#pools.get(pool);
    if (!queues) return;
    this.#pools.delete(pool);
    for (const queue of queues.values()) this.#retire(queue, "pool removed");
  }

  /**
   * Queues the event for every webhook of its pool that wants its type. Never throws, never
   * blocks the caller. An id seen before (among the last dedupeCapacity) is not queued again,
   * even when its pool had no webhook the first time.
   */
  notify(event: NotificationEvent): void {
    try {
      if (this.#closed) return;
      if (!this.#recent.add(event.id)) {
        this.#log.debug({ eventId: event.id, type: event.type }, "notification already seen");
        return;
      }
      const queues = this.#pools.get(poolKey(event.pool));
      if (!queues) return;
      let body: string | undefined;
      for (const queue of queues.values()) {
        const wanted = queue.target.events;
        if (wanted.size > 0 && !wanted.has(event.type)) continue;
        body ??= serializeBody(event);
        this.#enqueue(queue, { event, body });
      }
    } catch (err) {
      this.#log.error({ err, eventId: event?.id }, "notification not queued");
    }
  }

  /**
   * Resolves when every queued delivery has finished (delivered, failed or dropped): true then,
   * false when `timeoutMs` passed first. For tests and graceful shutdown.
   */
  drain(timeoutMs?: number): Promise<boolean> {
    if (this.#pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: unknown;
      const done = (drained: boolean) => {
        this.#drainWaiters.delete(onDrained);
        if (timer !== undefined) this.#timers.clearTimeout(timer);
        resolve(drained);
      };
      const onDrained = () => done(true);
      this.#drainWaiters.add(onDrained);
      if (timeoutMs !== undefined) timer = this.#timers.setTimeout(() => done(false), timeoutMs);
    });
  }

  /**
   * Stops: attempts in flight are aborted, waits cancelled, queued deliveries dropped (counted);
   * later calls do nothing. Call drain() first to let queued deliveries finish.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const queues of this.#pools.values()) {
      for (const queue of queues.values()) this.#retire(queue, "notifier closed");
    }
    this.#pools.clear();
  }

  #enqueue(queue: TargetQueue, delivery: Delivery): void {
    queue.waiting.push(delivery);
    this.#pending++;
    if (queue.waiting.length > this.#queueCapacity) {
      const oldest = queue.waiting.shift() as Delivery;
      this.#finish(queue, oldest, { outcome: "dropped", attempts: 0, error: "queue full" });
    }
    if (!queue.running) void this.#run(queue);
  }

  async #run(queue: TargetQueue): Promise<void> {
    queue.running = true;
    try {
      while (!queue.stop.signal.aborted) {
        const delivery = queue.waiting.shift();
        if (!delivery) break;
        let final: Final;
        try {
          final = await this.#deliver(queue, delivery);
        } catch (err) {
          final = { outcome: "failed", attempts: 0, error: `internal error: ${String(err)}` };
        }
        this.#finish(queue, delivery, final);
      }
    } finally {
      queue.running = false;
    }
  }

  /** Attempts one delivery until it is delivered, refused, out of attempts or stopped. */
  async #deliver(queue: TargetQueue, { event, body }: Delivery): Promise<Final> {
    const policy = this.#retry;
    for (let attempt = 1; ; attempt++) {
      const target = queue.target; // the latest: setTargets may have changed the URL or key
      const nowMs = this.#clock.now();
      const result = await attemptDelivery({
        fetch: this.#fetch,
        url: target.url,
        headers: deliveryHeaders({
          body,
          eventId: event.id,
          type: event.type,
          attempt,
          signingKey: target.signingKey,
          nowMs,
        }),
        body,
        timeoutMs: policy.timeoutMs,
        timers: this.#timers,
        signal: queue.stop.signal,
        nowMs,
      });
      switch (result.kind) {
        case "delivered":
          return { outcome: "delivered", attempts: attempt, status: result.status };
        case "stopped":
          return { outcome: "dropped", attempts: attempt, error: "stopped" };
        case "failed":
          return { outcome: "failed", attempts: attempt, status: result.status, error: result.error };
        case "retry": {
          const final: Final = { outcome: "failed", attempts: attempt, error: result.error };
          if (result.status !== undefined) final.status = result.status;
          if (attempt >= policy.attempts) return final;
          const delayMs = retryDelay(attempt - 1, policy, result.retryAfterMs, this.#random);
          this.#metrics?.count(event.pool, target.name, event.type, "retried");
          this.#log.debug(
            { ...this.#fields(queue, event), ...final, outcome: "retried", delayMs },
            "notification attempt failed; retrying",
          );
          if (!(await this.#sleep(delayMs, queue.stop.signal))) {
            return { outcome: "dropped", attempts: attempt, error: "stopped" };
          }
        }
      }
    }
  }

  /** Counts and logs a delivery's end; the one place a delivery leaves `pending`. */
  #finish(queue: TargetQueue, { event }: Delivery, final: Final): void {
    this.#metrics?.count(event.pool, queue.target.name, event.type, final.outcome);
    const line = { ...this.#fields(queue, event), ...final };
    if (final.outcome === "delivered") this.#log.info(line, "notification delivered");
    else this.#log.warn(line, `notification ${final.outcome}`);
    this.#settled(1);
  }

  /** Stops a webhook's queue: its attempt in flight ends as dropped, its waiting deliveries are dropped here. */
  #retire(queue: TargetQueue, why: string): void {
    queue.stop.abort();
    const dropped = queue.waiting.splice(0);
    if (dropped.length === 0) return;
    for (const { event } of dropped)
      this.#metrics?.count(event.pool, queue.target.name, event.type, "dropped");
    this.#log.warn(
      { pool: queue.pool, webhook: queue.target.name, origin: queue.origin, dropped: dropped.length },
      `queued notifications dropped: ${why}`,
    );
    this.#settled(dropped.length);
  }

  #settled(n: number): void {
    this.#pending -= n;
    if (this.#pending === 0) for (const onDrained of [...this.#drainWaiters]) onDrained();
  }

  /** Waits `ms`; false when `signal` aborts first. */
  #sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(false);
      const onAbort = () => {
        this.#timers.clearTimeout(handle);
        resolve(false);
      };
      const handle = this.#timers.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** What a log line says of a delivery: never the URL's path or query, never a key. */
  #fields(queue: TargetQueue, event: NotificationEvent): Record<string, unknown> {
    return {
      namespace: event.pool.namespace,
      pool: event.pool.name,
      webhook: queue.target.name,
      origin: queue.origin,
      type: event.type,
      eventId: event.id,
    };
  }
}

/** scheme://host:port of an http(s) URL (no credentials, path or query); undefined for anything else. */
function originOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}
