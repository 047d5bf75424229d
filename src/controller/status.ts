/**
 * Builds a KeyPool's status from the engine and the key sources, and reads engine state back
 * from a status (so a restarted operator resumes cooldowns and Invalid marks).
 */
import { KEY_STATES } from "../api/keypool.ts";
import type { Condition, KeyPoolStatus, KeyStatus } from "../api/status.ts";
import type { PoolConfig } from "../pool/config.ts";
import type { KeyPoolEngine, KeyView, SpendingView } from "../pool/engine.ts";
import type { Forecast } from "../pool/forecast.ts";
import type { BudgetStatus as BudgetView } from "../pool/spending.ts";
import { USABLE_STATES } from "../pool/key.ts";
import { type EngineSnapshot, KeySnapshot, SNAPSHOT_VERSION } from "../pool/snapshot.ts";
import type { PoolProblem } from "../pool/registry.ts";
import { ConditionType, Reason, setCondition } from "./conditions.ts";

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const fromIso = (text: string | undefined) => (text ? Date.parse(text) : undefined);
/** USD to the micro-dollar: enough for one cheap call, and no float noise in the status. */
const usd = (n: number) => Math.round(n * 1e6) / 1e6;

function budgetStatus(view: BudgetView): KeyPoolStatus["budget"] {
  const use = (u: BudgetView["daily"]) =>
    u && { limitUSD: u.limitUSD, spentUSD: usd(u.spentUSD), resetsAt: iso(u.resetsAtMs) };
  return {
    ...(view.daily ? { daily: use(view.daily) } : {}),
    ...(view.monthly ? { monthly: use(view.monthly) } : {}),
  };
}

function forecastStatus(f: Forecast): NonNullable<KeyPoolStatus["forecast"]> {
  return {
    limit: f.limit,
    exhaustsAt: iso(Math.floor(f.exhaustsAtMs / 1000) * 1000),
    resetsAt: iso(Math.ceil(f.resetsAtMs / 1000) * 1000),
    beforeReset: f.beforeReset,
  };
}

export function toKeyStatus(view: KeyView): KeyStatus {
  return {
    id: view.id,
    masked: view.masked,
    source: view.source,
    ...(view.quotaGroup ? { quotaGroup: view.quotaGroup } : {}),
    state: view.state,
    ...(view.sinceMs ? { since: new Date(view.sinceMs).toISOString() } : {}),
    // Rounded up to the second the status can hold, so a restored cooldown never ends early.
    ...(view.untilMs ? { until: iso(Math.ceil(view.untilMs / 1000) * 1000) } : {}),
    ...(view.stateBeforeDrain ? { stateBeforeDrain: view.stateBeforeDrain } : {}),
    ...(view.stateBeforeDrainUntilMs
      ? { stateBeforeDrainUntil: iso(Math.ceil(view.stateBeforeDrainUntilMs / 1000) * 1000) }
      : {}),
    ...(view.disabledBySpec ? { disabledBySpec: true } : {}),
    healthScore: view.healthScore,
    requests: view.requests,
    errors: view.errors,
    ...(view.consecutiveErrors ? { consecutiveErrors: view.consecutiveErrors } : {}),
    ...(view.lastUsedMs ? { lastUsed: iso(view.lastUsedMs) } : {}),
    ...(view.lastError
      ? {
          lastError: {
            ...(view.lastError.code !== undefined ? { code: view.lastError.code } : {}),
            reason: view.lastError.reason,
            at: iso(view.lastError.atMs),
          },
        }
      : {}),
    ...(view.reason ? { reason: view.reason } : {}),
    ...(view.costTodayUSD || view.costThisMonthUSD
      ? { costTodayUSD: usd(view.costTodayUSD ?? 0), costThisMonthUSD: usd(view.costThisMonthUSD ?? 0) }
      : {}),
    ...(view.budget && (view.budget.daily || view.budget.monthly)
      ? { budget: budgetStatus(view.budget) }
      : {}),
    ...(view.forecast ? { forecast: forecastStatus(view.forecast) } : {}),
  };
}

/** Engine state saved in a status: what restore() needs. Entries that do not parse are skipped. */
export function snapshotFromStatus(status: KeyPoolStatus | undefined, nowMs: number): EngineSnapshot {
  // Spend is kept for the windows it was counted in; the engine takes only those still current.
  const window = status?.costWindow
    ? { day: status.costWindow.day, month: status.costWindow.month }
    : undefined;
  const keys = (status?.keyStatuses ?? []).flatMap((k) => {
    const parsed = KeySnapshot.safeParse({
      id: k.id,
      state: k.state,
      sinceMs: fromIso(k.since),
      untilMs: fromIso(k.until),
      stateBeforeDrain: k.stateBeforeDrain,
      stateBeforeDrainUntilMs: fromIso(k.stateBeforeDrainUntil),
      disabledBySpec: k.disabledBySpec === true ? true : undefined,
      healthScore: k.healthScore,
      requests: k.requests,
      errors: k.errors,
      consecutiveErrors: k.consecutiveErrors ?? 0,
      lastUsedMs: fromIso(k.lastUsed),
      lastErrorAtMs: fromIso(k.lastError?.at),
      lastError: k.lastError
        ? { code: k.lastError.code, reason: k.lastError.reason, atMs: fromIso(k.lastError.at) }
        : undefined,
      reason: k.reason,
      spend:
        window && (k.costTodayUSD || k.costThisMonthUSD)
          ? { ...window, dayUSD: k.costTodayUSD ?? 0, monthUSD: k.costThisMonthUSD ?? 0 }
          : undefined,
    });
    return parsed.success ? [parsed.data] : [];
  });
  const spend =
    window && (status?.costTodayUSD || status?.costThisMonthUSD)
      ? {
          ...window,
          dayUSD: status.costTodayUSD ?? 0,
          monthUSD: status.costThisMonthUSD ?? 0,
          ...(status.costByModel?.length
            ? {
                models: Object.fromEntries(
                  status.costByModel.map((m) => [
                    m.model,
                    [m.costTodayUSD, m.costThisMonthUSD] as [number, number],
                  ]),
                ),
              }
            : {}),
        }
      : undefined;
  return { version: SNAPSHOT_VERSION, takenAtMs: nowMs, keys, ...(spend ? { spend } : {}) };
}

export type Evaluation =
  /** The first reconcile of a generation: nothing is known yet (kstatus needs a Ready condition at once). */
  | { kind: "reconciling" }
  | { kind: "invalidSpec"; message: string }
  | {
      kind: "evaluated";
      views: KeyView[];
      problems: PoolProblem[];
      emptyValues: number;
      /** Cost, budgets and forecast (KeyPoolEngine.spendingView), for a pool that has any. */
      spending?: PoolSpendingStatus | undefined;
    };

/** What the status shows of a pool's money and foresight, and what decides which parts. */
export interface PoolSpendingStatus {
  view: SpendingView;
  /** The pool has a price list: cost fields are shown (zeros included). */
  priced: boolean;
  /** Some budget is set (the pool's or a key's): BudgetWarning is kept. */
  budgeted: boolean;
  /** Some limit or budget can run out: ExhaustionPredicted is kept. */
  forecastable: boolean;
  warnAtPercent: number;
}

/** What the status shows of `engine`'s money and foresight; undefined for a pool with none of it. */
export function poolSpendingStatus(
  engine: Pick<KeyPoolEngine, "config" | "spendingView">,
  views: readonly KeyView[],
): PoolSpendingStatus | undefined {
  const config = engine.config;
  const priced = config.prices.size > 0;
  const poolBudget =
    config.budget.limits.dailyUSD !== undefined || config.budget.limits.monthlyUSD !== undefined;
  const budgeted = poolBudget || views.some((v) => v.budget?.daily || v.budget?.monthly);
  const limited = views.some((v) => v.forecast !== undefined) || limitsForecastable(config);
  if (!priced && !budgeted && !limited) return undefined;
  return {
    view: engine.spendingView(),
    priced,
    budgeted,
    forecastable: budgeted || limited,
    warnAtPercent: config.budget.warnAtPercent,
  };
}

function limitsForecastable(config: PoolConfig): boolean {
  const l = config.defaultLimits;
  return (
    l?.requestsPerDay !== undefined ||
    l?.tokensPerMinute !== undefined ||
    [...config.quotaGroupLimits.values()].some((g) => g.requestsPerDay !== undefined)
  );
}

/** The parts of the status about cost, budgets and forecasts, and their conditions. */
function spendingStatus(
  spending: PoolSpendingStatus,
  views: KeyView[],
  set: (type: string, status: "True" | "False", reason: string, message: string) => void,
): Partial<KeyPoolStatus> {
  const { view, warnAtPercent } = spending;
  if (spending.budgeted) {
    const over: string[] = [];
    let exhausted = false;
    const judge = (what: string, b: BudgetView | undefined) => {
      for (const [period, use] of [
        ["daily", b?.daily],
        ["monthly", b?.monthly],
      ] as const) {
        if (!use) continue;
        const share = (use.spentUSD / use.limitUSD) * 100;
        if (share < warnAtPercent) continue;
        if (share >= 100) exhausted = true;
        over.push(
          `${what} ${period} budget ${Math.floor(share)}% spent ($${usd(use.spentUSD)} of $${use.limitUSD}, resets ${iso(use.resetsAtMs)})`,
        );
      }
    };
    judge("pool", view.budget);
    for (const v of views) judge(`key ${v.id}`, v.budget);
    if (over.length)
      set(
        ConditionType.BudgetWarning,
        "True",
        exhausted ? Reason.BudgetExhausted : Reason.BudgetNearLimit,
        over.slice(0, 10).join("; "),
      );
    else
      set(
        ConditionType.BudgetWarning,
        "False",
        Reason.WithinBudget,
        `Every budget is under ${warnAtPercent}%`,
      );
  }
  const f = view.forecast;
  if (spending.forecastable) {
    if (f?.beforeReset)
      set(
        ConditionType.ExhaustionPredicted,
        "True",
        Reason.RunsOutBeforeReset,
        `At the recent rate the pool's ${f.limit} runs out at ${iso(Math.floor(f.exhaustsAtMs / 1000) * 1000)}, before it resets at ${iso(Math.ceil(f.resetsAtMs / 1000) * 1000)}`,
      );
    else
      set(
        ConditionType.ExhaustionPredicted,
        "False",
        Reason.NoExhaustionPredicted,
        "At the recent rate no limit or budget of the pool runs out before it resets",
      );
  }
  return {
    ...(spending.priced
      ? {
          costWindow: { day: view.day, month: view.month, timeZone: view.timeZone },
          costTodayUSD: usd(view.costTodayUSD),
          costThisMonthUSD: usd(view.costThisMonthUSD),
          costByModel: view.byModel.slice(0, 100).map((m) => ({
            model: m.model,
            costTodayUSD: usd(m.costTodayUSD),
            costThisMonthUSD: usd(m.costThisMonthUSD),
          })),
        }
      : {}),
    ...(view.budget.daily || view.budget.monthly ? { budget: budgetStatus(view.budget) } : {}),
    ...(f ? { forecast: forecastStatus(f) } : {}),
  };
}

/** Every state, zeros included: a merge patch must overwrite a count that dropped to zero. */
function countByState(views: KeyView[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(KEY_STATES.map((s) => [s, 0]));
  for (const v of views) counts[v.state] = (counts[v.state] ?? 0) + 1;
  return counts;
}

function describeCounts(byState: Record<string, number>): string {
  return Object.entries(byState)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(", ");
}

/** The status the operator wants the KeyPool to have now. */
export function desiredStatus(
  previous: KeyPoolStatus | undefined,
  evaluation: Evaluation,
  generation: number | undefined,
  now: Date,
): KeyPoolStatus {
  let conditions: Condition[] = previous?.conditions ?? [];
  const set = (type: string, status: "True" | "False" | "Unknown", reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, generation, now);
  };

  if (evaluation.kind === "reconciling") {
    set(ConditionType.Ready, "Unknown", Reason.Reconciling, "Resolving keys from the pool's Secrets");
    set(ConditionType.Reconciling, "True", Reason.Reconciling, "Resolving keys from the pool's Secrets");
    return { ...previous, observedGeneration: generation, conditions };
  }

  if (evaluation.kind === "invalidSpec") {
    const message = `Invalid spec: ${evaluation.message}`;
    set(ConditionType.Ready, "False", Reason.InvalidSpec, message);
    set(ConditionType.Stalled, "True", Reason.InvalidSpec, message);
    set(ConditionType.Reconciling, "False", Reason.Reconciled, "Waiting for a valid spec");
    return { ...previous, observedGeneration: generation, conditions };
  }

  const { views, problems, emptyValues } = evaluation;
  // Usable by state: a key momentarily at its client-side limit still counts, so the status does
  // not churn with every request.
  const usable = views.filter((v) => USABLE_STATES.has(v.state)).length;
  const byState = countByState(views);
  const total = views.length;
  const live = views.filter((v) => v.state !== "Draining").length;
  const emptyNote = emptyValues ? ` (${emptyValues} empty value${emptyValues === 1 ? "" : "s"} ignored)` : "";
  const problemText = problems.map((p) => p.message).join("; ");

  // Ready says whether keys are served; problems that leave some serving are Degraded's to tell.
  if (usable > 0) {
    set(ConditionType.Ready, "True", Reason.KeysAvailable, `${usable} of ${live} keys usable${emptyNote}`);
  } else if (problems.length) {
    set(ConditionType.Ready, "False", (problems[0] as PoolProblem).reason, problemText);
  } else if (live === 0) {
    set(ConditionType.Ready, "False", Reason.NoKeys, `The pool's Secrets hold no keys${emptyNote}`);
  } else {
    set(ConditionType.Ready, "False", Reason.NoUsableKeys, `No usable key: ${describeCounts(byState)}`);
  }

  // Stalled (kstatus: Failed) only when nothing is served and only the user can change that: a
  // pool that serves with a partial problem is Ready and Degraded instead.
  if (usable === 0 && problems.length)
    set(ConditionType.Stalled, "True", (problems[0] as PoolProblem).reason, problemText);
  else if (usable === 0 && live === 0)
    set(ConditionType.Stalled, "True", Reason.NoKeys, `The pool's Secrets hold no keys${emptyNote}`);
  else set(ConditionType.Stalled, "False", Reason.NoProblem, "Nothing needs a change");

  const unusable = live - usable;
  const unusableText = `${unusable} of ${live} keys unusable: ${describeCounts(byState)}`;
  if (problems.length)
    set(
      ConditionType.Degraded,
      "True",
      (problems[0] as PoolProblem).reason,
      unusable > 0 ? `${problemText}; ${unusableText}` : problemText,
    );
  else if (unusable > 0) set(ConditionType.Degraded, "True", Reason.KeysUnusable, unusableText);
  else
    set(ConditionType.Degraded, "False", Reason.AllKeysUsable, live ? `All ${live} keys usable` : "No keys");

  const money = evaluation.spending ? spendingStatus(evaluation.spending, views, set) : {};

  set(ConditionType.Reconciling, "False", Reason.Reconciled, "The current generation has been evaluated");

  return {
    observedGeneration: generation,
    conditions,
    keys: { total, usable, byState },
    keyStatuses: views.map(toKeyStatus),
    ...money,
    ...(previous?.lastProbeRequest !== undefined ? { lastProbeRequest: previous.lastProbeRequest } : {}),
  };
}
