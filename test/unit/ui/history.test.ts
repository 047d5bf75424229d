import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../src/pool/clock.ts";
import { totalsOf, type UsageTotals, UsageHistory } from "../../../src/ui/history.ts";
import { ManualTimers } from "./manual-timers.ts";

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

/** A sampler over totals the test sets, stepped 10 s at a time. */
function sampler(capacity?: number) {
  const clock = new ManualClock(T0);
  const timers = new ManualTimers();
  let current: Record<string, UsageTotals> = {};
  let samples = 0;
  const history = new UsageHistory({
    totals: () => Object.entries(current),
    clock,
    timers,
    ...(capacity ? { capacity } : {}),
    onSample: () => samples++,
  });
  const step = (totals: Record<string, UsageTotals>) => {
    clock.advance(10_000);
    current = totals;
    timers.fire();
  };
  const start = (totals: Record<string, UsageTotals>) => {
    current = totals;
    history.start();
  };
  return { history, timers, step, start, samples: () => samples };
}

describe("totalsOf", () => {
  it.each([
    [
      "sums requests and errors over the keys, with no cost when no key has one",
      {
        keyStatuses: [
          { requests: 3, errors: 1 },
          { requests: 4, errors: 0 },
        ],
      },
      { requests: 7, errors: 1 },
    ],
    [
      "sums the keys' cost today when they have one",
      {
        keyStatuses: [
          { requests: 1, errors: 0, costTodayUSD: 0.25 },
          { requests: 1, errors: 0, costTodayUSD: 0.5 },
        ],
      },
      { requests: 2, errors: 0, costUSD: 0.75 },
    ],
    [
      "takes the pool's own cost today over the keys' sum",
      { costTodayUSD: 2, keyStatuses: [{ requests: 1, errors: 0, costTodayUSD: 0.5 }] },
      { requests: 1, errors: 0, costUSD: 2 },
    ],
    ["gives zeros for a pool without keys", { keyStatuses: [] }, { requests: 0, errors: 0 }],
  ])("%s", (_name, view, expected) => {
    expect(totalsOf(view)).toEqual(expected);
  });
});

describe("the usage history", () => {
  it("samples at start and then every 10 s, telling after each sample", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 0, errors: 0 } });
    expect(s.samples()).toBe(1);
    expect([...s.timers.intervals.values()].map((i) => i.ms)).toEqual([10_000]);
    s.step({ "ai/gpt": { requests: 10, errors: 0 } });
    expect(s.samples()).toBe(2);
  });

  it("gives rates per minute between samples, stamped with the end of each interval in seconds", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 0, errors: 0 } });
    s.step({ "ai/gpt": { requests: 10, errors: 1 } });
    s.step({ "ai/gpt": { requests: 40, errors: 1 } });
    expect(s.history.series()).toEqual({
      "ai/gpt": {
        t: [T0 / 1000 + 10, T0 / 1000 + 20],
        requestsPerMin: [60, 180],
        errorsPerMin: [6, 0],
      },
    });
  });

  it("has no point until a pool has two samples", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 5, errors: 0 } });
    expect(s.history.series()).toEqual({ "ai/gpt": { t: [], requestsPerMin: [], errorsPerMin: [] } });
  });

  it("counts a counter that went down (a key gone, cost at midnight) from zero, never as negative use", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 100, errors: 10, costUSD: 5 } });
    s.step({ "ai/gpt": { requests: 2, errors: 0, costUSD: 0.5 } });
    expect(s.history.series()["ai/gpt"]).toMatchObject({
      requestsPerMin: [12],
      errorsPerMin: [0],
      costPerMin: [3],
    });
  });

  it("gives cost per minute only once a pool has cost, null where a sample had none", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 0, errors: 0 } });
    s.step({ "ai/gpt": { requests: 0, errors: 0 } });
    expect(s.history.series()["ai/gpt"]).not.toHaveProperty("costPerMin");
    s.step({ "ai/gpt": { requests: 0, errors: 0, costUSD: 1 } });
    s.step({ "ai/gpt": { requests: 0, errors: 0, costUSD: 1.5 } });
    expect(s.history.series()["ai/gpt"]?.costPerMin).toEqual([null, null, 3]);
  });

  it("keeps the last `capacity` samples (an hour of 360 by default)", () => {
    const s = sampler(4);
    s.start({ "ai/gpt": { requests: 0, errors: 0 } });
    for (let i = 1; i <= 6; i++) s.step({ "ai/gpt": { requests: i * 10, errors: 0 } });
    const series = s.history.series()["ai/gpt"];
    // 4 samples (at 30, 40, 50, 60 s): 3 intervals.
    expect(series?.t).toEqual([T0 / 1000 + 40, T0 / 1000 + 50, T0 / 1000 + 60]);
    expect(series?.requestsPerMin).toEqual([60, 60, 60]);
  });

  it("keeps each pool apart, starts a new pool's history empty and drops a pool that is gone", () => {
    const s = sampler();
    s.start({ "ai/a": { requests: 0, errors: 0 } });
    s.step({ "ai/a": { requests: 6, errors: 0 }, "ai/b": { requests: 100, errors: 0 } });
    s.step({ "ai/b": { requests: 106, errors: 0 } });
    expect(s.history.series()).toEqual({
      "ai/b": { t: [T0 / 1000 + 20], requestsPerMin: [36], errorsPerMin: [0] },
    });
  });

  it("stores one sample for a pool that stays idle, and still gives each interval's rate", () => {
    const s = sampler();
    const idle = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`ai/p${i}`, { requests: 7, errors: 1 }]));
    s.start(idle(100));
    for (let i = 0; i < 400; i++) s.step(idle(100));
    expect(s.history.storedSamples).toBe(100);
    const series = s.history.series()["ai/p0"];
    expect(series?.t).toHaveLength(359);
    expect(new Set(series?.requestsPerMin)).toEqual(new Set([0]));
  });

  it("gives the same rates from changes alone through a busy stretch, a quiet one and the window's end", () => {
    const s = sampler(6);
    let requests = 0;
    s.start({ "ai/gpt": { requests, errors: 0 } });
    const perStep = [6, 6, 0, 0, 0, 12, 0, 3, 0, 0];
    for (const n of perStep) {
      requests += n;
      s.step({ "ai/gpt": { requests, errors: 0 } });
    }
    // The last 6 samples: 5 intervals, the last five steps (one request in 10 s is 6 a minute).
    expect(s.history.series()["ai/gpt"]?.requestsPerMin).toEqual(perStep.slice(-5).map((n) => n * 6));
    expect(s.history.storedSamples).toBeLessThanOrEqual(3);
  });

  it("stops sampling when stopped, and starts only once", () => {
    const s = sampler();
    s.start({ "ai/gpt": { requests: 0, errors: 0 } });
    s.history.start();
    expect(s.timers.intervals.size).toBe(1);
    expect(s.samples()).toBe(1);
    s.history.stop();
    expect(s.timers.intervals.size).toBe(0);
  });
});
