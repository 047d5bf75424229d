/**
 * src/pool: the engine (this file) and its parts: key states, strategies, client-side limits,
 * leases, quota groups, snapshots. Pure: no I/O, no timers, no clock reads except through the
 * injected Clock. The registry of pool runtimes (registry.ts) and the one step that applies a
 * pool (apply.ts) live here too: the runtime model every part shares.
 * May import: src/api (schemas and types), node:crypto (hashing), zod. Nothing
 * else. There is no barrel: import the file that holds what you need.
 *
 * The pool engine: the keys of one pool, their states, limits, leases and quota groups, and
 * the strategy that picks among them. Pure: time comes from the injected clock, ids from the
 * injected generator; no I/O.
 *
 * Every key is in exactly one place: the active set (usable now: the strategy picks from it),
 * the wake-up heap (unusable until a known time: a cooldown, a full limit window, a hold, a
 * drain), or neither (Invalid, Disabled: only an event brings it back). So a pick costs what the
 * strategy costs, whatever the number of unusable keys.
 *
 * Shared mode (several replicas, one shared store; the coordinator lives outside src/pool). Per
 * dispense the coordinator calls pick() here, then asks the store to reserve room in the key's
 * and its quota group's limit windows. Accepted: countUse() (the local windows learn this
 * replica's own use). Refused: cancel() the dispense and holdUntil() the key or its group until
 * the store's window has room, then pick again. While the store is up, setSharedLimits(true)
 * makes it the one authority on limit windows: dispenses do not add to the local request windows,
 * and local windows (requests or tokens, key or group) keep no key out of the active set; holds
 * do. When the store goes down, setSharedLimits(false) and the engine counts alone again, with
 * the local windows countUse() kept warm. setSharedInFlight() tells LeastLoaded the calls in
 * flight over all replicas; closeLease() ends a lease reported on another replica; limitsOf()
 * gives the limits to send to the store. None of it is used, nothing changes: the engine counts
 * alone, as it always did.
 */
import { KEY_STATES, type KeyState, type Limits, type Strategy } from "../api/keypool.ts";
import { type PoolCapacity, poolCapacity } from "./capacity.ts";
import type { Clock } from "./clock.ts";
import type { PoolConfig } from "./config.ts";
import { IndexedHeap } from "./heap.ts";
import {
  adoptRemoteState,
  applyAlerts,
  applyOutcome,
  coolDown,
  disableKey,
  type KeyEntry,
  KeyRecord,
  type LastError,
  type LimitWindows,
  limitWindows,
  type OutcomeOrigin,
  refreshState,
  resetKey,
  startDraining,
  stateUsableAt,
  stopDraining,
  type Transition,
  windowsRoomAt,
  windowsUtilization,
} from "./key.ts";
import { LeaseTable } from "./leases.ts";
import { type CallUsage, type Outcome, OutcomeKind, type RateLimitInfo } from "./outcome.ts";
import { type ActiveSet, createActiveSet } from "./strategies.ts";
import { type EngineSnapshot, type KeySnapshot, SNAPSHOT_VERSION } from "./snapshot.ts";
import type { BudgetWindows } from "./budget-window.ts";
import { type Forecast, tauOf } from "./forecast.ts";
import {
  type BudgetNotice,
  type BudgetStatus,
  budgetNotices,
  budgetStatus,
  keyForecast,
  keyHeadroom,
  NoticeMemory,
  overBudgetUntil,
  PoolSpending,
} from "./spending.ts";
import type { SpendTotals } from "./spend.ts";

export interface KeyTransitionEvent extends Transition {
  /** Taken from another replica's view (merge()), not learned here: already reported there. */
  merged?: boolean;
  keyId: string;
  masked: string;
  source: string;
  atMs: number;
  untilMs: number;
}

export interface EngineOptions {
  clock: Clock;
  /**
   * A random integer in [0, LEASE_TOKEN_LIMIT) per lease: with the lease's sequence number it
   * makes the lease id, so it must be hard to guess.
   */
  newLeaseToken: () => number;
  /** Told about every state transition (for Kubernetes Events and status writes). */
  onTransition?: (event: KeyTransitionEvent) => void;
  /** Told when a pool or key budget reaches its warning share or its limit (once per window). */
  onBudget?: (notice: BudgetNotice) => void;
}

/** What the pool and its keys cost, their budgets and forecasts (KeyPoolEngine.spendingView). */
export interface SpendingView {
  /** The budget day and month now (ids like 2026-12-04 and 2026-12), in budget.timeZone. */
  day: string;
  month: string;
  timeZone: string;
  costTodayUSD: number;
  costThisMonthUSD: number;
  byModel: Array<{ model: string; costTodayUSD: number; costThisMonthUSD: number }>;
  budget: BudgetStatus;
  forecast: Forecast | undefined;
}

export interface Dispensed {
  ok: true;
  key: string;
  keyId: string;
  leaseId: string;
  expiresAtMs: number;
  strategy: Strategy;
}

export interface NoUsableKey {
  ok: false;
  /** When the earliest key becomes usable by time alone; undefined when none will. */
  retryAtMs: number | undefined;
}

export type PickResult = Dispensed | NoUsableKey;

/** A key's configured limits and its quota group's, as the shared store enforces them. */
/** A key's state, when it began and ends, and its error streak (KeyPoolEngine.stateOf). */
export interface KeyStateFacts {
  state: KeyState;
  sinceMs: number;
  /** A cooldown's end; 0 otherwise. */
  untilMs: number;
  consecutiveErrors: number;
  lastErrorAtMs: number;
}

export interface ConfiguredLimits {
  keyLimits: Limits | undefined;
  /** The key's quota group; undefined when it is in none. */
  group: { name: string; limits: Limits | undefined } | undefined;
}

export type ReportRef = { leaseId: string } | { keyId: string };

export type ReportResult =
  | { ok: true; keyId: string; state: KeyState; transition: Transition | undefined }
  | { ok: false; code: "unknown_lease" | "unknown_key" };

/** A quota group: keys of one provider account, sharing cooldowns and (optionally) limits. */
interface QuotaGroupState {
  name: string;
  limits: Limits | undefined;
  windows: LimitWindows;
  keys: Set<KeyRecord>;
}

export interface KeyView {
  id: string;
  masked: string;
  source: string;
  quotaGroup: string | undefined;
  state: KeyState;
  untilMs: number | undefined;
  healthScore: number;
  requests: number;
  errors: number;
  consecutiveErrors: number;
  inFlight: number;
  lastUsedMs: number | undefined;
  lastError: LastError | undefined;
  weight: number;
  /** When the key entered its state (epoch ms); undefined when not known. */
  sinceMs: number | undefined;
  /**
   * Draining: the state the key returns to when it is back in its source, and that state's end
   * (a cooldown's); undefined otherwise. What a store built from views must keep to restore it.
   */
  stateBeforeDrain?: KeyState | undefined;
  stateBeforeDrainUntilMs?: number | undefined;
  /** spec.disabledKeys lists the key (see setDisabledKeys); absent otherwise. */
  disabledBySpec?: boolean | undefined;
  /** Average time of the key's calls (ms, rounded, exponentially weighted); undefined before any. */
  latencyMs?: number | undefined;
  /** Why the key is in its state (the last transition's reason); absent when not known. */
  reason?: string | undefined;
  /** What the key cost in the budget day and month (0 without a price list). */
  costTodayUSD?: number | undefined;
  costThisMonthUSD?: number | undefined;
  /** The key's budgets, when it has any (keys[].budget). */
  budget?: BudgetStatus | undefined;
  /** When the key runs out of a limit or budget at its recent rate; absent when it does not. */
  forecast?: Forecast | undefined;
}

export class KeyPoolEngine {
  #config: PoolConfig;
  readonly #clock: Clock;
  readonly #newLeaseToken: () => number;
  readonly #onTransition: ((event: KeyTransitionEvent) => void) | undefined;
  readonly #onBudget: ((notice: BudgetNotice) => void) | undefined;
  readonly #spending = new PoolSpending();
  /** Budget notices given per key (once per window and level). */
  readonly #keyNotices = new WeakMap<KeyRecord, NoticeMemory>();
  readonly #keys = new Map<string, KeyRecord>();
  readonly #groups = new Map<string, QuotaGroupState>();
  #active: ActiveSet;
  readonly #wake = new IndexedHeap<KeyRecord, "wakeIndex">((a, b) => a.wakeAtMs < b.wakeAtMs, "wakeIndex");
  readonly #degraded = new Set<KeyRecord>();
  readonly #leases = new LeaseTable();
  /** Restored state waiting for its key to arrive from a source. */
  readonly #pending = new Map<string, KeySnapshot>();
  #order = 0;
  #useSeq = 0;
  #keySetVersion = 0;
  /** Limit windows are the shared store's to enforce (setSharedLimits). */
  #sharedLimits = false;
  /** Key ids spec.disabledKeys lists (setDisabledKeys). */
  #specDisabled: ReadonlySet<string> = new Set();

  constructor(config: PoolConfig, options: EngineOptions) {
    this.#config = config;
    this.#clock = options.clock;
    this.#newLeaseToken = options.newLeaseToken;
    this.#onTransition = options.onTransition;
    this.#onBudget = options.onBudget;
    this.#active = createActiveSet(config.strategy, config.forecast.balance);
  }

  get config(): PoolConfig {
    return this.#config;
  }

  get size(): number {
    return this.#keys.size;
  }

  /** Applies a new spec: strategy, cooldowns, defaults and group limits. Key state is kept. */
  setConfig(config: PoolConfig): void {
    const strategyChanged =
      config.strategy !== this.#config.strategy || config.forecast.balance !== this.#config.forecast.balance;
    const limitsChanged = config.defaultLimits !== this.#config.defaultLimits;
    this.#config = config;
    for (const group of this.#groups.values()) this.#syncGroupLimits(group);
    if (strategyChanged) {
      const members = [...this.#active.values()];
      this.#active = createActiveSet(config.strategy, config.forecast.balance);
      const now = this.#clock.now();
      for (const rec of members) {
        rec.headroom = this.#headroom(rec, now);
        this.#active.add(rec);
      }
    }
    if (limitsChanged) this.#replaceAll();
    this.#reviewBudgets(this.#clock.now());
  }

  /**
   * Replaces the key set with what the sources hold now. Unchanged keys keep their state and
   * counters; new keys join Healthy (or with restored state); keys no longer present go Draining
   * for drainPeriod; a key whose value changed is a new key (its id changes).
   */
  setKeys(entries: readonly KeyEntry[]): { added: string[]; removed: string[] } {
    const now = this.#clock.now();
    const seen = new Set<string>();
    const added: string[] = [];
    const removed: string[] = [];
    for (const entry of entries) {
      const probe = new KeyRecord(entry, this.#order, this.#config);
      if (seen.has(probe.id)) continue;
      seen.add(probe.id);
      const existing = this.#keys.get(probe.id);
      if (existing) {
        this.#updateEntry(existing, entry);
        this.#emit(existing, stopDraining(existing), now);
        this.#applySpecDisabled(existing, now);
        this.#place(existing, now);
        continue;
      }
      this.#order++;
      probe.stateSinceMs = now;
      this.#keys.set(probe.id, probe);
      this.#joinGroup(probe);
      const restored = this.#pending.get(probe.id);
      if (restored) {
        this.#pending.delete(probe.id);
        applySnapshot(probe, restored);
        if (restored.spend) probe.spend.restore(restored.spend, this.#spending.windows(this.#config, now));
        stopDraining(probe); // it is in a source again
      }
      this.#applySpecDisabled(probe, now);
      this.#place(probe, now);
      added.push(probe.id);
    }
    for (const rec of this.#keys.values()) {
      if (seen.has(rec.id) || rec.state === "Draining") continue;
      this.#emit(rec, startDraining(rec, now + this.#config.drainPeriodMs), now);
      this.#place(rec, now);
      removed.push(rec.id);
    }
    if (added.length || removed.length) this.#keySetVersion++;
    this.#reviewBudgets(now);
    return { added, removed };
  }

  /**
   * Hands out a key by the pool's strategy and opens a lease on it. Keys in `exclude` are passed
   * over (the proxy's failover: a call moves to a key it has not tried yet).
   */
  pick(exclude?: ReadonlySet<string>): PickResult {
    const now = this.#clock.now();
    this.tick();
    let rec = this.#active.peek();
    if (rec && exclude?.has(rec.id)) rec = this.#peekExcluding(exclude);
    if (!rec) return { ok: false, retryAtMs: this.nextUsableAt() };
    return this.#dispense(rec, now);
  }

  /**
   * The strategy's choice among keys not in `exclude`: the excluded keys leave the active set for
   * the peek and rejoin it (for RoundRobin, at the end of the round: they were just tried).
   */
  #peekExcluding(exclude: ReadonlySet<string>): KeyRecord | undefined {
    const held: KeyRecord[] = [];
    for (const id of exclude) {
      const rec = this.#keys.get(id);
      if (rec && this.#active.has(rec)) {
        this.#active.remove(rec);
        held.push(rec);
      }
    }
    const rec = this.#active.peek();
    for (const h of held) this.#active.add(h);
    return rec;
  }

  /** Records a key's rate-limit headers ahead of its report (the proxy, before a stream ends). */
  noteRateLimit(keyId: string, rateLimit: RateLimitInfo): void {
    const rec = this.#keys.get(keyId);
    if (rec) rec.rateLimit = rateLimit;
  }

  /** What the usable keys have left (configured limits, provider rate-limit headers). */
  capacity(): PoolCapacity {
    const now = this.#clock.now();
    this.tick();
    return poolCapacity(this.#keys.values(), now);
  }

  /** Hands out a specific key when it is usable now (session affinity); undefined otherwise. */
  pickKey(keyId: string): Dispensed | undefined {
    const now = this.#clock.now();
    this.tick();
    const rec = this.#keys.get(keyId);
    if (!rec || !this.#active.has(rec)) return undefined;
    return this.#dispense(rec, now);
  }

  #dispense(rec: KeyRecord, now: number): Dispensed {
    rec.requests++;
    rec.lastUsedMs = now;
    rec.lastUseSeq = ++this.#useSeq;
    rec.inFlight++;
    rec.recordRates().requests.add(now, 1, tauOf(this.#config.forecast.halfLifeMs));
    // Shared limits: the store counts this request (the coordinator reserves it, then countUse).
    const shared = this.#sharedLimits;
    const group = shared ? undefined : this.#countRequest(rec, now);
    this.#updateLoad(rec, now);
    if (this.#config.forecast.balance) rec.headroom = this.#headroom(rec, now);
    this.#active.used(rec);

    const expiresAtMs = now + this.#config.leaseDurationMs;
    const leaseId = this.#leases.add(rec.id, expiresAtMs, this.#newLeaseToken());
    if (!shared) this.#placeIfFull(rec, group, now);
    return {
      ok: true,
      key: rec.key,
      keyId: rec.id,
      leaseId,
      expiresAtMs,
      strategy: this.#config.strategy,
    };
  }

  /** Adds one request at `now` to the key's and its quota group's request windows; returns the group. */
  #countRequest(rec: KeyRecord, now: number): QuotaGroupState | undefined {
    for (const w of rec.windows.requests) w.add(now);
    const group = rec.quotaGroup ? this.#groups.get(rec.quotaGroup) : undefined;
    if (group) for (const w of group.windows.requests) w.add(now);
    return group;
  }

  /** After a request was counted locally: a key (or group) whose window is now full leaves the active set. */
  #placeIfFull(rec: KeyRecord, group: QuotaGroupState | undefined, now: number) {
    if (windowsRoomAt(rec.windows, now) > now) this.#place(rec, now);
    if (group && windowsRoomAt(group.windows, now) > now)
      for (const member of group.keys) this.#place(member, now);
  }

  // --- shared mode (see the header) -------------------------------------------------------

  /**
   * On: the shared store enforces the configured limit windows (each key's and each quota
   * group's), so dispenses stop adding to the local request windows and local windows (request
   * or token) keep no key out of the active set; holds still do. Off (the default): the local
   * windows enforce the limits, as without a store. Switching re-places every key: one held out
   * by a full local window may become usable, and the other way round.
   */
  setSharedLimits(on: boolean): void {
    if (on === this.#sharedLimits) return;
    this.#sharedLimits = on;
    const now = this.#clock.now();
    for (const rec of this.#keys.values()) this.#place(rec, now);
  }

  get sharedLimits(): boolean {
    return this.#sharedLimits;
  }

  /**
   * The store accepted a reservation for a dispense of `keyId`: adds one request at now to the
   * key's and its quota group's local request windows, so they know this replica's own use if the
   * engine has to count alone (setSharedLimits(false)). In shared mode the key stays usable;
   * without it, a window this fills takes the key (or group) out as a dispense would.
   */
  countUse(keyId: string): void {
    const rec = this.#keys.get(keyId);
    if (!rec) return;
    const now = this.#clock.now();
    const group = this.#countRequest(rec, now);
    this.#updateLoad(rec, now);
    if (this.#active.has(rec)) this.#active.changed(rec);
    if (!this.#sharedLimits) this.#placeIfFull(rec, group, now);
  }

  /**
   * The store said a limit window is full until `untilMs`: the key (scope "key") or every key of
   * its quota group (scope "group"; a key in no group: the key alone) is not handed out before
   * then. A hold is not a state: no transition, no event, views show the state unchanged. Of two
   * holds the later deadline stays. Applies whether or not shared limits are on; tick() brings the
   * key back when it is due, and nextUsableAt() counts it.
   */
  holdUntil(keyId: string, untilMs: number, scope: "key" | "group"): void {
    const rec = this.#keys.get(keyId);
    if (!rec) return;
    const now = this.#clock.now();
    const group = scope === "group" && rec.quotaGroup ? this.#groups.get(rec.quotaGroup) : undefined;
    if (!group) {
      this.#hold(rec, untilMs, now);
      return;
    }
    for (const member of group.keys) this.#hold(member, untilMs, now);
  }

  #hold(rec: KeyRecord, untilMs: number, now: number) {
    if (untilMs <= rec.heldUntilMs) return;
    rec.heldUntilMs = untilMs;
    if (untilMs > now) this.#place(rec, now);
  }

  /**
   * Undoes a dispense that did not happen (the store refused it): closes the lease, and takes back
   * its request and its call in flight (the strategy re-ranks the key, as when a lease ends). No
   * transition. Meant for shared mode: a dispense without it also added to the local windows,
   * which cannot take a request back. What the strategy did at the dispense stays done: RoundRobin
   * moved the key to the end of the round, LeastRecentlyUsed counts it as just used, Weighted
   * advanced its turn (the key is usually held next anyway). False for a lease not open here.
   */
  cancel(leaseId: string): boolean {
    const keyId = this.#leases.close(leaseId);
    if (keyId === undefined) return false;
    const rec = this.#keys.get(keyId);
    if (rec) {
      rec.requests = Math.max(0, rec.requests - 1);
      this.#leaseEnded(rec, this.#clock.now());
    }
    return true;
  }

  /**
   * A lease opened here was reported on another replica (which applied the outcome): ends it
   * here, with no outcome (one fewer in flight, the strategy re-ranks the key). Returns the key's
   * id; undefined for a lease not open here.
   */
  closeLease(leaseId: string): string | undefined {
    const keyId = this.#leases.close(leaseId);
    if (keyId === undefined) return undefined;
    const rec = this.#keys.get(keyId);
    if (rec) this.#leaseEnded(rec, this.#clock.now());
    return keyId;
  }

  /**
   * Calls in flight per key over all replicas (keys not in `counts`: 0). LeastLoaded ranks a key
   * by the larger of this and its own leases here (plus its window use), and views show that
   * larger count.
   */
  setSharedInFlight(counts: ReadonlyMap<string, number>): void {
    const now = this.#clock.now();
    for (const rec of this.#keys.values()) {
      const n = counts.get(rec.id) ?? 0;
      if (n === rec.sharedInFlight) continue;
      rec.sharedInFlight = n;
      this.#updateLoad(rec, now);
      if (this.#active.has(rec)) this.#active.changed(rec);
    }
  }

  /**
   * A key's configured limits and its quota group's (the group's from the pool's quotaGroups;
   * undefined when it has none), for the shared store; undefined for an unknown key.
   */
  limitsOf(keyId: string): ConfiguredLimits | undefined {
    const rec = this.#keys.get(keyId);
    if (!rec) return undefined;
    const name = rec.quotaGroup;
    return {
      keyLimits: rec.limits,
      group: name === undefined ? undefined : { name, limits: this.#config.quotaGroupLimits.get(name) },
    };
  }

  /**
   * One key's state as other replicas need it (no counters, no key material): what a shared
   * store keeps, also when a second cooldown only moved the deadline (no transition).
   */
  stateOf(keyId: string): KeyStateFacts | undefined {
    const rec = this.#keys.get(keyId);
    if (!rec) return undefined;
    return {
      state: rec.state,
      sinceMs: rec.stateSinceMs,
      untilMs: rec.untilMs,
      consecutiveErrors: rec.consecutiveErrors,
      lastErrorAtMs: rec.lastErrorAtMs,
    };
  }

  /**
   * Records how a call (or a probe) went. A lease id closes that lease; a key id reports
   * without one (probes, callers that kept no lease). A rate-limit or quota answer cools down
   * the key's whole quota group.
   */
  report(ref: ReportRef, outcome: Outcome, origin: OutcomeOrigin = "report"): ReportResult {
    const now = this.#clock.now();
    this.tick();
    let rec: KeyRecord | undefined;
    if ("leaseId" in ref) {
      const keyId = this.#leases.close(ref.leaseId);
      if (keyId === undefined) return { ok: false, code: "unknown_lease" };
      rec = this.#keys.get(keyId);
      if (!rec) return { ok: false, code: "unknown_key" };
      this.#leaseEnded(rec, now);
    } else {
      rec = this.#keys.get(ref.keyId);
      if (!rec) return { ok: false, code: "unknown_key" };
    }

    if (outcome.rateLimit) rec.rateLimit = outcome.rateLimit;
    if (outcome.tokens && outcome.tokens > 0)
      rec.recordRates().tokens.add(now, outcome.tokens, tauOf(this.#config.forecast.halfLifeMs));
    if (outcome.usage) this.#charge(rec, outcome, now);
    if (outcome.tokens && outcome.tokens > 0) {
      rec.windows.tokens?.add(now, outcome.tokens);
      const group = rec.quotaGroup ? this.#groups.get(rec.quotaGroup) : undefined;
      group?.windows.tokens?.add(now, outcome.tokens);
      if (group?.windows.tokens && !this.#sharedLimits)
        for (const member of group.keys) this.#place(member, now);
    }

    const transition =
      applyOutcome(rec, outcome, this.#config, now, origin) ??
      (origin === "report" ? applyAlerts(rec, outcome, this.#config, now) : undefined);
    this.#emit(rec, transition, now);
    this.#place(rec, now);
    this.#spreadToGroup(rec, outcome, now);
    return { ok: true, keyId: rec.id, state: rec.state, transition };
  }

  // --- cost, budgets, forecasts -----------------------------------------------------------

  /** Adds what the call cost to the key's and the pool's spend, then holds what is over budget. */
  #charge(rec: KeyRecord, outcome: Outcome, now: number) {
    const usd = this.#config.prices.costUSD(outcome.usage, rec.costMultiplier);
    if (!(usd > 0)) return;
    const w = this.#spending.windows(this.#config, now);
    const model = outcome.usage?.model;
    rec.spend.add(w, usd, model);
    this.#spending.spend.add(w, usd, model);
    const name = model ?? "";
    this.#spending.lifetime.set(name, (this.#spending.lifetime.get(name) ?? 0) + usd);
    const tau = tauOf(this.#config.forecast.halfLifeMs);
    rec.recordRates().cost.add(now, usd, tau);
    this.#spending.costRate.add(now, usd, tau);
    this.#enforceBudgets(rec, w, now);
  }

  /**
   * Spend counted elsewhere (a shared store: all replicas' calls) for a key and for the pool:
   * the counters rise to it, and what is over budget is held, as if this replica had spent it.
   */
  applySharedSpend(keyId: string, totals: { key: SpendTotals; pool: SpendTotals }): void {
    const rec = this.#keys.get(keyId);
    if (!rec) return;
    const now = this.#clock.now();
    const w = this.#spending.windows(this.#config, now);
    rec.spend.raiseTo(w, totals.key);
    this.#spending.spend.raiseTo(w, totals.pool);
    this.#enforceBudgets(rec, w, now);
  }

  /** Gives the notices `rec`'s and the pool's spend crossed; over a budget: QuotaExhausted until it resets. */
  #enforceBudgets(rec: KeyRecord, w: BudgetWindows, now: number) {
    const { warnAtPercent, limits } = this.#config.budget;
    let memory = this.#keyNotices.get(rec);
    if (!memory) this.#keyNotices.set(rec, (memory = new NoticeMemory()));
    const keyTotals = rec.spend.totals(w);
    const poolTotals = this.#spending.spend.totals(w);
    const notices = [
      ...budgetNotices(rec.budget, keyTotals, w, warnAtPercent, memory, {
        scope: "key",
        keyId: rec.id,
        masked: rec.masked,
      }),
      ...budgetNotices(limits, poolTotals, w, warnAtPercent, this.#spending.notices, { scope: "pool" }),
    ];
    const keyUntil = overBudgetUntil(rec.budget, keyTotals, w);
    if (keyUntil !== undefined) this.#holdForBudget(rec, keyUntil, "budget_exhausted", now);
    const poolUntil = overBudgetUntil(limits, poolTotals, w);
    if (poolUntil !== undefined)
      for (const member of this.#keys.values())
        this.#holdForBudget(member, poolUntil, "pool_budget_exhausted", now);
    if (this.#onBudget) for (const notice of notices) this.#onBudget(notice);
  }

  #holdForBudget(rec: KeyRecord, untilMs: number, reason: string, now: number) {
    this.#emit(rec, coolDown(rec, "QuotaExhausted", untilMs, reason), now);
    this.#place(rec, now);
  }

  /**
   * After the spec or the keys changed: a key that joins a pool over its budget is held with the
   * others; a key held for a budget that was raised (or removed) is Healthy again.
   */
  #reviewBudgets(now: number) {
    const w = this.#spending.windows(this.#config, now);
    const poolUntil = overBudgetUntil(this.#config.budget.limits, this.#spending.spend.totals(w), w);
    for (const rec of this.#keys.values()) {
      const keyUntil = overBudgetUntil(rec.budget, rec.spend.totals(w), w);
      if (keyUntil !== undefined) this.#holdForBudget(rec, keyUntil, "budget_exhausted", now);
      else if (poolUntil !== undefined) this.#holdForBudget(rec, poolUntil, "pool_budget_exhausted", now);
      else if (
        rec.state === "QuotaExhausted" &&
        (rec.stateReason === "budget_exhausted" || rec.stateReason === "pool_budget_exhausted")
      ) {
        this.#emit(rec, resetKey(rec, "budget_raised"), now);
        this.#place(rec, now);
      }
    }
  }

  #headroom(rec: KeyRecord, now: number): number {
    if (!this.#config.forecast.balance) return 1;
    return keyHeadroom(rec, this.#config, this.#spending.windows(this.#config, now), now);
  }

  /** What a call with `usage` on `keyId` costs by the price list and the key's multiplier (0: unknown). */
  costOf(keyId: string, usage: CallUsage | undefined): number {
    const rec = this.#keys.get(keyId);
    return rec ? this.#config.prices.costUSD(usage, rec.costMultiplier) : 0;
  }

  /** The budget day and month now (spec.budget.timeZone). */
  budgetWindows(): BudgetWindows {
    return this.#spending.windows(this.#config, this.#clock.now());
  }

  /** USD per model since this engine started (a counter's source: never goes down). */
  costTotals(): ReadonlyMap<string, number> {
    return this.#spending.lifetime;
  }

  /** Where the pool's budgets stand (cheap: no forecast; keypool_budget_spent_ratio reads it). */
  budgetUse(): BudgetStatus {
    const w = this.#spending.windows(this.#config, this.#clock.now());
    return budgetStatus(this.#config.budget.limits, this.#spending.spend.totals(w), w);
  }

  /** The pool's cost today and this month (in total and per model), its budgets and its forecast. */
  spendingView(): SpendingView {
    const now = this.#clock.now();
    const w = this.#spending.windows(this.#config, now);
    const totals = this.#spending.spend.totals(w);
    return {
      day: w.day.id,
      month: w.month.id,
      timeZone: this.#config.budget.timeZone,
      costTodayUSD: totals.dayUSD,
      costThisMonthUSD: totals.monthUSD,
      byModel: this.#spending.spend
        .byModel(w)
        .map((m) => ({ model: m.model, costTodayUSD: m.dayUSD, costThisMonthUSD: m.monthUSD })),
      budget: budgetStatus(this.#config.budget.limits, totals, w),
      forecast: this.#spending.forecast(this.#keys.values(), this.#config, w, now),
    };
  }

  /** A cooldown on one key of a quota group is a cooldown on the account: all its keys rest. */
  #spreadToGroup(rec: KeyRecord, outcome: Outcome, now: number) {
    if (!rec.quotaGroup) return;
    if (outcome.kind !== OutcomeKind.RateLimited && outcome.kind !== OutcomeKind.QuotaExhausted) return;
    if (rec.state !== "RateLimited" && rec.state !== "QuotaExhausted") return;
    const group = this.#groups.get(rec.quotaGroup);
    if (!group) return;
    for (const member of group.keys) {
      if (member === rec) continue;
      const reason = `quota_group_${outcome.reason ?? outcome.kind}`;
      this.#emit(member, coolDown(member, rec.state, rec.untilMs, reason), now);
      this.#place(member, now);
    }
  }

  /**
   * Operator actions: bring an Invalid (or any) key back, or switch a key off and on. A key
   * spec.disabledKeys lists stays Disabled: only the spec turns it on again.
   */
  reset(keyId: string): boolean {
    return this.#act(keyId, (rec) => (rec.disabledBySpec ? undefined : resetKey(rec)));
  }

  disable(keyId: string): boolean {
    return this.#act(keyId, (rec) => disableKey(rec, "disabled"));
  }

  enable(keyId: string): boolean {
    return this.#act(keyId, (rec) =>
      rec.state === "Disabled" && !rec.disabledBySpec ? resetKey(rec) : undefined,
    );
  }

  /**
   * spec.disabledKeys: the keys it lists are Disabled (a Draining one returns to Disabled if it
   * comes back), whatever reports, probes or other replicas say; a key taken off the list is
   * Healthy again. Ids of keys not here yet apply when they join. Keys the admin action disabled
   * are left alone. Call it before setKeys, so a key coming back from Draining goes straight to
   * Disabled.
   */
  setDisabledKeys(ids: ReadonlySet<string>): void {
    const same = ids.size === this.#specDisabled.size && [...ids].every((id) => this.#specDisabled.has(id));
    if (same) return;
    const now = this.#clock.now();
    this.#specDisabled = new Set(ids);
    for (const rec of this.#keys.values()) {
      this.#applySpecDisabled(rec, now);
      this.#place(rec, now);
    }
  }

  #applySpecDisabled(rec: KeyRecord, now: number): void {
    if (this.#specDisabled.has(rec.id)) {
      rec.disabledBySpec = true;
      if (rec.state === "Draining") {
        rec.stateBeforeDrain = "Disabled";
        rec.stateBeforeDrainUntilMs = 0;
      } else {
        this.#emit(rec, disableKey(rec, "disabled_in_spec"), now);
      }
      return;
    }
    if (!rec.disabledBySpec) return;
    rec.disabledBySpec = false;
    if (rec.state === "Draining") {
      if (rec.stateBeforeDrain === "Disabled") rec.stateBeforeDrain = "Healthy";
    } else if (rec.state === "Disabled") {
      this.#emit(rec, resetKey(rec, "enabled_in_spec"), now);
    }
  }

  #act(keyId: string, action: (rec: KeyRecord) => Transition | undefined): boolean {
    const rec = this.#keys.get(keyId);
    if (!rec) return false;
    const now = this.#clock.now();
    this.#emit(rec, action(rec), now);
    this.#place(rec, now);
    return true;
  }

  /**
   * Applies time: cooldowns that ended, full limit windows with room again, drains that are
   * over, quiet Degraded keys, expired leases. Cheap when nothing is due; runs before every
   * pick and report, and callers may run it on a timer (see nextTransitionAt) for timely Events.
   */
  tick(): void {
    const now = this.#clock.now();
    for (let next = this.#wake.peek(); next && next.wakeAtMs <= now; next = this.#wake.peek()) {
      this.#wake.pop();
      next.wakeAtMs = Number.POSITIVE_INFINITY;
      if (next.state === "Draining" && now >= next.untilMs) {
        this.#removeKey(next);
        continue;
      }
      this.#emit(next, refreshState(next, this.#config, now), now);
      this.#place(next, now);
    }
    for (const rec of this.#degraded) {
      const t = refreshState(rec, this.#config, now);
      if (t) {
        this.#emit(rec, t, now);
        this.#place(rec, now);
      }
    }
    this.#leases.expire(now, this.#leaseExpired);
  }

  /**
   * When the earliest unusable key becomes usable by time alone (undefined: none will). A key
   * whose cooldown ends before its hold wakes at the cooldown's end, but is usable at the hold's.
   */
  nextUsableAt(): number | undefined {
    const next = this.#wake
      .values()
      .reduce<number>(
        (min, rec) =>
          rec.state === "Draining" ? min : Math.min(min, Math.max(rec.wakeAtMs, rec.heldUntilMs)),
        Number.POSITIVE_INFINITY,
      );
    return Number.isFinite(next) ? next : undefined;
  }

  /** When tick() next has something to do for states (not leases); undefined when nothing is scheduled. */
  nextTransitionAt(): number | undefined {
    let at = this.#wake.peek()?.wakeAtMs ?? Number.POSITIVE_INFINITY;
    for (const rec of this.#degraded) at = Math.min(at, rec.lastErrorAtMs + this.#config.degradedCooldownMs);
    return Number.isFinite(at) ? at : undefined;
  }

  get usableCount(): number {
    return this.#active.size;
  }

  get openLeases(): number {
    return this.#leases.open;
  }

  /** The key a lease was opened on (for reports that name a lease). */
  leaseKeyId(leaseId: string): string | undefined {
    return this.#leases.get(leaseId);
  }

  /** Changes whenever keys join or leave (for structures built over the key set). */
  get keySetVersion(): number {
    return this.#keySetVersion;
  }

  /** Ids of every key that is not draining, in the order they joined. */
  keyIds(): string[] {
    return [...this.#keys.values()]
      .filter((rec) => rec.state !== "Draining")
      .sort((a, b) => a.order - b.order)
      .map((rec) => rec.id);
  }

  /** The key itself, for callers that must use it (probes, the proxy). Never log it. */
  keyMaterial(keyId: string): string | undefined {
    return this.#keys.get(keyId)?.key;
  }

  /** Whether `keyId` is in the active set (usable and within its limits now). */
  isUsable(keyId: string): boolean {
    const rec = this.#keys.get(keyId);
    return rec !== undefined && this.#active.has(rec);
  }

  /** The key the strategy would hand out next (RoundRobin: the ring's position); changes nothing. */
  nextKeyId(): string | undefined {
    this.tick();
    return this.#active.peek()?.id;
  }

  /** Ids of the keys usable now (for session affinity), in a stable order. */
  usableKeyIds(): string[] {
    return [...this.#active.values()].sort((a, b) => a.order - b.order).map((rec) => rec.id);
  }

  /** How many keys are in each state (cheap: no views, no sorting). */
  stateCounts(): Record<KeyState, number> {
    this.tick();
    const counts = Object.fromEntries(KEY_STATES.map((state) => [state, 0])) as Record<KeyState, number>;
    for (const rec of this.#keys.values()) counts[rec.state]++;
    return counts;
  }

  /** Every key as the status shows it (no key material), in the order keys joined. */
  keys(): KeyView[] {
    this.tick();
    const now = this.#clock.now();
    const w = this.#spending.windows(this.#config, now);
    return [...this.#keys.values()]
      .sort((a, b) => a.order - b.order)
      .map((rec) => ({
        id: rec.id,
        masked: rec.masked,
        source: rec.source,
        quotaGroup: rec.quotaGroup,
        state: rec.state,
        untilMs: rec.untilMs || undefined,
        healthScore: rec.healthScore,
        requests: rec.requests,
        errors: rec.errors,
        consecutiveErrors: rec.consecutiveErrors,
        inFlight: Math.max(rec.inFlight, rec.sharedInFlight),
        lastUsedMs: rec.lastUsedMs || undefined,
        lastError: rec.lastError,
        weight: rec.weight,
        sinceMs: rec.stateSinceMs || undefined,
        ...(rec.state === "Draining"
          ? {
              stateBeforeDrain: rec.stateBeforeDrain,
              stateBeforeDrainUntilMs: rec.stateBeforeDrainUntilMs || undefined,
            }
          : {}),
        ...(rec.disabledBySpec ? { disabledBySpec: true } : {}),
        latencyMs: rec.latencyMs === undefined ? undefined : Math.round(rec.latencyMs),
        ...(rec.stateReason ? { reason: rec.stateReason } : {}),
        ...this.#keyMoney(rec, w, now),
      }));
  }

  #keyMoney(rec: KeyRecord, w: BudgetWindows, now: number) {
    const totals = rec.spend.totals(w);
    const forecast = keyForecast(rec, this.#config, w, now);
    return {
      costTodayUSD: totals.dayUSD,
      costThisMonthUSD: totals.monthUSD,
      ...(rec.budget ? { budget: budgetStatus(rec.budget, totals, w) } : {}),
      ...(forecast ? { forecast } : {}),
    };
  }

  /** All state as plain JSON (no key material), for the status subresource or a state file. */
  snapshot(): EngineSnapshot {
    const spend = this.#spending.snapshot();
    return {
      version: SNAPSHOT_VERSION,
      takenAtMs: this.#clock.now(),
      keys: [...this.#keys.values()].map(snapshotOf),
      ...(spend ? { spend } : {}),
    };
  }

  /**
   * Restores state saved by snapshot(): applied to keys present now, and kept for keys that
   * arrive later (restore first, then setKeys, is the usual order after a restart).
   */
  restore(snapshot: EngineSnapshot): void {
    const now = this.#clock.now();
    this.#restoreSpend(snapshot, now);
    for (const saved of snapshot.keys) {
      const rec = this.#keys.get(saved.id);
      if (rec) {
        applySnapshot(rec, saved);
        this.#applySpecDisabled(rec, now);
        this.#place(rec, now);
      } else {
        this.#pending.set(saved.id, saved);
      }
    }
    this.tick();
  }

  /**
   * Merges another replica's view of the keys (the leader's status) into this engine, keeping the
   * newer fact per key (see adoptRemoteState): a follower stops handing out a key the leader saw
   * rate-limited or invalid, and a new leader starts from what the old one knew without losing
   * what it learned itself. Counters keep the larger count. Keys not here yet are kept for when
   * they arrive, as restore() does. Transitions it makes are emitted with `merged: true`.
   * `authoritative`: the snapshot is a shared store's, which already kept the newer fact per
   * key; its states are taken whatever their `since` (see adoptRemoteState).
   */
  merge(snapshot: EngineSnapshot, options: { authoritative?: boolean } = {}): void {
    const now = this.#clock.now();
    this.#restoreSpend(snapshot, now);
    for (const saved of snapshot.keys) {
      const rec = this.#keys.get(saved.id);
      if (!rec) {
        const pending = this.#pending.get(saved.id);
        if (!pending || (saved.sinceMs ?? 0) >= (pending.sinceMs ?? 0)) this.#pending.set(saved.id, saved);
        continue;
      }
      rec.requests = Math.max(rec.requests, saved.requests);
      rec.errors = Math.max(rec.errors, saved.errors);
      rec.lastUsedMs = Math.max(rec.lastUsedMs, saved.lastUsedMs ?? 0);
      if (saved.lastError && saved.lastError.atMs > (rec.lastError?.atMs ?? 0))
        rec.lastError = { ...saved.lastError };
      // The spec is the authority on a key it disables; another view cannot turn it on.
      if (rec.disabledBySpec) continue;
      const transition = adoptRemoteState(
        rec,
        {
          state: saved.state,
          sinceMs: saved.sinceMs ?? 0,
          untilMs: saved.untilMs ?? 0,
          consecutiveErrors: saved.consecutiveErrors,
          lastErrorAtMs: saved.lastErrorAtMs ?? 0,
          reason: saved.reason,
        },
        now,
        options.authoritative,
      );
      this.#emit(rec, transition, now, true);
      this.#place(rec, now);
    }
    this.tick();
  }

  /** Spend a snapshot kept for the windows still current: counters take the larger amount. */
  #restoreSpend(snapshot: EngineSnapshot, now: number) {
    const w = this.#spending.windows(this.#config, now);
    if (snapshot.spend) this.#spending.spend.restore(snapshot.spend, w);
    for (const saved of snapshot.keys) {
      const rec = saved.spend ? this.#keys.get(saved.id) : undefined;
      if (rec && saved.spend) rec.spend.restore(saved.spend, w);
    }
  }

  // --- placement --------------------------------------------------------------------------

  /** Puts a key where it belongs now: active, waiting for a time, or out until an event. */
  #place(rec: KeyRecord, now: number): void {
    if (!this.#keys.has(rec.id)) return;
    if (rec.state === "Degraded") this.#degraded.add(rec);
    else this.#degraded.delete(rec);

    let at = stateUsableAt(rec);
    if (rec.state === "Draining") at = rec.untilMs;
    else if (Number.isFinite(at)) {
      // Shared limits: the store enforces the windows; holds carry what it said.
      if (!this.#sharedLimits) {
        at = Math.max(at, windowsRoomAt(rec.windows, now));
        const group = rec.quotaGroup ? this.#groups.get(rec.quotaGroup) : undefined;
        if (group) at = Math.max(at, windowsRoomAt(group.windows, now));
      }
      // A cooldown's end stays a transition of its own: the hold counts once the state is usable.
      if (rec.heldUntilMs > at && rec.isUsableState()) at = rec.heldUntilMs;
    }
    if (at <= now && rec.isUsableState()) {
      this.#wake.remove(rec);
      rec.wakeAtMs = Number.POSITIVE_INFINITY;
      if (!this.#active.has(rec)) {
        this.#updateLoad(rec, now);
        rec.headroom = this.#headroom(rec, now);
        this.#active.add(rec);
      }
      return;
    }
    this.#active.remove(rec);
    rec.wakeAtMs = at;
    if (Number.isFinite(at)) {
      if (this.#wake.has(rec)) this.#wake.update(rec);
      else this.#wake.push(rec);
    } else {
      this.#wake.remove(rec);
    }
  }

  #replaceAll() {
    const now = this.#clock.now();
    for (const rec of this.#keys.values()) {
      rec.windows = limitWindows(rec.limits);
      this.#place(rec, now);
    }
  }

  /** Made once, so expiring leases allocates nothing. */
  readonly #leaseExpired = (keyId: string, now: number) => {
    const rec = this.#keys.get(keyId);
    if (rec) this.#leaseEnded(rec, now);
  };

  /** A lease closed or expired: one fewer in flight, and the strategy re-ranks the key. */
  #leaseEnded(rec: KeyRecord, now: number) {
    rec.inFlight = Math.max(0, rec.inFlight - 1);
    this.#updateLoad(rec, now);
    if (this.#active.has(rec)) this.#active.changed(rec);
  }

  #updateLoad(rec: KeyRecord, now: number) {
    rec.load = Math.max(rec.inFlight, rec.sharedInFlight) + windowsUtilization(rec.windows, now);
  }

  #updateEntry(rec: KeyRecord, entry: KeyEntry) {
    rec.source = entry.source;
    rec.budget = entry.budget;
    const multiplier = entry.costMultiplier ?? 1;
    if (multiplier !== rec.costMultiplier) {
      rec.costMultiplier = multiplier;
      if (this.#active.has(rec)) this.#active.changed(rec);
    }
    const weight = entry.weight ?? this.#config.defaultWeight;
    if (weight !== rec.weight) {
      rec.weight = weight;
      if (this.#active.has(rec)) this.#active.changed(rec);
    }
    const limits = entry.limits ?? this.#config.defaultLimits;
    if (JSON.stringify(limits) !== JSON.stringify(rec.limits)) {
      rec.limits = limits;
      rec.windows = limitWindows(limits);
    }
    const group = entry.quotaGroup ?? this.#config.defaultQuotaGroup;
    if (group !== rec.quotaGroup) {
      this.#leaveGroup(rec);
      rec.quotaGroup = group;
      this.#joinGroup(rec);
    }
  }

  #joinGroup(rec: KeyRecord) {
    if (!rec.quotaGroup) return;
    let group = this.#groups.get(rec.quotaGroup);
    if (!group) {
      group = { name: rec.quotaGroup, limits: undefined, windows: limitWindows(undefined), keys: new Set() };
      this.#groups.set(group.name, group);
      this.#syncGroupLimits(group);
    }
    group.keys.add(rec);
  }

  #leaveGroup(rec: KeyRecord) {
    const group = rec.quotaGroup ? this.#groups.get(rec.quotaGroup) : undefined;
    if (!group) return;
    group.keys.delete(rec);
    if (group.keys.size === 0) this.#groups.delete(group.name);
  }

  #syncGroupLimits(group: QuotaGroupState) {
    const limits = this.#config.quotaGroupLimits.get(group.name);
    if (JSON.stringify(limits) === JSON.stringify(group.limits)) return;
    group.limits = limits;
    group.windows = limitWindows(limits);
  }

  #removeKey(rec: KeyRecord) {
    this.#keySetVersion++;
    this.#active.remove(rec);
    this.#wake.remove(rec);
    this.#degraded.delete(rec);
    this.#leaveGroup(rec);
    this.#leases.forgetKey(rec.id);
    this.#keys.delete(rec.id);
  }

  #emit(rec: KeyRecord, transition: Transition | undefined, now: number, merged = false) {
    if (!transition) return;
    // A merged state keeps the time the other replica entered it (adoptRemoteState set it).
    if (!merged) rec.stateSinceMs = now;
    if (!this.#onTransition) return;
    this.#onTransition({
      ...transition,
      ...(merged ? { merged } : {}),
      keyId: rec.id,
      masked: rec.masked,
      source: rec.source,
      atMs: now,
      untilMs: rec.untilMs,
    });
  }
}

function snapshotOf(rec: KeyRecord): KeySnapshot {
  return {
    id: rec.id,
    state: rec.state,
    ...(rec.untilMs ? { untilMs: rec.untilMs } : {}),
    ...(rec.stateSinceMs ? { sinceMs: rec.stateSinceMs } : {}),
    ...(rec.stateBeforeDrain ? { stateBeforeDrain: rec.stateBeforeDrain } : {}),
    ...(rec.stateBeforeDrainUntilMs ? { stateBeforeDrainUntilMs: rec.stateBeforeDrainUntilMs } : {}),
    ...(rec.disabledBySpec ? { disabledBySpec: true as const } : {}),
    healthScore: rec.healthScore,
    ...(rec.latencyMs !== undefined ? { latencyMs: rec.latencyMs } : {}),
    requests: rec.requests,
    errors: rec.errors,
    consecutiveErrors: rec.consecutiveErrors,
    ...(rec.lastUsedMs ? { lastUsedMs: rec.lastUsedMs } : {}),
    ...(rec.lastErrorAtMs ? { lastErrorAtMs: rec.lastErrorAtMs } : {}),
    ...(rec.lastError ? { lastError: { ...rec.lastError } } : {}),
    ...(rec.stateReason ? { reason: rec.stateReason } : {}),
    ...spendOf(rec),
  };
}

function spendOf(rec: KeyRecord): { spend?: NonNullable<KeySnapshot["spend"]> } {
  const spend = rec.spend.snapshot();
  return spend ? { spend } : {};
}

function applySnapshot(rec: KeyRecord, saved: KeySnapshot) {
  rec.state = saved.state;
  rec.stateSinceMs = saved.sinceMs ?? 0;
  rec.untilMs = saved.untilMs ?? 0;
  rec.stateBeforeDrain = saved.stateBeforeDrain;
  rec.stateBeforeDrainUntilMs = saved.stateBeforeDrainUntilMs ?? 0;
  rec.disabledBySpec = saved.disabledBySpec === true;
  rec.health = saved.healthScore / 100;
  rec.latencyMs = saved.latencyMs;
  rec.requests = saved.requests;
  rec.errors = saved.errors;
  rec.consecutiveErrors = saved.consecutiveErrors;
  rec.lastUsedMs = saved.lastUsedMs ?? 0;
  rec.lastErrorAtMs = saved.lastErrorAtMs ?? 0;
  rec.lastError = saved.lastError ? { ...saved.lastError } : undefined;
  rec.stateReason = saved.reason ?? "";
}
