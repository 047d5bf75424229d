/**
 * Spend of one key (or a whole pool) in the current budget day and month, in USD, with the
 * share of each model. Windows roll over lazily: the first add or read in a new day starts the
 * day at 0. Pure: callers pass the windows (budget-window.ts) for `now`.
 */
import type { BudgetWindows } from "./budget-window.ts";

export interface SpendTotals {
  dayUSD: number;
  monthUSD: number;
}

/** What a snapshot keeps of a spend counter (the windows it counts in, by id). */
export interface SpendSnapshot {
  day: string;
  dayUSD: number;
  month: string;
  monthUSD: number;
  /** Per model: [dayUSD, monthUSD]. */
  models?: Record<string, [number, number]>;
}

/** Models tracked per counter; calls to more models count under "other". */
export const MAX_MODELS = 50;
export const OTHER_MODEL = "other";

export class SpendCounter {
  #day = "";
  #month = "";
  dayUSD = 0;
  monthUSD = 0;
  /** model → [dayUSD, monthUSD]; made at the first priced call (an unused key holds no map). */
  #models: Map<string, [number, number]> | undefined;

  /** Starts new windows when `windows` are newer than the ones counted. */
  roll(windows: BudgetWindows): void {
    const models = this.#models;
    if (windows.month.id !== this.#month) {
      this.#month = windows.month.id;
      this.monthUSD = 0;
      if (models) for (const m of models.values()) m[1] = 0;
    }
    if (windows.day.id !== this.#day) {
      this.#day = windows.day.id;
      this.dayUSD = 0;
      if (models) for (const m of models.values()) m[0] = 0;
    }
    if (models) for (const [model, m] of models) if (m[0] === 0 && m[1] === 0) models.delete(model);
  }

  add(windows: BudgetWindows, usd: number, model: string | undefined): void {
    this.roll(windows);
    if (!(usd > 0)) return;
    this.dayUSD += usd;
    this.monthUSD += usd;
    if (model === undefined) return;
    const models = (this.#models ??= new Map());
    let m = models.get(model);
    if (!m) {
      const name = models.size < MAX_MODELS ? model : OTHER_MODEL;
      m = models.get(name) ?? [0, 0];
      models.set(name, m);
    }
    m[0] += usd;
    m[1] += usd;
  }

  /**
   * Takes totals counted elsewhere (a shared store: every replica's spend) where they are larger:
   * a counter never goes down within its windows.
   */
  raiseTo(windows: BudgetWindows, totals: SpendTotals): void {
    this.roll(windows);
    this.dayUSD = Math.max(this.dayUSD, totals.dayUSD);
    this.monthUSD = Math.max(this.monthUSD, totals.monthUSD);
  }

  totals(windows: BudgetWindows): SpendTotals {
    this.roll(windows);
    return { dayUSD: this.dayUSD, monthUSD: this.monthUSD };
  }

  /** Per model, most expensive first this month. */
  byModel(windows: BudgetWindows): Array<{ model: string; dayUSD: number; monthUSD: number }> {
    this.roll(windows);
    return [...(this.#models ?? [])]
      .map(([model, [dayUSD, monthUSD]]) => ({ model, dayUSD, monthUSD }))
      .sort((a, b) => b.monthUSD - a.monthUSD || a.model.localeCompare(b.model));
  }

  get empty(): boolean {
    return this.dayUSD === 0 && this.monthUSD === 0;
  }

  snapshot(): SpendSnapshot | undefined {
    if (this.empty) return undefined;
    return {
      day: this.#day,
      dayUSD: this.dayUSD,
      month: this.#month,
      monthUSD: this.monthUSD,
      ...(this.#models?.size
        ? { models: Object.fromEntries([...this.#models].map(([k, v]) => [k, [...v]])) }
        : {}),
    };
  }

  /** Takes a saved counter's windows that are still current (`windows`); older ones are over. */
  restore(saved: SpendSnapshot, windows: BudgetWindows): void {
    this.roll(windows);
    const sameMonth = saved.month === windows.month.id;
    const sameDay = saved.day === windows.day.id;
    if (sameMonth) this.monthUSD = Math.max(this.monthUSD, saved.monthUSD);
    if (sameDay) this.dayUSD = Math.max(this.dayUSD, saved.dayUSD);
    for (const [model, [day, month]] of Object.entries(saved.models ?? {})) {
      const m = this.#models?.get(model) ?? [0, 0];
      if (sameDay) m[0] = Math.max(m[0], day);
      if (sameMonth) m[1] = Math.max(m[1], month);
      if (m[0] || m[1]) (this.#models ??= new Map()).set(model, m);
    }
  }
}
