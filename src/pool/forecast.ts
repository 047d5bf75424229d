/**
 * Exhaustion forecasts: when a limit runs out at the recent consumption rate, and whether that
 * is before its window resets.
 *
 * The rate is an exponentially weighted moving average over irregular events (spec.forecast.
 * halfLife, 5 minutes by default): each use of `amount` adds amount/tau, and the rate decays by
 * e^(-dt/tau) (tau = halfLife / ln 2). A steady rate r reads as r after a few half-lives; a
 * stop decays to half in one half-life.
 *
 * Two kinds of window:
 * - calendar (budgets): `remaining / rate` from now; predicted when that is before the window's end.
 * - sliding (requestsPerDay, tokensPerMinute): use also leaves the window as it ages, and the
 *   window records when: the level at a later time t is used + rate x (t - now) - what leaves by
 *   t. The first t within one window length where that reaches the limit is when it runs out
 *   (searched in SLIDING_STEPS steps, then solved within the step); none: it does not fill at
 *   this rate. A sliding window has no single reset: "before reset" means within one window.
 *   (An earlier version assumed use leaves evenly, used / windowMs: bench/forecast.ts showed it
 *   hours late for a pool whose window had not filled yet, where nothing leaves.)
 */

export class RateAverage {
  #rate = 0;
  #lastMs = 0;

  /** Records `amount` used at `nowMs`. */
  add(nowMs: number, amount: number, tauMs: number): void {
    this.#rate = this.at(nowMs, tauMs) + amount / tauMs;
    this.#lastMs = nowMs;
  }

  /** Units per ms at `nowMs`. */
  at(nowMs: number, tauMs: number): number {
    if (this.#rate === 0) return 0;
    const dt = Math.max(0, nowMs - this.#lastMs);
    return this.#rate * Math.exp(-dt / tauMs);
  }
}

/** What reading a rate needs (an idle key's rates are a shared zero). */
export interface RateReading {
  at(nowMs: number, tauMs: number): number;
}

/** A key's rates: requests, tokens and USD per ms for forecasts; calls and failures for alerts. */
export class KeyRates {
  readonly requests = new RateAverage();
  readonly tokens = new RateAverage();
  readonly cost = new RateAverage();
  /** Error-rate alert: calls and failed calls, exponentially weighted over alerts.errorRateWindow. */
  readonly calls = new RateAverage();
  readonly failures = new RateAverage();
}

export type RatesView = { readonly [K in keyof KeyRates]: RateReading };

const ZERO_RATE: RateReading = Object.freeze({ at: () => 0 });
/** The rates of a key that has had no call. */
export const NO_RATES: RatesView = Object.freeze({
  requests: ZERO_RATE,
  tokens: ZERO_RATE,
  cost: ZERO_RATE,
  calls: ZERO_RATE,
  failures: ZERO_RATE,
});

/** tau of an EWMA with half-life `halfLifeMs`. */
export const tauOf = (halfLifeMs: number): number => halfLifeMs / Math.LN2;

/** Which limit a forecast is about. */
export type ForecastLimit =
  | "requestsPerDay"
  | "tokensPerMinute"
  | "dailyBudget"
  | "monthlyBudget"
  | "poolDailyBudget"
  | "poolMonthlyBudget";

export interface Forecast {
  limit: ForecastLimit;
  /** When the limit runs out at the current rate (epoch ms). */
  exhaustsAtMs: number;
  /** When the window resets (calendar) or the horizon a sliding window is judged over. */
  resetsAtMs: number;
  /** Runs out before the reset: the pool (or key) will be short, not just busy. */
  beforeReset: boolean;
}

export interface CalendarUse {
  limit: ForecastLimit;
  used: number;
  capacity: number;
  /** units per ms */
  rate: number;
  endMs: number;
}

export interface SlidingUse {
  limit: ForecastLimit;
  used: number;
  capacity: number;
  rate: number;
  windowMs: number;
  /** Of `used`, how much will have left the window by a later time (UsageWindow.leavingBy). */
  leavingBy: (later: number) => number;
}

/** Steps a sliding window's horizon is searched in (a day: 15 minutes each). */
export const SLIDING_STEPS = 96;

/** A calendar window's forecast; undefined when nothing is being used. */
export function calendarForecast(use: CalendarUse, nowMs: number): Forecast | undefined {
  const remaining = Math.max(0, use.capacity - use.used);
  if (remaining === 0)
    return { limit: use.limit, exhaustsAtMs: nowMs, resetsAtMs: use.endMs, beforeReset: true };
  if (!(use.rate > 0)) return undefined;
  const exhaustsAtMs = nowMs + remaining / use.rate;
  return { limit: use.limit, exhaustsAtMs, resetsAtMs: use.endMs, beforeReset: exhaustsAtMs < use.endMs };
}

/** A sliding window's forecast; undefined when it does not fill within a window at this rate. */
export function slidingForecast(use: SlidingUse, nowMs: number): Forecast | undefined {
  const resetsAtMs = nowMs + use.windowMs;
  if (use.used >= use.capacity)
    return { limit: use.limit, exhaustsAtMs: nowMs, resetsAtMs, beforeReset: true };
  if (!(use.rate > 0)) return undefined;
  const step = use.windowMs / SLIDING_STEPS;
  let from = nowMs;
  let leftBefore = 0;
  for (let k = 1; k <= SLIDING_STEPS; k++) {
    const to = nowMs + k * step;
    const left = use.leavingBy(to);
    if (use.used + use.rate * (to - nowMs) - left >= use.capacity) {
      // Within the step: what left by its start is gone; the rate fills the rest.
      const at = from + (use.capacity - (use.used + use.rate * (from - nowMs) - leftBefore)) / use.rate;
      const exhaustsAtMs = Math.min(to, Math.max(from, at));
      return { limit: use.limit, exhaustsAtMs, resetsAtMs, beforeReset: true };
    }
    from = to;
    leftBefore = left;
  }
  return undefined;
}

/** The forecast that matters most: the earliest that runs out before its reset, else the earliest. */
export function mostPressing(forecasts: ReadonlyArray<Forecast | undefined>): Forecast | undefined {
  let best: Forecast | undefined;
  for (const f of forecasts) {
    if (!f) continue;
    if (
      !best ||
      (f.beforeReset && !best.beforeReset) ||
      (f.beforeReset === best.beforeReset && f.exhaustsAtMs < best.exhaustsAtMs)
    )
      best = f;
  }
  return best;
}
