import { describe, expect, it } from "vitest";
import {
  latenciesOf,
  type PacedResult,
  percentile,
  pooledPaced,
  runP99s,
  slowestOf,
} from "../../../bench/fortio.ts";

describe("bench: latency percentiles from fortio's access log", () => {
  it("reads each request's latency in ms, sorted", () => {
    const log = [
      '{"latency":0.081675,"timestamp":1795484963428495834,"thread":0,"iter":0,"ok":true,"details":"200"}',
      '{"latency":0.000250,"timestamp":1795484963438815235,"thread":1,"iter":0,"ok":true,"details":"200"}',
      "",
    ].join("\n");
    expect([...latenciesOf(log)]).toEqual([0.25, 81.675]);
  });

  it("keeps the slowest requests with when they were sent, slowest first", () => {
    const log = [
      '{"latency":0.001,"timestamp":1795484963000000000,"thread":0,"iter":0,"ok":true,"details":"200"}',
      '{"latency":0.055,"timestamp":1795484963500000000,"thread":1,"iter":0,"ok":true,"details":"200"}',
      '{"latency":0.002,"timestamp":1795484964000000000,"thread":0,"iter":1,"ok":true,"details":"200"}',
      "",
    ].join("\n");
    expect(slowestOf(log, 2)).toEqual([
      { atMs: 1795484963500, ms: 55 },
      { atMs: 1795484964000, ms: 2 },
    ]);
  });

  it("nearest rank: p50 of 1..100 is 50, p99 is 99, p99.9 and p100 are the largest", () => {
    const values = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 99.9)).toBe(100);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile(values, 0)).toBe(1);
  });

  it("a single value is every percentile; no values give NaN", () => {
    expect(percentile(Float64Array.of(3), 99)).toBe(3);
    expect(percentile(new Float64Array(0), 50)).toBeNaN();
  });

  const run = (values: number[], failures = 0): PacedResult => {
    const latencies = Float64Array.from(values).sort();
    return {
      rps: values.length,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      max: latencies[latencies.length - 1] ?? Number.NaN,
      failures,
      latencies,
      slowest: [],
    };
  };

  it("pools rounds: percentiles over every request, failures summed, each round's p99 kept", () => {
    // Three rounds of 100 requests; a stall in one round slowed 2 of its requests, which decide
    // that round's p99 but are under 1% of all 300.
    const quiet = Array.from({ length: 100 }, (_, i) => 1 + i / 100);
    const stalled = [...quiet.slice(2), 40, 44];
    const rounds = [run(quiet), run(stalled, 2), run(quiet)];
    const pooled = pooledPaced(rounds);
    expect(pooled.latencies).toHaveLength(300);
    expect([...pooled.latencies].every((v, i, a) => i === 0 || (a[i - 1] as number) <= v)).toBe(true);
    // The 297th of 300: a request the stall did not slow.
    expect(pooled.p99).toBe(1.99);
    expect(pooled.max).toBe(44);
    expect(pooled.failures).toBe(2);
    expect(pooled.rps).toBe(100);
    expect(runP99s(rounds)).toEqual([1.98, 1.98, 40]);
  });
});
