/**
 * Dispensing and reporting, independent of HTTP: pick a key (session affinity, strategy,
 * fallback pools), turn a report into an outcome (provider classification), describe a pool
 * without key material. The express routes (dispenser.ts, compat.ts) are thin over this.
 */
import type { KeyState } from "../api/keypool.ts";
import { type PoolRef, type PoolRegistry, type PoolRuntime, refKey } from "../pool/registry.ts";
import type { Clock } from "../pool/clock.ts";
import type { Dispensed } from "../pool/engine.ts";
import type { CallUsage, Outcome } from "../pool/outcome.ts";
import { getProvider } from "../providers/index.ts";
import { type Confirmed, type KeyCoordinator, localCoordinator } from "../state/coordinator.ts";
import type { SessionAffinity } from "./affinity.ts";
import { KeyPoolError } from "./errors.ts";
import type { Forecast } from "../pool/forecast.ts";
import type { BudgetStatus, BudgetUse } from "../pool/spending.ts";

export interface DispenseResult extends Dispensed {
  /** The pool that served: the one asked for, or a fallback. */
  servedBy: PoolRef;
  /** Its runtime (provider, spec, engine to report to). */
  runtime: PoolRuntime;
  /** Pools tried before, when a fallback served. */
  fallbackFrom: PoolRef[];
}

export function requirePool(registry: PoolRegistry, ref: PoolRef): PoolRuntime {
  const runtime = registry.get(ref);
  if (!runtime) throw new KeyPoolError("pool_not_found", `KeyPool ${refKey(ref)} not found`);
  return runtime;
}

export interface DispenseOptions {
  session?: string;
  /** Key ids not to hand out (the proxy's failover: keys this call already tried). */
  exclude?: ReadonlySet<string>;
  /** Which fallback pools may serve (the proxy takes only pools of the same provider). */
  accept?: (runtime: PoolRuntime) => boolean;
  /** The state store's side of a pick (default: the memory store, nothing to ask). */
  coordinator?: KeyCoordinator;
  /**
   * Told how each dispense of a pool that exists ended (keypool_dispenses_total). Unknown pools
   * are not counted: callers choose the names, and must not choose series.
   */
  count?: ((ref: PoolRef, outcome: DispenseOutcome) => void) | undefined;
}

/** How a dispense ended, as keypool_dispenses_total's `outcome` label says it. */
export type DispenseOutcome =
  /** The pool asked for handed out a key. */
  | "dispensed"
  /** A pool of its fallback chain did. */
  | "fallback"
  /** No pool of the chain had a usable key. */
  | "no_usable_key"
  /** The shared state store was unreachable and --state-store-failure is closed. */
  | "state_store_unavailable"
  /** Anything else (a bug, or a store error): logged where it is answered. */
  | "error";

function failedOutcome(err: unknown): DispenseOutcome {
  if (err instanceof KeyPoolError && (err.code === "no_usable_key" || err.code === "state_store_unavailable"))
    return err.code;
  return "error";
}

/** What asking one pool gave: a key, or when its earliest key becomes usable. */
interface PoolAnswer {
  picked: Dispensed | undefined;
  retryAtMs: number | undefined;
}

/**
 * Hands out a key of `ref`, or of its fallback chain when it has none usable. A fallback cycle
 * (A -> B -> A) is refused: the chain stops at the first pool seen twice. Synchronous with the
 * memory store (the dispenser's hot path takes no promise tick); a promise with a shared store,
 * whose reservation is a round trip.
 */
export function dispense(
  registry: PoolRegistry,
  affinity: SessionAffinity,
  clock: Clock,
  ref: PoolRef,
  options: DispenseOptions = {},
): DispenseResult | Promise<DispenseResult> {
  const first = requirePool(registry, ref);
  const count = options.count;
  if (!count) return dispenseFrom(registry, affinity, clock, first, options);
  try {
    const result = dispenseFrom(registry, affinity, clock, first, options);
    if (result instanceof Promise) return result.then(countedResult(count, ref), countedFailure(count, ref));
    count(ref, servedOutcome(result));
    return result;
  } catch (err) {
    return countedFailure(count, ref)(err);
  }
}

const servedOutcome = (result: DispenseResult): DispenseOutcome =>
  result.fallbackFrom.length ? "fallback" : "dispensed";

type Count = NonNullable<DispenseOptions["count"]>;

const countedResult = (count: Count, ref: PoolRef) => (result: DispenseResult) => {
  count(ref, servedOutcome(result));
  return result;
};

const countedFailure =
  (count: Count, ref: PoolRef) =>
  (err: unknown): never => {
    count(ref, failedOutcome(err));
    throw err;
  };

/** dispense() from a pool that exists, uncounted. */
function dispenseFrom(
  registry: PoolRegistry,
  affinity: SessionAffinity,
  clock: Clock,
  first: PoolRuntime,
  options: DispenseOptions,
): DispenseResult | Promise<DispenseResult> {
  const tried: PoolRef[] = [];
  const seen = new Set<PoolRuntime>();
  let earliest: number | undefined;
  const settle = (runtime: PoolRuntime, answer: PoolAnswer): DispenseResult | undefined => {
    if (answer.picked) {
      registry.touched(runtime.ref);
      return { ...answer.picked, servedBy: runtime.ref, runtime, fallbackFrom: tried };
    }
    if (answer.retryAtMs !== undefined)
      earliest = Math.min(earliest ?? Number.POSITIVE_INFINITY, answer.retryAtMs);
    tried.push(runtime.ref);
    return undefined;
  };
  const next = (runtime: PoolRuntime): PoolRuntime | undefined => {
    const name: string | undefined = runtime.spec.fallbackPoolRef?.name;
    return name ? registry.get({ namespace: runtime.ref.namespace, name }) : undefined;
  };
  const walk = (from: PoolRuntime | undefined): DispenseResult | Promise<DispenseResult> => {
    for (let runtime = from; runtime && !seen.has(runtime); runtime = next(runtime)) {
      seen.add(runtime);
      const usable = runtime === first || !options.accept || options.accept(runtime);
      const answer: PoolAnswer | Promise<PoolAnswer> = usable
        ? askPool(runtime, affinity, options)
        : { picked: undefined, retryAtMs: undefined };
      if (answer instanceof Promise) {
        const asked = runtime;
        return answer.then((a) => settle(asked, a) ?? walk(next(asked)));
      }
      const done = settle(runtime, answer);
      if (done) return done;
    }
    throw noUsableKey(clock, tried, earliest);
  };
  return walk(first);
}

/** One pool's pick: session affinity first, then the strategy; confirmed by a shared store. */
function askPool(
  runtime: PoolRuntime,
  affinity: SessionAffinity,
  options: DispenseOptions,
): PoolAnswer | Promise<PoolAnswer> {
  const coordinator = options.coordinator ?? localCoordinator;
  const before = coordinator.beforePick(runtime);
  if (before) return before.then(() => pickIn(runtime, affinity, options, coordinator));
  return pickIn(runtime, affinity, options, coordinator);
}

function pickIn(
  runtime: PoolRuntime,
  affinity: SessionAffinity,
  options: DispenseOptions,
  coordinator: KeyCoordinator,
): PoolAnswer | Promise<PoolAnswer> {
  const engine = runtime.engine;
  let picked: Dispensed | undefined;
  if (options.session) {
    const keyId = affinity.keyFor(engine, `${refKey(runtime.ref)}/${options.session}`);
    if (keyId && !options.exclude?.has(keyId)) picked = engine.pickKey(keyId);
  }
  if (!picked) {
    const result = engine.pick(options.exclude);
    if (!result.ok) return { picked: undefined, retryAtMs: result.retryAtMs };
    picked = result;
  }
  const confirmed = coordinator.confirm(runtime, picked, options.exclude);
  // The memory store confirms at once: no promise tick on the dispenser's hot path.
  return confirmed instanceof Promise ? confirmed.then(answerOf) : answerOf(confirmed);
}

/** What a pool gave, from the store's confirmation of its engine's pick. */
function answerOf(confirmed: Confirmed): PoolAnswer {
  if (confirmed.ok) return { picked: confirmed, retryAtMs: undefined };
  if ("storeUnavailable" in confirmed) {
    throw new KeyPoolError(
      "state_store_unavailable",
      "The shared state store is unreachable and --state-store-failure is closed: no key is handed out until it is back",
      { retryAfterSeconds: confirmed.retryAfterSeconds },
    );
  }
  return { picked: undefined, retryAtMs: confirmed.retryAtMs };
}

function noUsableKey(clock: Clock, tried: readonly PoolRef[], earliest: number | undefined): KeyPoolError {
  const retryAfterSeconds =
    earliest === undefined ? 60 : Math.max(1, Math.ceil((earliest - clock.now()) / 1000));
  const chain = tried.map(refKey).join(" -> ");
  return new KeyPoolError(
    "no_usable_key",
    `No usable key in ${chain}${earliest === undefined ? "" : `; the earliest becomes usable in ${retryAfterSeconds} s`}`,
    { retryAfterSeconds, ...(earliest === undefined ? {} : { retryAtMs: Math.max(earliest, clock.now()) }) },
  );
}

/** What a caller may send about how a call went. */
export interface ReportInput {
  leaseId?: string;
  keyId?: string;
  outcome?: Outcome["kind"];
  statusCode?: number;
  /** The provider's error body (parsed JSON or text), for classification. */
  body?: unknown;
  /** The provider's response headers (rate-limit headers, retry-after). */
  headers?: Record<string, string>;
  retryAfterSeconds?: number;
  /** A rate limit the report gives no end for (no retry-after, no reset header) rests this long. */
  defaultRetryAfterSeconds?: number;
  /** Tokens counted against tokensPerMinute; inputTokens + outputTokens when not given. */
  tokens?: number;
  /** How long the call took (ms): feeds the key's average latency. */
  latencyMs?: number;
  /** The model the call asked for: prices it (outcome.usage). */
  model?: string;
  /** Input tokens, cachedInputTokens included. */
  inputTokens?: number;
  /** Of inputTokens, those read from the provider's prompt cache. */
  cachedInputTokens?: number;
  outputTokens?: number;
}

/**
 * A report's model and tokens by kind as the outcome's usage, as given (undefined when it gives
 * none). Cached input tokens are part of the input tokens: more of them than of those, or without
 * them, is refused (invalid_usage) rather than priced.
 */
export function reportedUsage(input: ReportInput): CallUsage | undefined {
  const { model, inputTokens, cachedInputTokens, outputTokens } = input;
  if (cachedInputTokens !== undefined && (inputTokens === undefined || cachedInputTokens > inputTokens)) {
    throw new KeyPoolError(
      "invalid_usage",
      inputTokens === undefined
        ? "cachedInputTokens needs inputTokens (the input tokens, cached ones included)"
        : `cachedInputTokens (${cachedInputTokens}) is more than inputTokens (${inputTokens}), which counts the cached ones too`,
    );
  }
  if (model === undefined && inputTokens === undefined && outputTokens === undefined) return undefined;
  const usage: CallUsage = {};
  if (model !== undefined) usage.model = model;
  if (inputTokens !== undefined) usage.inputTokens = inputTokens;
  if (cachedInputTokens !== undefined) usage.cachedInputTokens = cachedInputTokens;
  if (outputTokens !== undefined) usage.outputTokens = outputTokens;
  return usage;
}

/** Turns a report into an engine outcome: an explicit outcome, or the provider's classification. */
export function outcomeOf(runtime: PoolRuntime, input: ReportInput, nowMs: number): Outcome {
  let outcome: Outcome;
  if (input.statusCode !== undefined) {
    const profile = getProvider(runtime.spec.provider);
    outcome = profile.classify({ status: input.statusCode, headers: input.headers, body: input.body }, nowMs);
  } else {
    outcome = { kind: input.outcome ?? "success" };
  }
  if (input.outcome && input.statusCode !== undefined && input.outcome !== outcome.kind) {
    // The caller said what happened; the status code still fills reason and statusCode.
    outcome = { ...outcome, kind: input.outcome };
  }
  if (input.retryAfterSeconds !== undefined) {
    outcome = { ...outcome, untilMs: Math.max(outcome.untilMs ?? 0, nowMs + input.retryAfterSeconds * 1000) };
  }
  if (input.defaultRetryAfterSeconds !== undefined && outcome.kind === "rateLimited" && !outcome.untilMs) {
    outcome = { ...outcome, untilMs: nowMs + input.defaultRetryAfterSeconds * 1000 };
  }
  if (input.tokens !== undefined) outcome = { ...outcome, tokens: input.tokens };
  else if (input.inputTokens !== undefined || input.outputTokens !== undefined)
    outcome = { ...outcome, tokens: (input.inputTokens ?? 0) + (input.outputTokens ?? 0) };
  if (input.latencyMs !== undefined) outcome = { ...outcome, latencyMs: input.latencyMs };
  const usage = reportedUsage(input);
  if (usage) outcome = { ...outcome, usage };
  return outcome;
}

export async function report(
  registry: PoolRegistry,
  clock: Clock,
  ref: PoolRef,
  input: ReportInput,
  coordinator: KeyCoordinator = localCoordinator,
): Promise<{ keyId: string; state: KeyState }> {
  const runtime = requirePool(registry, ref);
  const outcome = outcomeOf(runtime, input, clock.now());
  const result = await coordinator.report(
    runtime,
    input.leaseId ? { leaseId: input.leaseId } : { keyId: input.keyId as string },
    outcome,
  );
  if (!result.ok) {
    throw result.code === "unknown_lease"
      ? new KeyPoolError(
          "lease_not_found",
          `Lease ${input.leaseId} is not open in KeyPool ${refKey(ref)} (closed, expired, or from another pool: report to the pool that served it)`,
        )
      : new KeyPoolError("key_not_found", `Key ${input.keyId} is not in KeyPool ${refKey(ref)}`);
  }
  registry.touched(ref);
  return { keyId: result.keyId, state: result.state };
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

/** A pool as the API shows it: no key material, ever. */
export function poolView(runtime: PoolRuntime) {
  const keys = runtime.engine.keys();
  const byState = Object.fromEntries(Object.entries(runtime.engine.stateCounts()).filter(([, n]) => n > 0));
  const spending = runtime.engine.spendingView();
  return {
    pool: runtime.ref,
    provider: runtime.spec.provider,
    strategy: runtime.spec.strategy,
    keys: { total: keys.length, usable: runtime.engine.usableCount, byState },
    costWindow: { day: spending.day, month: spending.month, timeZone: spending.timeZone },
    costTodayUSD: usd(spending.costTodayUSD),
    costThisMonthUSD: usd(spending.costThisMonthUSD),
    costByModel: spending.byModel.map((m) => ({
      model: m.model,
      costTodayUSD: usd(m.costTodayUSD),
      costThisMonthUSD: usd(m.costThisMonthUSD),
    })),
    budget: budgetView(spending.budget),
    forecast: forecastView(spending.forecast),
    // Keys an alert made Degraded (error rate, latency, consecutive failures), newest first.
    alerts: keys
      .filter((k) => k.state === "Degraded")
      .map((k) => ({
        keyId: k.id,
        type: k.reason ?? "degraded",
        message: `Key ${k.id} (${k.masked}) is Degraded: ${k.reason ?? "failing"}`,
        at: iso(k.sinceMs),
      }))
      .sort((a, b) => (b.at ?? "").localeCompare(a.at ?? "")),
    keyStatuses: keys.map((k) => ({
      id: k.id,
      masked: k.masked,
      source: k.source,
      state: k.state,
      until: iso(k.untilMs),
      healthScore: k.healthScore,
      requests: k.requests,
      errors: k.errors,
      inFlight: k.inFlight,
      latencyMs: k.latencyMs,
      lastUsed: iso(k.lastUsedMs),
      lastError: k.lastError ? { ...k.lastError, at: iso(k.lastError.atMs), atMs: undefined } : undefined,
      reason: k.reason,
      costTodayUSD: usd(k.costTodayUSD ?? 0),
      costThisMonthUSD: usd(k.costThisMonthUSD ?? 0),
      budget: k.budget ? budgetView(k.budget) : undefined,
      forecast: forecastView(k.forecast),
    })),
  };
}

/** USD to the micro-dollar (no float noise in the answer). */
const usd = (n: number) => Math.round(n * 1e6) / 1e6;

function budgetView(budget: BudgetStatus) {
  const use = (u: BudgetUse | undefined) =>
    u && { limitUSD: u.limitUSD, spentUSD: usd(u.spentUSD), resetsAt: iso(u.resetsAtMs) };
  return budget.daily || budget.monthly
    ? { daily: use(budget.daily), monthly: use(budget.monthly) }
    : undefined;
}

function forecastView(f: Forecast | undefined) {
  return (
    f && {
      limit: f.limit,
      exhaustsAt: iso(f.exhaustsAtMs),
      resetsAt: iso(f.resetsAtMs),
      beforeReset: f.beforeReset,
    }
  );
}
