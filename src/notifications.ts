/**
 * When to notify: turns what the pools learn (key transitions, budget notices, availability,
 * forecasts) into webhook notifications (src/notify delivers them). One message per transition:
 *
 * - key transitions (KeyInvalid, KeyAlert for a key turning Degraded, KeyRecovered for a key
 *   usable again after Invalid, QuotaExhausted or Degraded) come from the replica that learned
 *   them; a transition taken from another replica (merged) is that replica's to tell;
 * - budget notices (BudgetWarning, BudgetExhausted) from the replica whose engine saw the spend
 *   cross the line, claimed once over all replicas when a shared store is there (`claim`);
 * - pool availability (PoolUnavailable, PoolRecovered) and ExhaustionPredicted from the leader
 *   only, checked on every transition of the pool and every `checkIntervalMs`.
 */
import type { NotificationType } from "./api/keypool.ts";
import type { Logger } from "./log.ts";
import type { Clock } from "./pool/clock.ts";
import type { KeyTransitionEvent } from "./pool/engine.ts";
import { USABLE_STATES } from "./pool/key.ts";
import {
  type PoolRef,
  type PoolRegistry,
  type PoolRuntime,
  type PoolWebhook,
  refKey,
} from "./pool/registry.ts";
import type { BudgetNotice } from "./pool/spending.ts";
import type { NotificationEvent } from "./notify/event.ts";
import type { Notifier } from "./notify/notifier.ts";

export interface PoolNotificationsOptions {
  registry: PoolRegistry;
  notifier: Pick<Notifier, "notify" | "setTargets">;
  clock: Clock;
  logger: Logger;
  /** Pool-level notifications come from the leader only (every replica sees the same pool). */
  isLeader: () => boolean;
  /**
   * Claims a notification id over all replicas (a shared store's SET NX); true: this replica sends
   * it. Without a shared store every id is this replica's.
   */
  claim?: (pool: string, id: string) => Promise<boolean>;
  checkIntervalMs?: number;
  timers?: { setInterval: typeof setInterval; clearInterval: typeof clearInterval };
}

/** States a key coming back to Healthy from is worth a KeyRecovered. */
const RECOVERED_FROM = new Set(["Invalid", "QuotaExhausted", "Degraded"]);
const iso = (ms: number) => new Date(ms).toISOString();

interface PoolWatch {
  available: boolean | undefined;
  predicted: boolean | undefined;
  webhooks: readonly PoolWebhook[] | undefined;
}

export class PoolNotifications {
  readonly #o: PoolNotificationsOptions;
  readonly #pools = new Map<string, PoolWatch>();
  readonly #unsubscribe: Array<() => void> = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: PoolNotificationsOptions) {
    this.#o = options;
  }

  start(): void {
    const { registry } = this.#o;
    this.#unsubscribe.push(
      registry.onTransition((ref, event) => this.#onTransition(ref, event)),
      registry.onBudget((ref, notice) => void this.#onBudget(ref, notice)),
    );
    const timers = this.#o.timers ?? { setInterval, clearInterval };
    this.#timer = timers.setInterval(() => this.check(), this.#o.checkIntervalMs ?? 15_000);
    this.#timer.unref?.();
  }

  stop(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
    if (this.#timer) (this.#o.timers ?? { setInterval, clearInterval }).clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Every pool's availability and forecast, as the leader sees them now. */
  check(): void {
    if (!this.#o.isLeader()) return;
    for (const runtime of this.#o.registry.values()) {
      this.#checkAvailability(runtime);
      this.#checkForecast(runtime);
    }
  }

  #watch(ref: PoolRef): PoolWatch {
    const key = refKey(ref);
    let watch = this.#pools.get(key);
    if (!watch)
      this.#pools.set(key, (watch = { available: undefined, predicted: undefined, webhooks: undefined }));
    return watch;
  }

  #onTransition(ref: PoolRef, event: KeyTransitionEvent) {
    const runtime = this.#o.registry.get(ref);
    if (!runtime) return;
    if (!event.merged) {
      const type: NotificationType | undefined =
        event.to === "Invalid"
          ? "KeyInvalid"
          : event.to === "Degraded"
            ? "KeyAlert"
            : event.to === "Healthy" && RECOVERED_FROM.has(event.from)
              ? "KeyRecovered"
              : undefined;
      if (type) {
        const until = event.untilMs ? ` until ${iso(event.untilMs)}` : "";
        this.#send(runtime, {
          id: `${refKey(ref)}/${event.keyId}/${event.atMs}/${event.from}-${event.to}`,
          type,
          pool: { namespace: ref.namespace, name: ref.name },
          key: { id: event.keyId, masked: event.masked },
          reason: event.reason,
          // The body's text names the pool and the key already.
          message: `${event.from} -> ${event.to}${until} (${event.reason}), from ${event.source}`,
          at: iso(event.atMs),
          details: { from: event.from, to: event.to, source: event.source },
        });
      }
    }
    if (this.#o.isLeader()) this.#checkAvailability(runtime);
  }

  async #onBudget(ref: PoolRef, notice: BudgetNotice) {
    const runtime = this.#o.registry.get(ref);
    if (!runtime) return;
    const window = new Date(notice.resetsAtMs).toISOString();
    const id = `${refKey(ref)}/budget/${notice.scope}/${notice.keyId ?? "pool"}/${notice.period}/${window}/${notice.level}`;
    try {
      if (this.#o.claim && !(await this.#o.claim(refKey(ref), id))) return;
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message }, "could not claim a notification; sending it");
    }
    const whose = notice.scope === "pool" ? "The pool's" : `Key ${notice.keyId} (${notice.masked})`;
    const share = Math.floor((notice.spentUSD / notice.limitUSD) * 100);
    this.#send(runtime, {
      id,
      type: notice.level === "exhausted" ? "BudgetExhausted" : "BudgetWarning",
      pool: { namespace: ref.namespace, name: ref.name },
      ...(notice.keyId && notice.masked ? { key: { id: notice.keyId, masked: notice.masked } } : {}),
      reason: notice.level === "exhausted" ? "budget_exhausted" : "budget_warning",
      message:
        `${whose} ${notice.period} budget is ${share}% spent ($${notice.spentUSD.toFixed(4)} of $${notice.limitUSD})` +
        (notice.level === "exhausted" ? `: nothing is handed out until ${window}` : ""),
      at: iso(this.#o.clock.now()),
      details: {
        scope: notice.scope,
        period: notice.period,
        spentUSD: notice.spentUSD,
        limitUSD: notice.limitUSD,
        resetsAt: window,
      },
    });
  }

  #checkAvailability(runtime: PoolRuntime) {
    const watch = this.#watch(runtime.ref);
    const counts = runtime.engine.stateCounts();
    let usable = 0;
    let live = 0;
    for (const [state, n] of Object.entries(counts)) {
      if (USABLE_STATES.has(state as never)) usable += n;
      if (state !== "Draining") live += n;
    }
    const available = usable > 0;
    const was = watch.available;
    watch.available = available;
    // The first look only records: a restart does not repeat what was said before it.
    if (was === undefined || was === available || live === 0) return;
    const now = this.#o.clock.now();
    const summary = Object.entries(counts)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${n} ${s}`)
      .join(", ");
    this.#send(runtime, {
      id: `${refKey(runtime.ref)}/${available ? "PoolRecovered" : "PoolUnavailable"}/${now}`,
      type: available ? "PoolRecovered" : "PoolUnavailable",
      pool: { namespace: runtime.ref.namespace, name: runtime.ref.name },
      reason: available ? "keys_available" : "no_usable_key",
      message: available
        ? `KeyPool ${refKey(runtime.ref)} has ${usable} usable key${usable === 1 ? "" : "s"} again (${summary})`
        : `KeyPool ${refKey(runtime.ref)} has no usable key: ${summary}`,
      at: iso(now),
      details: { usable, keys: live },
    });
  }

  #checkForecast(runtime: PoolRuntime) {
    const watch = this.#watch(runtime.ref);
    const forecast = runtime.engine.spendingView().forecast;
    const predicted = forecast?.beforeReset === true;
    const was = watch.predicted;
    watch.predicted = predicted;
    if (!predicted || was !== false || !forecast) return;
    const now = this.#o.clock.now();
    this.#send(runtime, {
      id: `${refKey(runtime.ref)}/ExhaustionPredicted/${forecast.limit}/${now}`,
      type: "ExhaustionPredicted",
      pool: { namespace: runtime.ref.namespace, name: runtime.ref.name },
      reason: "runs_out_before_reset",
      message: `At the recent rate KeyPool ${refKey(runtime.ref)} runs out of ${forecast.limit} at ${iso(forecast.exhaustsAtMs)}, before it resets at ${iso(forecast.resetsAtMs)}`,
      at: iso(now),
      details: {
        limit: forecast.limit,
        exhaustsAt: iso(forecast.exhaustsAtMs),
        resetsAt: iso(forecast.resetsAtMs),
      },
    });
  }

  #send(runtime: PoolRuntime, event: NotificationEvent) {
    const watch = this.#watch(runtime.ref);
    if (!runtime.webhooks?.length && !watch.webhooks?.length) return;
    if (watch.webhooks !== runtime.webhooks) {
      watch.webhooks = runtime.webhooks;
      this.#o.notifier.setTargets(
        refKey(runtime.ref),
        (runtime.webhooks ?? []).map((w) => ({
          name: w.name,
          url: w.url,
          signingKey: w.signingKey,
          events: new Set(w.events),
        })),
      );
    }
    this.#o.notifier.notify(event);
  }
}
