/**
 * Keeps this process's engines and a shared store in step, so replicas act as one pool:
 *
 * - a pick is confirmed by the store's atomic reservation (state, windows, lease): when the store
 *   refuses, the key is held (a full window) or takes the store's state (another replica's
 *   report), and the engine picks again;
 * - every transition learned here (reports, probes, operator actions) is written to the store,
 *   which keeps the newer fact and tells every replica on its channel; what others learned is
 *   merged into the engines here as it arrives;
 * - reports end leases wherever they were opened; LeastLoaded pools rank by all replicas'
 *   in-flight calls;
 * - while the store is unreachable, `open` lets each engine count alone (its local windows), and
 *   `closed` refuses to serve; when it is back, what was learned here meanwhile is written to it
 *   and what it holds is merged here, without a restart.
 */
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import type { Dispensed, KeyTransitionEvent, ReportRef, ReportResult } from "../pool/engine.ts";
import type { OutcomeOrigin } from "../pool/key.ts";
import type { Outcome } from "../pool/outcome.ts";
import {
  type PoolProblem,
  type PoolRef,
  type PoolRegistry,
  type PoolRuntime,
  refKey,
} from "../pool/registry.ts";
import { type EngineSnapshot, type KeySnapshot, SNAPSHOT_VERSION } from "../pool/snapshot.ts";
import type { Confirmed, KeyCoordinator } from "./coordinator.ts";
import type { Reservation, SharedKeyState, StateStore, StoreMessage } from "./store.ts";

export type StoreFailureMode = "open" | "closed";

export interface SharedStateOptions {
  store: StateStore & { readonly replicaTag: string };
  registry: PoolRegistry;
  logger: Logger;
  clock: Clock;
  failure: StoreFailureMode;
  /** Told when the store goes away or comes back (conditions, Events, metrics). */
  onAvailability?: (up: boolean) => void;
  /** Another replica used a pool (its counters changed): the leader refreshes that pool's status. */
  onRemoteTouch?: (ref: PoolRef) => void;
}

/** Attempts per dispense when the store refuses keys (each refusal holds a key out). */
const MAX_ATTEMPTS = 8;
/** How often a replica tells the others it used a pool (their leader then refreshes counters). */
const TOUCH_INTERVAL_MS = 1_000;
/** Retry-After for 503 state_store_unavailable (the client reconnects well within it). */
export const STORE_RETRY_AFTER_SECONDS = 2;
/** How long a claimed notification id is remembered: past the longest budget window (a month). */
const NOTIFICATION_CLAIM_MS = 40 * 86_400_000;

const COOLING = new Set(["RateLimited", "QuotaExhausted"]);
/**
 * What the store holds is taken as it is: its scripts already kept the newer fact per key, and a
 * replica's own `since` (a key that joined at start-up is Healthy since then) must not outrank
 * a cooldown the store kept through a restart.
 */
const AUTHORITATIVE = { authoritative: true } as const;

/** A lease id this replica issues while the store is up: the engine's, then the replica's tag. */
export function sharedLeaseId(localId: string, tag: string): string {
  return `${localId}.${tag}`;
}

/** Splits a lease id into the engine's id and the issuing replica's tag (none: issued alone). */
export function parseLeaseId(id: string): { local: string; tag: string | undefined } {
  const parts = id.split(".");
  if (parts.length !== 3) return { local: id, tag: undefined };
  return { local: `${parts[0]}.${parts[1]}`, tag: parts[2] };
}

function snapshotOf(keyId: string, s: SharedKeyState, takenAtMs: number): EngineSnapshot {
  const key: KeySnapshot = {
    id: keyId,
    state: s.state,
    ...(s.untilMs ? { untilMs: s.untilMs } : {}),
    ...(s.sinceMs ? { sinceMs: s.sinceMs } : {}),
    healthScore: 0,
    requests: 0,
    errors: 0,
    consecutiveErrors: s.consecutiveErrors,
    ...(s.lastErrorAtMs ? { lastErrorAtMs: s.lastErrorAtMs } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
  };
  return { version: SNAPSHOT_VERSION, takenAtMs, keys: [key] };
}

export class SharedState implements KeyCoordinator {
  readonly #o: SharedStateOptions;
  readonly #log: Logger;
  /** Writes to the store not yet answered (a report waits for its own). */
  readonly #pending = new Set<Promise<unknown>>();
  /** When this replica last told the others it used each pool. */
  readonly #lastTouch = new Map<string, number>();
  #remoteTouch = false;
  #stops: Array<() => void> = [];

  constructor(options: SharedStateOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "shared-state" });
    options.store.onMessage((message) => this.#onMessage(message));
    options.store.onAvailability((up) => {
      options.onAvailability?.(up);
      if (up) void this.resync();
    });
    this.#stops.push(
      options.registry.onTransition((ref, event) => this.#onTransition(ref, event)),
      options.registry.onTouched((ref) => this.#onTouched(ref)),
    );
  }

  get up(): boolean {
    return this.#o.store.up;
  }

  get failureMode(): StoreFailureMode {
    return this.#o.failure;
  }

  /** What the status should say about the store, for every pool (nothing while it is up). */
  problems(): PoolProblem[] {
    if (this.#o.store.up) return [];
    return [
      {
        reason: "StateStoreUnavailable",
        secret: "",
        message:
          this.#o.failure === "open"
            ? "The shared state store is unreachable: each replica counts limits and learns key states alone until it is back"
            : "The shared state store is unreachable: keys are not served (--state-store-failure=closed) until it is back",
      },
    ];
  }

  stop(): void {
    for (const stop of this.#stops) stop();
    this.#stops = [];
  }

  /**
   * Claims a notification for this replica over all replicas (webhooks get one message per
   * notice). With the store away, this replica sends it: a duplicate beats a notice lost.
   */
  async claimNotification(pool: string, id: string): Promise<boolean> {
    if (!this.#o.store.up) return true;
    return this.#o.store.claimNotification(pool, id, NOTIFICATION_CLAIM_MS);
  }

  /** Waits for the store writes started so far (a report answers after its transition is stored). */
  async settled(): Promise<void> {
    if (this.#pending.size) await Promise.allSettled([...this.#pending]);
  }

  // --- picks -------------------------------------------------------------------------------

  beforePick(runtime: PoolRuntime): Promise<void> | undefined {
    const up = this.#o.store.up;
    runtime.engine.setSharedLimits(up);
    if (!up || runtime.engine.config.strategy !== "LeastLoaded") return undefined;
    return this.#o.store.inFlight(refKey(runtime.ref)).then(
      (counts) => runtime.engine.setSharedInFlight(counts),
      () => undefined, // counted alone this time; the store's state is handled by confirm
    );
  }

  async confirm(runtime: PoolRuntime, picked: Dispensed, exclude?: ReadonlySet<string>): Promise<Confirmed> {
    const engine = runtime.engine;
    const pool = refKey(runtime.ref);
    let current = picked;
    for (let attempt = 1; ; attempt++) {
      const sharedAtPick = engine.sharedLimits;
      if (!this.#o.store.up) return this.#alone(runtime, current, sharedAtPick);
      const limits = engine.limitsOf(current.keyId);
      const leaseId = sharedLeaseId(current.leaseId, this.#o.store.replicaTag);
      let reservation: Reservation;
      try {
        reservation = await this.#o.store.reserve({
          pool,
          keyId: current.keyId,
          keyLimits: limits?.keyLimits,
          group: limits?.group,
          leaseId,
          leaseMs: current.expiresAtMs - this.#o.clock.now(),
        });
      } catch (err) {
        this.#log.debug({ pool, err: (err as Error).message }, "reservation failed");
        return this.#alone(runtime, current, sharedAtPick);
      }
      if (reservation.ok) {
        if (sharedAtPick) engine.countUse(current.keyId);
        return { ...current, leaseId };
      }
      engine.cancel(current.leaseId);
      if (reservation.reason === "window") {
        engine.holdUntil(current.keyId, reservation.retryAtMs, reservation.scope);
      } else {
        // Another replica's report: take its state; hold the key if this engine thinks it newer.
        const s = reservation.state;
        engine.merge(snapshotOf(current.keyId, s, this.#o.clock.now()), AUTHORITATIVE);
        if (engine.isUsable(current.keyId)) {
          const until = COOLING.has(s.state) ? s.untilMs : this.#o.clock.now() + 1_000;
          engine.holdUntil(current.keyId, until, "key");
        }
      }
      if (attempt >= MAX_ATTEMPTS) return { ok: false, retryAtMs: engine.nextUsableAt() };
      const next = engine.pick(exclude);
      if (!next.ok) return next;
      current = next;
    }
  }

  /** The store is not there: serve from this engine alone (open), or not at all (closed). */
  #alone(runtime: PoolRuntime, picked: Dispensed, sharedAtPick: boolean): Confirmed {
    if (this.#o.failure === "closed") {
      runtime.engine.cancel(picked.leaseId);
      return { ok: false, storeUnavailable: true, retryAfterSeconds: STORE_RETRY_AFTER_SECONDS };
    }
    if (sharedAtPick) runtime.engine.countUse(picked.keyId);
    runtime.engine.setSharedLimits(false);
    return picked;
  }

  // --- reports -----------------------------------------------------------------------------

  async report(
    runtime: PoolRuntime,
    ref: ReportRef,
    outcome: Outcome,
    origin?: OutcomeOrigin,
  ): Promise<ReportResult> {
    const engine = runtime.engine;
    const pool = refKey(runtime.ref);
    const tag = this.#o.store.replicaTag;
    let localLease: string | undefined;
    let storeLease: string | undefined;
    let keyId: string | undefined;
    if ("leaseId" in ref) {
      const parsed = parseLeaseId(ref.leaseId);
      if (parsed.tag === undefined || parsed.tag === tag) {
        localLease = parsed.local;
        keyId = engine.leaseKeyId(parsed.local);
      }
      if (parsed.tag !== undefined) storeLease = ref.leaseId;
    } else {
      keyId = ref.keyId;
    }
    const tokens = outcome.tokens && outcome.tokens > 0 ? outcome.tokens : 0;
    const error = outcome.kind !== "success";
    let foreignKey: string | undefined;
    if (this.#o.store.up && (storeLease || keyId)) {
      const limits = keyId ? engine.limitsOf(keyId) : undefined;
      try {
        const ended = await this.#o.store.endLease({
          pool,
          ...(storeLease ? { leaseId: storeLease } : {}),
          ...(keyId ? { keyId } : {}),
          tokens: keyId ? tokens : 0,
          keyLimits: limits?.keyLimits,
          group: limits?.group,
          error,
        });
        if (!keyId && ended) {
          foreignKey = ended.keyId;
          // The key was not known before the lease was looked up: its tokens go now.
          if (tokens > 0) {
            const foreignLimits = engine.limitsOf(foreignKey);
            await this.#o.store.endLease({
              pool,
              keyId: foreignKey,
              tokens,
              keyLimits: foreignLimits?.keyLimits,
              group: foreignLimits?.group,
              error: false,
            });
          }
        }
      } catch (err) {
        this.#log.debug({ pool, err: (err as Error).message }, "report did not reach the state store");
      }
    }
    let result: ReportResult;
    if (localLease && keyId) result = engine.report({ leaseId: localLease }, outcome, origin);
    else if ("keyId" in ref) result = engine.report(ref, outcome, origin);
    else if (foreignKey) result = engine.report({ keyId: foreignKey }, outcome, origin);
    else result = { ok: false, code: "unknown_lease" };
    if (result.ok && outcome.usage) await this.#addSpend(runtime, result.keyId, outcome);
    // A second cooldown during the first moves its deadline without a transition: the store
    // keeps the later deadline, so it is told too.
    if (result.ok && !result.transition && COOLING.has(result.state) && this.#o.store.up)
      this.#write(runtime.ref, result.keyId, outcome.reason ?? outcome.kind);
    await this.settled();
    return result;
  }

  /**
   * Adds a call's cost to the store's budget windows and makes the engine hold what every
   * replica spent together: a budget holds across replicas, not per replica. The engine charged
   * the call itself already (so a store that is away loses no spend here).
   */
  async #addSpend(runtime: PoolRuntime, keyId: string, outcome: Outcome) {
    const engine = runtime.engine;
    const usd = engine.costOf(keyId, outcome.usage);
    if (!(usd > 0) || !this.#o.store.up) return;
    const w = engine.budgetWindows();
    try {
      const totals = await this.#o.store.addSpend({
        pool: refKey(runtime.ref),
        keyId,
        day: { id: w.day.id, endMs: w.day.endMs },
        month: { id: w.month.id, endMs: w.month.endMs },
        usd,
      });
      engine.applySharedSpend(keyId, totals);
    } catch (err) {
      this.#log.debug(
        { pool: refKey(runtime.ref), err: (err as Error).message },
        "spend did not reach the state store",
      );
    }
  }

  // --- what others learned -----------------------------------------------------------------

  #onMessage(message: StoreMessage) {
    const [namespace = "", name = ""] = message.pool.split("/");
    const runtime = this.#o.registry.get({ namespace, name });
    if (!runtime) return;
    switch (message.kind) {
      case "state":
        runtime.engine.merge(snapshotOf(message.keyId, message.state, this.#o.clock.now()), AUTHORITATIVE);
        return;
      case "leaseClosed": {
        if (message.origin !== this.#o.store.replicaTag) return;
        runtime.engine.closeLease(parseLeaseId(message.leaseId).local);
        return;
      }
      case "touched":
        this.#remoteTouch = true;
        try {
          this.#o.registry.touched(runtime.ref);
          this.#o.onRemoteTouch?.(runtime.ref);
        } finally {
          this.#remoteTouch = false;
        }
        return;
    }
  }

  /** A transition learned here goes to the store (and from there to every replica). */
  #onTransition(ref: PoolRef, event: KeyTransitionEvent) {
    if (event.merged || event.to === "Draining" || event.from === "Draining") return;
    if (!this.#o.store.up) return; // written with everything else on reconnect (resync)
    this.#write(ref, event.keyId, event.reason);
  }

  /** Writes a key's state as this engine holds it now. */
  #write(ref: PoolRef, keyId: string, reason: string) {
    const facts = this.#o.registry.get(ref)?.engine.stateOf(keyId);
    if (!facts || facts.state === "Draining") return;
    const pool = refKey(ref);
    const state: SharedKeyState = {
      ...facts,
      untilMs: COOLING.has(facts.state) ? facts.untilMs : 0,
      reason,
    };
    this.#track(
      this.#o.store.setState(pool, keyId, state).then(
        (stored) => this.#adopt(ref, keyId, stored),
        (err: unknown) => this.#log.debug({ pool, err: (err as Error).message }, "state write failed"),
      ),
    );
  }

  /** The store kept a newer fact than the one written: take it here too. */
  #adopt(ref: PoolRef, keyId: string, stored: SharedKeyState | undefined) {
    if (!stored) return;
    this.#o.registry.get(ref)?.engine.merge(snapshotOf(keyId, stored, this.#o.clock.now()), AUTHORITATIVE);
  }

  #onTouched(ref: PoolRef) {
    if (this.#remoteTouch || !this.#o.store.up) return;
    const pool = refKey(ref);
    const now = this.#o.clock.now();
    if (now - (this.#lastTouch.get(pool) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.#lastTouch.set(pool, now);
    this.#track(this.#o.store.publish({ kind: "touched", pool }).catch(() => undefined));
  }

  #track(promise: Promise<unknown>) {
    this.#pending.add(promise);
    void promise.finally(() => this.#pending.delete(promise));
  }

  // --- bringing engines and the store together -----------------------------------------------

  /**
   * Makes one pool's engine hold what the store holds: key states (other replicas' reports,
   * cooldowns that outlived a restart) and usage counters summed over replicas. The reconciler
   * runs it before it builds the status, so the leader's status shows every replica's work.
   */
  async refresh(runtime: PoolRuntime): Promise<void> {
    if (!this.#o.store.up) return;
    const pool = refKey(runtime.ref);
    const ids = runtime.engine.keyIds();
    if (!ids.length) return;
    const w = runtime.engine.budgetWindows();
    const [states, usage, inFlight, spend] = await Promise.all([
      this.#o.store.states(pool, ids),
      this.#o.store.usage(pool, ids),
      this.#o.store.inFlight(pool),
      this.#o.store.spend(pool, ids, { day: w.day.id, month: w.month.id }),
    ]);
    runtime.engine.setSharedInFlight(inFlight);
    for (const [id, totals] of spend.keys)
      runtime.engine.applySharedSpend(id, { key: totals, pool: spend.pool });
    const now = this.#o.clock.now();
    const keys: KeySnapshot[] = [];
    const views = new Map(runtime.engine.keys().map((v) => [v.id, v]));
    for (const id of ids) {
      const s = states.get(id);
      const u = usage.get(id);
      const view = views.get(id);
      if (!view || (!s && !u)) continue;
      keys.push({
        id,
        // No stored state: the engine's own stands (merge keeps it: same state).
        state: s?.state ?? view.state,
        ...(s ? (s.untilMs ? { untilMs: s.untilMs } : {}) : view.untilMs ? { untilMs: view.untilMs } : {}),
        ...(s ? (s.sinceMs ? { sinceMs: s.sinceMs } : {}) : view.sinceMs ? { sinceMs: view.sinceMs } : {}),
        healthScore: view.healthScore,
        requests: u?.requests ?? 0,
        errors: u?.errors ?? 0,
        consecutiveErrors: s?.consecutiveErrors ?? view.consecutiveErrors,
        ...(u?.lastUsedMs ? { lastUsedMs: u.lastUsedMs } : {}),
        ...(s?.lastErrorAtMs ? { lastErrorAtMs: s.lastErrorAtMs } : {}),
      });
    }
    if (keys.length) runtime.engine.merge({ version: SNAPSHOT_VERSION, takenAtMs: now, keys }, AUTHORITATIVE);
  }

  /**
   * After the store was away (or at start): writes what this replica learned meanwhile (a key it
   * found Invalid stays Invalid everywhere), then takes what the store holds.
   */
  async resync(): Promise<void> {
    for (const runtime of [...this.#o.registry.values()]) {
      const pool = refKey(runtime.ref);
      try {
        const writes: Promise<unknown>[] = [];
        for (const view of runtime.engine.keys()) {
          if (view.state === "Healthy" || view.state === "Draining" || !view.sinceMs) continue;
          if (COOLING.has(view.state) && (view.untilMs ?? 0) <= this.#o.clock.now()) continue;
          writes.push(
            this.#o.store.setState(pool, view.id, {
              state: view.state,
              sinceMs: view.sinceMs,
              untilMs: view.untilMs ?? 0,
              consecutiveErrors: view.consecutiveErrors,
              lastErrorAtMs: view.lastError?.atMs ?? 0,
            }),
          );
        }
        await Promise.all(writes);
        await this.refresh(runtime);
      } catch (err) {
        this.#log.warn(
          { pool, err: (err as Error).message },
          "could not bring the pool in step with the state store",
        );
        return;
      }
    }
    this.#log.info({ pools: this.#o.registry.size }, "engines in step with the state store");
  }
}
