/**
 * Cost, budgets, LowestCost, balance, forecasts and alerts, through the engine with an injected
 * clock: what a user sees in views and picks.
 */
import { describe, expect, it } from "vitest";
import type { ModelPrice } from "../../../src/api/keypool.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import { DEFAULT_POOL_CONFIG, type PoolConfig } from "../../../src/pool/config.ts";
import { KeyPoolEngine, type KeyTransitionEvent } from "../../../src/pool/engine.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { PriceTable } from "../../../src/pool/pricing.ts";
import type { BudgetNotice } from "../../../src/pool/spending.ts";
import { idOf, keys } from "./helpers.ts";

const PRICES: ModelPrice[] = [
  { model: "gpt-4o-mini", inputPerMillion: 0.15, outputPerMillion: 0.6, cachedInputPerMillion: 0.075 },
  { model: "claude-*", inputPerMillion: 3, outputPerMillion: 15 },
];
/** 2026-11-22 23:00 UTC: an hour before a new budget day. */
const LATE = Date.UTC(2026, 10, 22, 23, 0, 0);
const MIDNIGHT = Date.UTC(2026, 10, 23, 0, 0, 0);

function pool(config: Partial<PoolConfig>, entries: KeyEntry[], start = LATE) {
  const clock = new ManualClock(start);
  const transitions: KeyTransitionEvent[] = [];
  const notices: BudgetNotice[] = [];
  let n = 0;
  const engine = new KeyPoolEngine(
    { ...DEFAULT_POOL_CONFIG, prices: new PriceTable(PRICES), ...config },
    {
      clock,
      newLeaseToken: () => ++n,
      onTransition: (e) => transitions.push(e),
      onBudget: (b) => notices.push(b),
    },
  );
  engine.setKeys(entries);
  return { engine, clock, transitions, notices };
}

/** One call on whatever key the pool picks, reported with its usage; the key id, or undefined. */
function call(engine: KeyPoolEngine, input: number, output: number, model = "gpt-4o-mini", cached = 0) {
  const r = engine.pick();
  if (!r.ok) return undefined;
  engine.report(
    { leaseId: r.leaseId },
    {
      kind: "success",
      tokens: input + output,
      usage: { model, inputTokens: input, outputTokens: output, cachedInputTokens: cached },
    },
  );
  return r.keyId;
}

const budget = (limits: PoolConfig["budget"]["limits"], warnAtPercent = 80) => ({
  limits,
  warnAtPercent,
  timeZone: "UTC",
});

describe("cost", () => {
  it("is tokens times the price per million, cached input at its own price", () => {
    const { engine } = pool({}, keys("a"));
    call(engine, 1_000_000, 0);
    call(engine, 0, 1_000_000);
    call(engine, 1_000_000, 0, "gpt-4o-mini", 400_000);
    // 0.15 + 0.6 + (600k x 0.15 + 400k x 0.075) / 1M = 0.75 + 0.09 + 0.03
    expect(engine.spendingView().costTodayUSD).toBeCloseTo(0.87, 10);
    expect(engine.keys()[0]?.costTodayUSD).toBeCloseTo(0.87, 10);
  });

  it("matches a pattern by its longest prefix, and counts unknown models as nothing", () => {
    const { engine } = pool({}, keys("a"));
    call(engine, 1000, 1000, "claude-3-5-haiku-20241022");
    call(engine, 1000, 1000, "mystery-model");
    const view = engine.spendingView();
    expect(view.costTodayUSD).toBeCloseTo(0.018, 10);
    expect(view.byModel).toEqual([
      {
        model: "claude-3-5-haiku-20241022",
        costTodayUSD: expect.closeTo(0.018, 10),
        costThisMonthUSD: expect.closeTo(0.018, 10),
      },
    ]);
  });

  it("multiplies by the key's costMultiplier", () => {
    const { engine } = pool({}, [{ ...(keys("a")[0] as KeyEntry), costMultiplier: 0.5 }]);
    call(engine, 1_000_000, 0);
    expect(engine.spendingView().costTodayUSD).toBeCloseTo(0.075, 10);
  });

  it("starts a new day at midnight UTC and keeps the month", () => {
    const { engine, clock } = pool({}, keys("a"));
    call(engine, 1_000_000, 0);
    clock.set(MIDNIGHT + 1);
    call(engine, 1_000_000, 0);
    const view = engine.spendingView();
    expect(view.day).toBe("2026-11-23");
    expect(view.costTodayUSD).toBeCloseTo(0.15, 10);
    expect(view.costThisMonthUSD).toBeCloseTo(0.3, 10);
  });

  it("is kept by a snapshot for the windows still current", () => {
    const { engine, clock } = pool({}, keys("a"));
    call(engine, 1_000_000, 0);
    const saved = engine.snapshot();
    const same = pool({}, [], LATE + 60_000);
    same.engine.restore(saved);
    same.engine.setKeys(keys("a"));
    expect(same.engine.spendingView().costTodayUSD).toBeCloseTo(0.15, 10);
    expect(same.engine.keys()[0]?.costTodayUSD).toBeCloseTo(0.15, 10);
    clock.set(MIDNIGHT + 1);
    const next = pool({}, keys("a"), MIDNIGHT + 1);
    next.engine.restore(saved);
    expect(next.engine.spendingView().costTodayUSD).toBe(0);
    expect(next.engine.spendingView().costThisMonthUSD).toBeCloseTo(0.15, 10);
  });
});

describe("budgets", () => {
  const keyWithBudget = (name: string, dailyUSD: number): KeyEntry => ({
    ...(keys(name)[0] as KeyEntry),
    budget: { dailyUSD },
  });

  it("stops handing out a key over its daily budget until the next UTC day", () => {
    const { engine, clock, transitions } = pool({ strategy: "RoundRobin" }, [keyWithBudget("a", 0.3)]);
    expect(call(engine, 1_000_000, 0)).toBe(idOf("a")); // $0.15
    expect(call(engine, 1_000_000, 0)).toBe(idOf("a")); // $0.30: at the budget
    expect(engine.pick().ok).toBe(false);
    const view = engine.keys()[0];
    expect(view).toMatchObject({ state: "QuotaExhausted", reason: "budget_exhausted", untilMs: MIDNIGHT });
    expect(transitions.at(-1)).toMatchObject({ to: "QuotaExhausted", reason: "budget_exhausted" });
    clock.set(MIDNIGHT);
    expect(call(engine, 1, 0)).toBe(idOf("a"));
    expect(engine.keys()[0]?.state).toBe("Healthy");
  });

  it("a successful probe does not bring a budget-exhausted key back early", () => {
    const { engine } = pool({}, [keyWithBudget("a", 0.1)]);
    call(engine, 1_000_000, 0);
    engine.report({ keyId: idOf("a") }, { kind: "success" }, "probe");
    expect(engine.keys()[0]?.state).toBe("QuotaExhausted");
  });

  it("holds every key when the pool's budget is spent, and a key joining later too", () => {
    const { engine } = pool({ budget: budget({ dailyUSD: 0.3 }) }, keys("a", "b"));
    call(engine, 1_000_000, 0);
    call(engine, 1_000_000, 0);
    expect(engine.pick().ok).toBe(false);
    engine.setKeys(keys("a", "b", "c"));
    expect(engine.keys().map((k) => [k.state, k.reason])).toEqual([
      ["QuotaExhausted", "pool_budget_exhausted"],
      ["QuotaExhausted", "pool_budget_exhausted"],
      ["QuotaExhausted", "pool_budget_exhausted"],
    ]);
    expect(engine.spendingView().budget.daily).toEqual({
      limitUSD: 0.3,
      spentUSD: expect.closeTo(0.3, 10),
      resetsAtMs: MIDNIGHT,
    });
  });

  it("warns once at warnAtPercent and tells once when spent", () => {
    const { engine, notices } = pool({ budget: budget({ dailyUSD: 1 }) }, keys("a"));
    for (let i = 0; i < 5; i++) call(engine, 1_000_000, 0); // 0.15 each: 0.75
    expect(notices).toEqual([]);
    call(engine, 1_000_000, 0); // 0.90
    call(engine, 1_000_000, 0); // 1.05
    expect(notices.map((n) => [n.scope, n.period, n.level])).toEqual([
      ["pool", "daily", "warning"],
      ["pool", "daily", "exhausted"],
    ]);
    expect(notices[1]).toMatchObject({ limitUSD: 1, resetsAtMs: MIDNIGHT });
  });

  it("lets the keys go when the budget is raised", () => {
    const { engine } = pool({ budget: budget({ dailyUSD: 0.1 }) }, keys("a"));
    call(engine, 1_000_000, 0);
    expect(engine.pick().ok).toBe(false);
    engine.setConfig({ ...engine.config, budget: budget({ dailyUSD: 10 }) });
    expect(engine.keys()[0]).toMatchObject({ state: "Healthy", reason: "budget_raised" });
    expect(engine.pick().ok).toBe(true);
  });

  it("takes spend counted on other replicas (a shared store) and holds the key at once", () => {
    const { engine } = pool({}, [keyWithBudget("a", 1)]);
    engine.applySharedSpend(idOf("a"), {
      key: { dayUSD: 1.2, monthUSD: 1.2 },
      pool: { dayUSD: 1.2, monthUSD: 1.2 },
    });
    expect(engine.keys()[0]).toMatchObject({ state: "QuotaExhausted", reason: "budget_exhausted" });
    expect(engine.spendingView().costTodayUSD).toBeCloseTo(1.2, 10);
  });
});

describe("LowestCost", () => {
  it("hands out the cheapest key first and spills to the next as its limit fills", () => {
    const entries: KeyEntry[] = [
      { ...(keys("dear")[0] as KeyEntry), costMultiplier: 1 },
      { ...(keys("cheap")[0] as KeyEntry), costMultiplier: 0.5, limits: { requestsPerMinute: 3 } },
      { ...(keys("mid")[0] as KeyEntry), costMultiplier: 0.8 },
    ];
    const { engine } = pool({ strategy: "LowestCost" }, entries);
    const picks = Array.from({ length: 5 }, () => call(engine, 1, 1));
    expect(picks).toEqual([idOf("cheap"), idOf("cheap"), idOf("cheap"), idOf("mid"), idOf("mid")]);
  });
});

describe("forecast.balance", () => {
  /** Picks until the first key is out of its day (no report needed), counting picks. */
  function firstExhaustion(balance: boolean) {
    const entries: KeyEntry[] = [
      { ...(keys("big")[0] as KeyEntry), limits: { requestsPerDay: 900 } },
      { ...(keys("small")[0] as KeyEntry), limits: { requestsPerDay: 100 } },
    ];
    const { engine, clock } = pool(
      { strategy: "RoundRobin", forecast: { balance, halfLifeMs: 300_000 } },
      entries,
    );
    for (let i = 1; i <= 1000; i++) {
      const r = engine.pick();
      if (!r.ok) return i;
      engine.report({ leaseId: r.leaseId }, { kind: "success" });
      if (engine.usableCount < 2) return i;
      clock.advance(1000);
    }
    return 1001;
  }

  it("shares calls by what keys have left, so they run out together", () => {
    expect(firstExhaustion(false)).toBe(200); // round robin: the small key is out after 200 calls
    expect(firstExhaustion(true)).toBeGreaterThanOrEqual(990);
  });
});

describe("forecasts", () => {
  it("says when a steady rate runs out of a daily budget, before the day ends", () => {
    const { engine, clock } = pool(
      { budget: budget({ dailyUSD: 10 }) },
      keys("a"),
      Date.UTC(2026, 10, 22, 12),
    );
    // $0.15 a minute for 30 minutes: $4.50 spent, $5.50 left at $9/h: about 37 minutes more.
    for (let i = 0; i < 30; i++) {
      call(engine, 1_000_000, 0);
      clock.advance(60_000);
    }
    const f = engine.spendingView().forecast;
    expect(f).toMatchObject({ limit: "poolDailyBudget", beforeReset: true });
    const minutes = ((f?.exhaustsAtMs ?? 0) - clock.now()) / 60_000;
    expect(minutes).toBeGreaterThan(30);
    expect(minutes).toBeLessThan(60);
  });

  it("says nothing runs out when the rate stops", () => {
    const { engine, clock } = pool(
      { budget: budget({ dailyUSD: 10 }) },
      keys("a"),
      Date.UTC(2026, 10, 22, 12),
    );
    call(engine, 1_000_000, 0);
    clock.advance(6 * 3_600_000);
    expect(engine.spendingView().forecast?.beforeReset ?? false).toBe(false);
  });
});

describe("alerts", () => {
  it("marks a key Degraded when over 20% of its calls fail in the window", () => {
    const { engine, clock } = pool({ failureThreshold: 100 }, keys("a"));
    for (let i = 0; i < 20; i++) {
      const r = engine.pick();
      if (!r.ok) throw new Error("no key");
      engine.report({ leaseId: r.leaseId }, i % 3 === 0 ? { kind: "serverError" } : { kind: "success" });
      clock.advance(1000);
    }
    expect(engine.keys()[0]).toMatchObject({ state: "Degraded", reason: "error_rate_high" });
  });

  it("marks a slow key Degraded and lets it go after a quiet period", () => {
    const { engine, clock } = pool({}, keys("a"));
    for (let i = 0; i < 5; i++) {
      const r = engine.pick();
      if (!r.ok) throw new Error("no key");
      engine.report({ leaseId: r.leaseId }, { kind: "success", latencyMs: 45_000 });
    }
    expect(engine.keys()[0]).toMatchObject({ state: "Degraded", reason: "latency_high" });
    clock.advance(DEFAULT_POOL_CONFIG.degradedCooldownMs + 1);
    expect(engine.keys()[0]?.state).toBe("Healthy");
  });
});

describe("sliding-window forecasts", () => {
  it("see a fresh day-long window fill at the rate, as nothing leaves it yet", () => {
    const entries: KeyEntry[] = [{ ...(keys("a")[0] as KeyEntry), limits: { requestsPerDay: 1000 } }];
    const start = Date.UTC(2026, 10, 22, 8);
    const { engine, clock } = pool({}, entries, start);
    // 2 calls a minute for an hour: 120 used, 880 left at 2/min: about 440 minutes more.
    for (let i = 0; i < 120; i++) {
      call(engine, 1, 1);
      clock.advance(30_000);
    }
    const f = engine.keys()[0]?.forecast;
    expect(f).toMatchObject({ limit: "requestsPerDay", beforeReset: true });
    const minutes = ((f?.exhaustsAtMs ?? 0) - clock.now()) / 60_000;
    expect(minutes).toBeGreaterThan(400);
    expect(minutes).toBeLessThan(480);
  });

  it("see no exhaustion when yesterday's use leaves as fast as today's comes", () => {
    const entries: KeyEntry[] = [{ ...(keys("a")[0] as KeyEntry), limits: { requestsPerDay: 3000 } }];
    const { engine, clock } = pool({}, entries, Date.UTC(2026, 10, 21, 8));
    // A steady 1 call a minute for 30 hours: the window holds a day's 1440, well under 3000.
    for (let i = 0; i < 30 * 60; i++) {
      call(engine, 1, 1);
      clock.advance(60_000);
    }
    expect(engine.keys()[0]?.forecast).toBeUndefined();
  });
});
