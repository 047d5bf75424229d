import { describe, expect, it } from "vitest";
import {
  DAY_MS,
  dayOfArrivals,
  diurnalShape,
  expectedPerMinute,
  formatTable,
  HOUR_MS,
  hhmm,
  MINUTE_MS,
  mulberry32,
  perHour,
  poisson,
  type SimKey,
  signedHours,
  simulateDay,
} from "../../../bench/forecast-sim.ts";
import { DEFAULT_POOL_CONFIG, type PoolConfig } from "../../../src/pool/config.ts";

const DAY_START = Date.UTC(2026, 2, 10);

describe("bench forecast: seeded randomness", () => {
  it("mulberry32 gives the same numbers for the same seed, others for another, all in [0, 1)", () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const c = mulberry32(8);
    const first = Array.from({ length: 100 }, () => a());
    expect(Array.from({ length: 100 }, () => b())).toEqual(first);
    expect(Array.from({ length: 100 }, () => c())).not.toEqual(first);
    for (const x of first) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });

  it("poisson draws average to their mean", () => {
    const random = mulberry32(1);
    const draws = Array.from({ length: 20_000 }, () => poisson(6, random));
    const mean = draws.reduce((s, n) => s + n, 0) / draws.length;
    expect(mean).toBeGreaterThan(5.9);
    expect(mean).toBeLessThan(6.1);
    expect(poisson(0, random)).toBe(0);
  });
});

describe("bench forecast: a day of arrivals", () => {
  it("is the same for the same seed and different for another", () => {
    expect(dayOfArrivals(3000, 42)).toEqual(dayOfArrivals(3000, 42));
    expect(dayOfArrivals(3000, 43)).not.toEqual(dayOfArrivals(3000, 42));
  });

  it("is ascending, within the day, and about the total asked for", () => {
    const arrivals = dayOfArrivals(12_000, 20260310);
    expect(arrivals.every((t, i) => i === 0 || t >= (arrivals[i - 1] as number))).toBe(true);
    expect(arrivals[0]).toBeGreaterThanOrEqual(0);
    expect(arrivals.at(-1)).toBeLessThan(DAY_MS);
    expect(Math.abs(arrivals.length - 12_000)).toBeLessThan(360);
  });

  it("is low at night and peaks in the afternoon", () => {
    const hours = perHour(dayOfArrivals(12_000, 20260310));
    const night = (hours[2] ?? 0) + (hours[3] ?? 0) + (hours[4] ?? 0);
    const afternoon = (hours[14] ?? 0) + (hours[15] ?? 0) + (hours[16] ?? 0);
    expect(afternoon).toBeGreaterThan(5 * night);
    const busiest = hours.indexOf(Math.max(...hours));
    expect(busiest).toBeGreaterThanOrEqual(13);
    expect(busiest).toBeLessThanOrEqual(16);
  });

  it.each([
    { what: "the peak hour is the highest", minute: 15 * 60, expected: 1 },
    { what: "twelve hours from the peak is the floor", minute: 3 * 60, expected: 0.15 },
  ])("the shape: $what", ({ minute, expected }) => {
    expect(diurnalShape(minute)).toBeCloseTo(expected, 10);
  });

  it("expected arrivals per minute add up to the total", () => {
    const perMinute = expectedPerMinute(12_000);
    expect(perMinute).toHaveLength(1440);
    expect(perMinute.reduce((s, n) => s + n, 0)).toBeCloseTo(12_000, 6);
  });
});

describe("bench forecast: text", () => {
  it.each([
    { ms: 0, text: "00:00" },
    { ms: 11 * HOUR_MS + 44 * MINUTE_MS + 59_999, text: "11:44" },
    { ms: 25 * HOUR_MS + 5 * MINUTE_MS, text: "25:05" },
    { ms: undefined, text: "-" },
  ])("hhmm($ms) is $text", ({ ms, text }) => {
    expect(hhmm(ms)).toBe(text);
  });

  it.each([
    { ms: 9 * HOUR_MS + 28 * MINUTE_MS, text: "+9:28" },
    { ms: -(65 * MINUTE_MS), text: "-1:05" },
    { ms: 0, text: "+0:00" },
  ])("signedHours($ms) is $text", ({ ms, text }) => {
    expect(signedHours(ms)).toBe(text);
  });

  it("pads names left and figures right, to the widest cell", () => {
    expect(
      formatTable(
        ["strategy", "refused"],
        [
          ["RoundRobin", "1089"],
          ["Weighted", "7"],
        ],
      ),
    ).toEqual(["strategy    refused", "RoundRobin     1089", "Weighted          7"]);
  });
});

describe("bench forecast: one day through the engine", () => {
  const config: PoolConfig = { ...DEFAULT_POOL_CONFIG, strategy: "RoundRobin" };
  const minutes = (...ms: number[]) => ms.map((m) => m * MINUTE_MS);

  it("serves a key up to its requestsPerDay, then refuses, and says when it ran out", () => {
    const keys: SimKey[] = [{ name: "a", requestsPerDay: 3, requestsPerMinute: 10 }];
    const result = simulateDay({
      config,
      keys,
      arrivals: minutes(0, 1, 2, 3, 4),
      dayStartMs: DAY_START,
      checkpointsMs: minutes(2.5, 30),
    });
    expect(result).toMatchObject({
      arrivals: 5,
      served: 3,
      refused: 2,
      refusedWithQuotaLeft: 0,
      firstRefusalMs: 3 * MINUTE_MS,
      exhaustedAtMs: [2 * MINUTE_MS],
      servedBy: [3],
      anomalies: [],
    });
    expect(result.checkpoints.map((c) => c.atMs)).toEqual(minutes(2.5, 30));
    expect(result.checkpoints[0]?.used).toEqual([3]);
    expect(result.checkpoints[0]?.keys[0]).toMatchObject({
      limit: "requestsPerDay",
      exhaustsAtMs: DAY_START + 2.5 * MINUTE_MS,
    });
  });

  it("counts a call refused for a full per-minute window while day quota is left", () => {
    const keys: SimKey[] = [{ name: "a", requestsPerDay: 100, requestsPerMinute: 1 }];
    const result = simulateDay({ config, keys, arrivals: [0, 1000, 61_000], dayStartMs: DAY_START });
    expect(result).toMatchObject({ served: 2, refused: 1, refusedWithQuotaLeft: 1, firstRefusalMs: 1000 });
    expect(result.exhaustedAtMs).toEqual([undefined]);
  });

  it("is the same run twice", () => {
    const keys: SimKey[] = [
      { name: "a", requestsPerDay: 50, requestsPerMinute: 2 },
      { name: "b", requestsPerDay: 20, requestsPerMinute: 2 },
    ];
    const arrivals = dayOfArrivals(100, 5);
    const balanced = { ...config, forecast: { ...config.forecast, balance: true } };
    const run = () => simulateDay({ config: balanced, keys, arrivals, dayStartMs: DAY_START });
    expect(run()).toEqual(run());
  });
});
