/**
 * One key's record and its state machine. Transitions are driven by outcomes (applyOutcome)
 * and by time (refreshState); both are pure functions of the record, the config and `now`.
 */
import type { BudgetLimits, KeyState, Limits } from "../api/keypool.ts";
import type { PoolConfig } from "./config.ts";
import { KeyRates, NO_RATES, type RatesView } from "./forecast.ts";
import { SpendCounter } from "./spend.ts";
import { keyId, maskKey } from "./identity.ts";
import { OutcomeKind, type Outcome, type RateLimitInfo } from "./outcome.ts";
import { createWindow, type UsageWindow } from "./window.ts";

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Weight of the newest outcome in the health score's moving average. */
const HEALTH_ALPHA = 0.1;
/**
 * Weight of the newest call's latency in the key's average: a key that turns slow shows it
 * after a few calls (half the gap closed in 3, nine tenths in 10), one slow call does not.
 */
export const LATENCY_ALPHA = 0.2;

/** A key as a source delivers it. */
export interface KeyEntry {
  key: string;
  /** Where it came from: secret/<name>#<entry>, env/<VAR>, ... */
  source: string;
  weight?: number;
  limits?: Limits;
  quotaGroup?: string;
  /** Multiplies the price list for this key's calls (keys[].costMultiplier); 1 when absent. */
  costMultiplier?: number;
  /** The key's own spend limits (keys[].budget). */
  budget?: BudgetLimits;
}

/** Client-side limit windows of a key or a quota group. */
export interface LimitWindows {
  readonly requests: readonly UsageWindow[];
  readonly tokens: UsageWindow | undefined;
}

/** The windows of every key without limits: one shared value, not an object and array per key. */
const NO_WINDOWS: LimitWindows = Object.freeze({ requests: Object.freeze([]), tokens: undefined });

export function limitWindows(limits: Limits | undefined): LimitWindows {
  if (!limits?.requestsPerMinute && !limits?.requestsPerDay && !limits?.tokensPerMinute) return NO_WINDOWS;
  const requests: UsageWindow[] = [];
  if (limits?.requestsPerMinute) requests.push(createWindow(limits.requestsPerMinute, MINUTE_MS));
  if (limits?.requestsPerDay) requests.push(createWindow(limits.requestsPerDay, DAY_MS));
  const tokens = limits?.tokensPerMinute ? createWindow(limits.tokensPerMinute, MINUTE_MS, false) : undefined;
  return { requests, tokens };
}

/** Epoch ms from which the windows have room for one more request (now when they have). */
export function windowsRoomAt(w: LimitWindows, now: number): number {
  let at = now;
  for (const window of w.requests) at = Math.max(at, window.roomAt(now));
  if (w.tokens) at = Math.max(at, w.tokens.roomAt(now));
  return at;
}

/** Highest fraction of any limit in use, 0..1 (0 when unlimited). */
export function windowsUtilization(w: LimitWindows, now: number): number {
  let u = 0;
  for (const window of w.requests) u = Math.max(u, window.used(now) / window.limit);
  if (w.tokens) u = Math.max(u, w.tokens.used(now) / w.tokens.limit);
  return Math.min(1, u);
}

export interface LastError {
  code?: number;
  reason: string;
  atMs: number;
}

export const USABLE_STATES: ReadonlySet<KeyState> = new Set<KeyState>(["Healthy", "Degraded"]);

export class KeyRecord {
  readonly id: string;
  readonly key: string;
  readonly masked: string;
  /** Insertion order: the tie-breaker that keeps strategies deterministic. */
  readonly order: number;
  source: string;
  weight: number;
  limits: Limits | undefined;
  quotaGroup: string | undefined;
  windows: LimitWindows;
  costMultiplier: number;
  budget: BudgetLimits | undefined;

  state: KeyState = "Healthy";
  /** Why the key is in its state (the transition's reason); "" when not known. */
  stateReason = "";
  /** When the key entered `state` (epoch ms; 0: not known, e.g. restored from an older status). */
  stateSinceMs = 0;
  /** End of RateLimited / QuotaExhausted / Draining; 0 when the state has no end by time. */
  untilMs = 0;
  /** The state to return to when a Draining key comes back into its Secret. */
  stateBeforeDrain: KeyState | undefined;
  stateBeforeDrainUntilMs = 0;
  /**
   * spec.disabledKeys lists the key: it is Disabled (or returns to Disabled from Draining) and
   * nothing but the spec turns it on again (engine setDisabledKeys).
   */
  disabledBySpec = false;
  consecutiveErrors = 0;
  lastErrorAtMs = 0;
  /** Exponentially weighted success ratio, 0..1. */
  health = 1;
  /** Exponentially weighted call latency, ms; undefined until a call reported one. */
  latencyMs: number | undefined;
  requests = 0;
  errors = 0;
  lastUsedMs = 0;
  /** Monotonic dispense sequence number of the last use (exact LRU order within a millisecond). */
  lastUseSeq = 0;
  lastError: LastError | undefined;
  inFlight = 0;
  /**
   * Calls in flight on this key over all replicas, from the shared store (engine
   * setSharedInFlight); 0 without one. Load and views use the larger of it and `inFlight`.
   */
  sharedInFlight = 0;
  /**
   * Not handed out before this time (epoch ms; 0: no hold): the shared store said a limit window
   * of the key or its quota group is full until then (engine holdUntil). Not a state: no
   * transition, views show the state unchanged, as a full local window does.
   */
  heldUntilMs = 0;
  /** The provider's rate-limit headers on the last answer that carried any. */
  rateLimit: RateLimitInfo | undefined;
  /** What the key cost this budget day and month (pricing.ts, spend.ts). */
  readonly spend = new SpendCounter();
  /**
   * Consumption and call rates (forecast.ts), made at the key's first call: the keys of an idle
   * pool, most keys of a large cluster, hold none (five averages were a third of an idle key).
   */
  #rates: KeyRates | undefined;
  /**
   * spec.forecast.balance: what the key has left of its tightest day-long limit (requestsPerDay,
   * daily or monthly budget), in calls; scales its weight. 1 without balance.
   */
  headroom = 1;

  // Bookkeeping of the engine's structures.
  activeIndex = -1;
  wakeIndex = -1;
  wakeAtMs = Number.POSITIVE_INFINITY;
  /** LeastLoaded: load when last computed. */
  load = 0;
  /** Weighted: virtual time of the next turn. */
  pass = 0;
  /** RoundRobin: ring neighbours. */
  prev: KeyRecord | undefined;
  next: KeyRecord | undefined;

  constructor(entry: KeyEntry, order: number, config: PoolConfig) {
    this.id = keyId(entry.key);
    this.key = entry.key;
    this.masked = maskKey(entry.key);
    this.order = order;
    this.source = entry.source;
    this.weight = entry.weight ?? config.defaultWeight;
    this.limits = entry.limits ?? config.defaultLimits;
    this.quotaGroup = entry.quotaGroup ?? config.defaultQuotaGroup;
    this.windows = limitWindows(this.limits);
    this.costMultiplier = entry.costMultiplier ?? 1;
    this.budget = entry.budget;
  }

  /** The rates to read: all zero for a key that has had no call yet. */
  get rates(): RatesView {
    return this.#rates ?? NO_RATES;
  }

  /** The rates to record a call into (made on first use). */
  recordRates(): KeyRates {
    return (this.#rates ??= new KeyRates());
  }

  get healthScore(): number {
    return Math.round(this.health * 100);
  }

  isUsableState(): boolean {
    return USABLE_STATES.has(this.state);
  }
}

export interface Transition {
  from: KeyState;
  to: KeyState;
  reason: string;
}

function moveTo(rec: KeyRecord, to: KeyState, reason: string, untilMs = 0): Transition | undefined {
  const from = rec.state;
  rec.untilMs = untilMs;
  if (from === to) return undefined;
  rec.state = to;
  rec.stateReason = reason;
  return { from, to, reason };
}

/** Folds a call's latency into the key's average; the first one starts it. */
function recordLatency(rec: KeyRecord, latencyMs: number | undefined) {
  if (latencyMs === undefined || !Number.isFinite(latencyMs) || latencyMs < 0) return;
  rec.latencyMs =
    rec.latencyMs === undefined ? latencyMs : rec.latencyMs + LATENCY_ALPHA * (latencyMs - rec.latencyMs);
}

function recordHealth(rec: KeyRecord, success: boolean) {
  rec.health = rec.health * (1 - HEALTH_ALPHA) + (success ? HEALTH_ALPHA : 0);
}

function recordError(rec: KeyRecord, outcome: Outcome, now: number, countsAsError: boolean) {
  rec.lastError = {
    ...(outcome.statusCode !== undefined ? { code: outcome.statusCode } : {}),
    reason: outcome.reason ?? outcome.kind,
    atMs: now,
  };
  if (countsAsError) rec.errors++;
}

/**
 * How restrictive a state is: of two views of a key that entered different states at the same
 * moment, the more restrictive one is kept (a key is never handed out on a tie).
 */
const RESTRICTIVENESS: Record<KeyState, number> = {
  Healthy: 0,
  Degraded: 1,
  RateLimited: 2,
  QuotaExhausted: 3,
  Invalid: 4,
  Disabled: 5,
  Draining: 6,
};

/** What another replica's view says of one key (its state and when it entered it). */
export interface RemoteKeyState {
  state: KeyState;
  sinceMs: number;
  untilMs: number;
  consecutiveErrors: number;
  lastErrorAtMs: number;
  /** Why the other replica's key is in its state, when it said. */
  reason?: string | undefined;
}

/**
 * Takes another replica's view of a key where it is the newer fact: the state entered later wins
 * (a tie goes to the more restrictive state); the same cooldown on both sides keeps the later
 * deadline. A cooldown that is already over is not taken (time alone ends it here too). Draining
 * is this replica's own knowledge of its key sources, so it is neither taken nor overridden.
 * An authoritative view (a shared store) is taken whatever its `since`: a key that just joined
 * this replica (Healthy since it joined) takes the cooldown the store kept through a restart.
 */
export function adoptRemoteState(
  rec: KeyRecord,
  remote: RemoteKeyState,
  now: number,
  /** The remote view is the authority (a shared store, which already kept the newer fact). */
  authoritative = false,
): Transition | undefined {
  if (rec.state === "Draining" || remote.state === "Draining") return undefined;
  const cooling = remote.state === "RateLimited" || remote.state === "QuotaExhausted";
  if (remote.state === rec.state) {
    if (cooling) rec.untilMs = Math.max(rec.untilMs, remote.untilMs);
    if (remote.state === "Degraded") rec.lastErrorAtMs = Math.max(rec.lastErrorAtMs, remote.lastErrorAtMs);
    return undefined;
  }
  const newer =
    remote.sinceMs > rec.stateSinceMs ||
    (remote.sinceMs === rec.stateSinceMs && RESTRICTIVENESS[remote.state] > RESTRICTIVENESS[rec.state]);
  if (!(newer || authoritative) || (cooling && remote.untilMs <= now)) return undefined;
  const transition = moveTo(
    rec,
    remote.state,
    remote.reason ?? "leader_status",
    cooling ? remote.untilMs : 0,
  );
  rec.stateSinceMs = remote.sinceMs;
  if (remote.state === "Degraded") {
    rec.consecutiveErrors = Math.max(rec.consecutiveErrors, remote.consecutiveErrors);
    rec.lastErrorAtMs = Math.max(rec.lastErrorAtMs, remote.lastErrorAtMs);
  }
  return transition;
}

/** States a rate-limit or quota answer may not override: they are about the key itself or the operator. */
const STICKY: ReadonlySet<KeyState> = new Set<KeyState>(["Invalid", "Disabled", "Draining"]);

/**
 * Puts a key into a cooldown state until `untilMs`. A second cooldown during the first extends it
 * to the later deadline and never shortens it; QuotaExhausted outranks RateLimited.
 */
export function coolDown(
  rec: KeyRecord,
  to: "RateLimited" | "QuotaExhausted",
  untilMs: number,
  reason: string,
): Transition | undefined {
  if (STICKY.has(rec.state)) return undefined;
  if (rec.state === "QuotaExhausted" && to === "RateLimited") {
    rec.untilMs = Math.max(rec.untilMs, untilMs);
    return undefined;
  }
  const until = rec.state === to ? Math.max(rec.untilMs, untilMs) : untilMs;
  return moveTo(rec, to, reason, until);
}

export type OutcomeOrigin = "report" | "probe";

/**
 * Applies what one call (or probe) said about the key. Returns the transition, if any.
 * Group-wide effects (quota groups) are the engine's job; this touches only `rec`.
 */
export function applyOutcome(
  rec: KeyRecord,
  outcome: Outcome,
  config: PoolConfig,
  now: number,
  origin: OutcomeOrigin = "report",
): Transition | undefined {
  const reason = outcome.reason ?? outcome.kind;
  if (outcome.kind !== OutcomeKind.RequestError) recordLatency(rec, outcome.latencyMs);
  switch (outcome.kind) {
    case OutcomeKind.Success: {
      rec.consecutiveErrors = 0;
      recordHealth(rec, true);
      const soft = applyRateLimitHeaders(rec, outcome, now);
      if (soft) return soft;
      // An alert (error rate, latency) is about a trend: one success does not end it, a quiet period does.
      if (rec.state === "Degraded" && !ALERT_REASONS.has(rec.stateReason))
        return moveTo(rec, "Healthy", "succeeded");
      // Only a probe proves that an Invalid key works again: a late report of a call made before
      // the key was marked says nothing about now. A QuotaExhausted key waits for its time even
      // then: a list-models probe succeeds without credit, so it cannot prove quota is back.
      if (origin === "probe" && rec.state === "Invalid") return moveTo(rec, "Healthy", "probe_succeeded");
      return undefined;
    }
    case OutcomeKind.RateLimited: {
      recordError(rec, outcome, now, true);
      const until =
        outcome.untilMs && outcome.untilMs > now ? outcome.untilMs : now + config.rateLimitCooldownMs;
      return coolDown(rec, "RateLimited", until, reason);
    }
    case OutcomeKind.QuotaExhausted: {
      recordError(rec, outcome, now, true);
      recordHealth(rec, false);
      const until = outcome.untilMs && outcome.untilMs > now ? outcome.untilMs : now + config.quotaCooldownMs;
      return coolDown(rec, "QuotaExhausted", until, reason);
    }
    case OutcomeKind.InvalidKey: {
      recordError(rec, outcome, now, true);
      recordHealth(rec, false);
      if (rec.state === "Disabled" || rec.state === "Draining") return undefined;
      return moveTo(rec, "Invalid", reason);
    }
    case OutcomeKind.ServerError:
    case OutcomeKind.NetworkError: {
      recordError(rec, outcome, now, true);
      recordHealth(rec, false);
      rec.consecutiveErrors++;
      rec.lastErrorAtMs = now;
      if (rec.state === "Healthy" && rec.consecutiveErrors >= config.failureThreshold) {
        return moveTo(rec, "Degraded", reason);
      }
      return undefined;
    }
    case OutcomeKind.Degraded: {
      recordError(rec, outcome, now, true);
      recordHealth(rec, false);
      rec.consecutiveErrors++;
      rec.lastErrorAtMs = now;
      return rec.state === "Healthy" ? moveTo(rec, "Degraded", reason) : undefined;
    }
    case OutcomeKind.ProviderOverloaded:
      // The provider's trouble, not the key's: remembered, not held against it.
      recordError(rec, outcome, now, false);
      return undefined;
    case OutcomeKind.RequestError:
      return undefined;
  }
}

/**
 * A success that says the key has nothing left until a reset (x-ratelimit-remaining-requests: 0)
 * rests the key until then, so the pool avoids the 429 instead of provoking it.
 */
function applyRateLimitHeaders(rec: KeyRecord, outcome: Outcome, now: number): Transition | undefined {
  const rl = outcome.rateLimit;
  if (!rl) return undefined;
  let until = 0;
  if (rl.remainingRequests === 0 && rl.resetRequestsAtMs && rl.resetRequestsAtMs > now)
    until = rl.resetRequestsAtMs;
  if (rl.remainingTokens === 0 && rl.resetTokensAtMs && rl.resetTokensAtMs > now) {
    until = Math.max(until, rl.resetTokensAtMs);
  }
  return until ? coolDown(rec, "RateLimited", until, "remaining_zero") : undefined;
}

/** Time-driven transitions: cooldowns that ended, Degraded keys quiet for degradedCooldown. */
export function refreshState(rec: KeyRecord, config: PoolConfig, now: number): Transition | undefined {
  switch (rec.state) {
    case "RateLimited":
    case "QuotaExhausted":
      return now >= rec.untilMs ? moveTo(rec, "Healthy", "cooldown_ended") : undefined;
    case "Degraded":
      if (now - rec.lastErrorAtMs >= config.degradedCooldownMs) {
        rec.consecutiveErrors = 0;
        return moveTo(rec, "Healthy", "quiet_period_ended");
      }
      return undefined;
    default:
      return undefined;
  }
}

/** When the key's state lets it be used again by time alone (Infinity: never by time). */
export function stateUsableAt(rec: KeyRecord): number {
  if (rec.isUsableState()) return 0;
  if (rec.state === "RateLimited" || rec.state === "QuotaExhausted") return rec.untilMs;
  return Number.POSITIVE_INFINITY;
}

/**
 * Explicit operator action: forget what the key did wrong. A Draining key stays Draining (it is
 * no longer in its source) but comes back Healthy if it returns.
 */
export function resetKey(rec: KeyRecord, reason = "reset"): Transition | undefined {
  rec.consecutiveErrors = 0;
  rec.health = Math.max(rec.health, 0.5);
  if (rec.state === "Draining") {
    rec.stateBeforeDrain = "Healthy";
    rec.stateBeforeDrainUntilMs = 0;
    return undefined;
  }
  return moveTo(rec, "Healthy", reason);
}

/** An operator switched the key off (the admin action, or spec.disabledKeys). Draining stays Draining. */
export function disableKey(rec: KeyRecord, reason: string): Transition | undefined {
  if (rec.state === "Disabled" || rec.state === "Draining") return undefined;
  return moveTo(rec, "Disabled", reason);
}

export function startDraining(rec: KeyRecord, untilMs: number): Transition | undefined {
  if (rec.state === "Draining") return undefined;
  rec.stateBeforeDrain = rec.state;
  const keepUntil = rec.untilMs;
  const t = moveTo(rec, "Draining", "removed_from_source", untilMs);
  rec.stateBeforeDrainUntilMs = keepUntil;
  return t;
}

/** A Draining key that is back in its Secret resumes the state it had (a cooldown keeps its end). */
export function stopDraining(rec: KeyRecord): Transition | undefined {
  if (rec.state !== "Draining") return undefined;
  const to = rec.stateBeforeDrain ?? "Healthy";
  const t = moveTo(rec, to, "returned_to_source", rec.stateBeforeDrainUntilMs);
  rec.stateBeforeDrain = undefined;
  rec.stateBeforeDrainUntilMs = 0;
  return t;
}

/** Reasons of the Degraded states alerts cause (applyAlerts). */
const ALERT_REASONS: ReadonlySet<string> = new Set(["error_rate_high", "latency_high"]);

/** Outcomes the error-rate alert counts as failed calls: the key's or its account's trouble. */
const FAILED_CALL: ReadonlySet<string> = new Set<string>([
  OutcomeKind.ServerError,
  OutcomeKind.NetworkError,
  OutcomeKind.Degraded,
  OutcomeKind.InvalidKey,
]);

/**
 * The alerts beyond consecutive failures (spec.alerts): a Healthy key whose share of failed calls
 * over errorRateWindow (exponentially weighted, once errorRateMinCalls calls are in it) exceeds
 * errorRatePercent, or whose average latency exceeds latencyThreshold, turns Degraded with
 * reason error_rate_high or latency_high. A slow call counts as trouble for degradedCooldown, so
 * the key stays Degraded while it stays slow. Call after applyOutcome when it made no transition.
 */
export function applyAlerts(
  rec: KeyRecord,
  outcome: Outcome,
  config: PoolConfig,
  now: number,
): Transition | undefined {
  if (outcome.kind === OutcomeKind.RequestError || outcome.kind === OutcomeKind.ProviderOverloaded)
    return undefined;
  const { errorRatePercent, errorRateWindowMs, errorRateMinCalls, latencyThresholdMs } = config.alerts;
  const failed = FAILED_CALL.has(outcome.kind);
  const rates = rec.recordRates();
  rates.calls.add(now, 1, errorRateWindowMs);
  if (failed) rates.failures.add(now, 1, errorRateWindowMs);
  const slow = rec.latencyMs !== undefined && rec.latencyMs > latencyThresholdMs;
  if (slow && outcome.latencyMs !== undefined && outcome.latencyMs > latencyThresholdMs)
    rec.lastErrorAtMs = now;
  if (rec.state !== "Healthy") return undefined;
  // Calls in the window: the weighted rate times the window (what a steady rate would have put there).
  const calls = rec.rates.calls.at(now, errorRateWindowMs) * errorRateWindowMs;
  if (failed && calls >= errorRateMinCalls) {
    const share = rec.rates.failures.at(now, errorRateWindowMs) / rec.rates.calls.at(now, errorRateWindowMs);
    if (share * 100 > errorRatePercent) {
      rec.lastErrorAtMs = now;
      return moveTo(rec, "Degraded", "error_rate_high");
    }
  }
  if (slow) {
    rec.lastErrorAtMs = now;
    return moveTo(rec, "Degraded", "latency_high");
  }
  return undefined;
}

/** The error-rate alert's measure: the share of failed calls in the window, 0..1 (0 before any call). */
export function errorShare(rec: KeyRecord, config: PoolConfig, now: number): number {
  const calls = rec.rates.calls.at(now, config.alerts.errorRateWindowMs);
  return calls > 0 ? rec.rates.failures.at(now, config.alerts.errorRateWindowMs) / calls : 0;
}
