/**
 * A pool's money and foresight: what its calls cost (per key, per model, for the pool), its
 * budgets and the notices they give, exhaustion forecasts, and the headroom spec.forecast.balance
 * weights keys by. The engine owns the key records and their transitions; this holds the pool's
 * own counters and computes from the records. Pure: `now` is an argument.
 */
import type { BudgetLimits } from "../api/keypool.ts";
import { type BudgetWindows, budgetWindows, type CalendarWindow } from "./budget-window.ts";
import type { PoolConfig } from "./config.ts";
import {
  calendarForecast,
  type Forecast,
  type ForecastLimit,
  mostPressing,
  RateAverage,
  slidingForecast,
  tauOf,
} from "./forecast.ts";
import type { KeyRecord } from "./key.ts";
import { SpendCounter, type SpendSnapshot, type SpendTotals } from "./spend.ts";
import type { UsageWindow } from "./window.ts";

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
/** Headroom of a key no day-long limit bounds: larger than any real one, so it takes the most calls. */
const UNBOUNDED_HEADROOM = 1e12;
/** Smallest headroom: a key at its limit leaves the active set anyway; this keeps weights positive. */
const MIN_HEADROOM = 1e-3;

export type BudgetPeriod = "daily" | "monthly";

/** A budget reached its warning share or its limit (once per window and level). */
export interface BudgetNotice {
  scope: "pool" | "key";
  /** The key's id and masked form, for a key's budget. */
  keyId?: string;
  masked?: string;
  period: BudgetPeriod;
  level: "warning" | "exhausted";
  spentUSD: number;
  limitUSD: number;
  /** When the window resets (epoch ms). */
  resetsAtMs: number;
}

/** Where one budget stands. */
export interface BudgetUse {
  limitUSD: number;
  spentUSD: number;
  resetsAtMs: number;
}

export interface BudgetStatus {
  daily?: BudgetUse;
  monthly?: BudgetUse;
}

const LIMIT_OF: Record<BudgetPeriod, "dailyUSD" | "monthlyUSD"> = {
  daily: "dailyUSD",
  monthly: "monthlyUSD",
};

/** The budgets `limits` sets, with what `totals` spent of them. */
export function budgetStatus(
  limits: BudgetLimits | undefined,
  totals: SpendTotals,
  w: BudgetWindows,
): BudgetStatus {
  const status: BudgetStatus = {};
  if (limits?.dailyUSD !== undefined)
    status.daily = { limitUSD: limits.dailyUSD, spentUSD: totals.dayUSD, resetsAtMs: w.day.endMs };
  if (limits?.monthlyUSD !== undefined)
    status.monthly = { limitUSD: limits.monthlyUSD, spentUSD: totals.monthUSD, resetsAtMs: w.month.endMs };
  return status;
}

/** The latest window of `limits` that `totals` is over (the one to wait for); undefined: within budget. */
export function overBudgetUntil(
  limits: BudgetLimits | undefined,
  totals: SpendTotals,
  w: BudgetWindows,
): number | undefined {
  let until: number | undefined;
  if (limits?.dailyUSD !== undefined && totals.dayUSD >= limits.dailyUSD) until = w.day.endMs;
  if (limits?.monthlyUSD !== undefined && totals.monthUSD >= limits.monthlyUSD) until = w.month.endMs;
  return until;
}

/** Remembers which notices a counter gave in which window, so each is given once. */
export class NoticeMemory {
  readonly #given = new Set<string>();

  /** True the first time for (period, window, level). */
  first(period: BudgetPeriod, window: CalendarWindow, level: BudgetNotice["level"]): boolean {
    const id = `${period}/${window.id}/${level}`;
    if (this.#given.has(id)) return false;
    if (this.#given.size > 16) this.#given.clear(); // old windows: over anyway
    this.#given.add(id);
    return true;
  }
}

/**
 * The notices a spend from `before` to `after` crosses, for budgets `limits` (warning at
 * warnAtPercent of each, exhausted at 100%).
 */
export function budgetNotices(
  limits: BudgetLimits | undefined,
  after: SpendTotals,
  w: BudgetWindows,
  warnAtPercent: number,
  memory: NoticeMemory,
  subject: Pick<BudgetNotice, "scope" | "keyId" | "masked">,
): BudgetNotice[] {
  const notices: BudgetNotice[] = [];
  for (const period of ["daily", "monthly"] as const) {
    const limit = limits?.[LIMIT_OF[period]];
    if (limit === undefined) continue;
    const window = period === "daily" ? w.day : w.month;
    const spent = period === "daily" ? after.dayUSD : after.monthUSD;
    const level =
      spent >= limit ? "exhausted" : spent >= (limit * warnAtPercent) / 100 ? "warning" : undefined;
    if (!level) continue;
    // Exhausted implies the warning: a jump past both gives the exhausted notice only.
    if (level === "exhausted") memory.first(period, window, "warning");
    if (!memory.first(period, window, level)) continue;
    notices.push({ ...subject, period, level, spentUSD: spent, limitUSD: limit, resetsAtMs: window.endMs });
  }
  return notices;
}

/** The key's requestsPerDay window and its limit, when it has one. */
function dayWindow(rec: KeyRecord) {
  const limit = rec.limits?.requestsPerDay;
  if (!limit) return undefined;
  const window = rec.windows.requests[rec.windows.requests.length - 1];
  return window ? { window, limit } : undefined;
}

/** When the key runs out of each limit and budget at its recent rate; the most pressing one. */
export function keyForecast(
  rec: KeyRecord,
  config: PoolConfig,
  w: BudgetWindows,
  now: number,
): Forecast | undefined {
  const tau = tauOf(config.forecast.halfLifeMs);
  const forecasts: Array<Forecast | undefined> = [];
  const day = dayWindow(rec);
  if (day)
    forecasts.push(
      slidingForecast(
        {
          limit: "requestsPerDay",
          used: day.window.used(now),
          capacity: day.limit,
          rate: rec.rates.requests.at(now, tau),
          windowMs: DAY_MS,
          leavingBy: (later) => day.window.leavingBy(now, later),
        },
        now,
      ),
    );
  const tokens = rec.windows.tokens;
  if (tokens)
    forecasts.push(
      slidingForecast(
        {
          limit: "tokensPerMinute",
          used: tokens.used(now),
          capacity: tokens.limit,
          rate: rec.rates.tokens.at(now, tau),
          windowMs: MINUTE_MS,
          leavingBy: (later) => tokens.leavingBy(now, later),
        },
        now,
      ),
    );
  const costRate = rec.rates.cost.at(now, tau);
  const totals = rec.spend.totals(w);
  forecasts.push(...budgetForecasts(rec.budget, totals, costRate, w, now, "dailyBudget", "monthlyBudget"));
  return mostPressing(forecasts);
}

function budgetForecasts(
  limits: BudgetLimits | undefined,
  totals: SpendTotals,
  rate: number,
  w: BudgetWindows,
  now: number,
  daily: ForecastLimit,
  monthly: ForecastLimit,
): Array<Forecast | undefined> {
  const out: Array<Forecast | undefined> = [];
  if (limits?.dailyUSD !== undefined)
    out.push(
      calendarForecast(
        { limit: daily, used: totals.dayUSD, capacity: limits.dailyUSD, rate, endMs: w.day.endMs },
        now,
      ),
    );
  if (limits?.monthlyUSD !== undefined)
    out.push(
      calendarForecast(
        { limit: monthly, used: totals.monthUSD, capacity: limits.monthlyUSD, rate, endMs: w.month.endMs },
        now,
      ),
    );
  return out;
}

/**
 * What the key has left of its tightest day-long limit, in calls: requestsPerDay's room, and each
 * budget's room divided by the key's recent cost per call. Scales its weight under balance.
 */
export function keyHeadroom(rec: KeyRecord, config: PoolConfig, w: BudgetWindows, now: number): number {
  let headroom = UNBOUNDED_HEADROOM;
  const day = dayWindow(rec);
  if (day) headroom = Math.min(headroom, day.limit - day.window.used(now));
  if (rec.budget?.dailyUSD !== undefined || rec.budget?.monthlyUSD !== undefined) {
    const tau = tauOf(config.forecast.halfLifeMs);
    const calls = rec.rates.requests.at(now, tau);
    const perCall = calls > 0 ? rec.rates.cost.at(now, tau) / calls : 0;
    if (perCall > 0) {
      const totals = rec.spend.totals(w);
      if (rec.budget.dailyUSD !== undefined)
        headroom = Math.min(headroom, (rec.budget.dailyUSD - totals.dayUSD) / perCall);
      if (rec.budget.monthlyUSD !== undefined)
        headroom = Math.min(headroom, (rec.budget.monthlyUSD - totals.monthUSD) / perCall);
    }
  }
  return Math.max(MIN_HEADROOM, headroom);
}

/** The pool's own spend, its rate, and the budget notices it gave. */
export class PoolSpending {
  readonly spend = new SpendCounter();
  readonly costRate = new RateAverage();
  readonly notices = new NoticeMemory();
  /** USD per model since this engine started, never reset (keypool_cost_usd_total). */
  readonly lifetime = new Map<string, number>();
  #windows: BudgetWindows | undefined;
  #windowsZone = "";

  /** The budget day and month at `now` in the pool's zone (cached until the day ends). */
  windows(config: PoolConfig, now: number): BudgetWindows {
    const w = this.#windows;
    const zone = config.budget.timeZone;
    if (w && zone === this.#windowsZone && now >= w.day.startMs && now < w.day.endMs) return w;
    this.#windowsZone = zone;
    this.#windows = budgetWindows(now, zone);
    return this.#windows;
  }

  /**
   * When the pool runs out: its budgets at the pool's cost rate, and the day-long and per-minute
   * limits of its keys together (only when every key has that limit: a key without one keeps
   * serving). The most pressing forecast.
   */
  forecast(
    keys: Iterable<KeyRecord>,
    config: PoolConfig,
    w: BudgetWindows,
    now: number,
  ): Forecast | undefined {
    const tau = tauOf(config.forecast.halfLifeMs);
    const dayWindows: UsageWindow[] = [];
    const tokenWindows: UsageWindow[] = [];
    const day = { used: 0, capacity: 0, rate: 0, all: true };
    const tokens = { used: 0, capacity: 0, rate: 0, all: true };
    let any = false;
    for (const rec of keys) {
      if (rec.state === "Draining" || rec.state === "Invalid" || rec.state === "Disabled") continue;
      any = true;
      const d = dayWindow(rec);
      if (d) {
        day.used += d.window.used(now);
        day.capacity += d.limit;
        day.rate += rec.rates.requests.at(now, tau);
        dayWindows.push(d.window);
      } else day.all = false;
      const t = rec.windows.tokens;
      if (t) {
        tokens.used += t.used(now);
        tokens.capacity += t.limit;
        tokens.rate += rec.rates.tokens.at(now, tau);
        tokenWindows.push(t);
      } else tokens.all = false;
    }
    const leaving = (windows: UsageWindow[]) => (later: number) =>
      windows.reduce((sum, w) => sum + w.leavingBy(now, later), 0);
    const forecasts: Array<Forecast | undefined> = budgetForecasts(
      config.budget.limits,
      this.spend.totals(w),
      this.costRate.at(now, tau),
      w,
      now,
      "poolDailyBudget",
      "poolMonthlyBudget",
    );
    if (any && day.all)
      forecasts.push(
        slidingForecast(
          { limit: "requestsPerDay", ...day, windowMs: DAY_MS, leavingBy: leaving(dayWindows) },
          now,
        ),
      );
    if (any && tokens.all)
      forecasts.push(
        slidingForecast(
          { limit: "tokensPerMinute", ...tokens, windowMs: MINUTE_MS, leavingBy: leaving(tokenWindows) },
          now,
        ),
      );
    return mostPressing(forecasts);
  }

  snapshot(): SpendSnapshot | undefined {
    return this.spend.snapshot();
  }
}
