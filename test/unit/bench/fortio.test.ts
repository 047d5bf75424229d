import { describe, expect, it } from "vitest";
import { latenciesOf, percentile } from "../../../bench/fortio.ts";

describe("bench: latency percentiles from fortio's access log", () => {
  it("reads each request's latency in ms, sorted", () => {
    const log = [
      '{"latency":0.081675,"timestamp":1795484963428495834,"thread":0,"iter":0,"ok":true,"details":"200"}',
      '{"latency":0.000250,"timestamp":1795484963438815235,"thread":1,"iter":0,"ok":true,"details":"200"}',
      "",
    ].join("\n");
    expect([...latenciesOf(log)]).toEqual([0.25, 81.675]);
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
});
