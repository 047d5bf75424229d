import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../../src/server/circuit-breaker.ts";

function breaker(failureThreshold = 3) {
  const clock = { now: 0 };
  return {
    clock,
    breaker: new CircuitBreaker({ failureThreshold, openMs: 1_000, clock: { now: () => clock.now } }),
  };
}

describe("CircuitBreaker", () => {
  it("stays closed below the threshold, and a success resets the count", () => {
    const { breaker: b } = breaker();
    b.failure(0, false);
    b.failure(0, false);
    b.success(0);
    b.failure(0, false);
    b.failure(0, false);
    expect(b.state).toBe("closed");
    expect(b.admit()).toBe("request");
  });

  it("opens at the threshold and refuses requests while open", () => {
    const { breaker: b } = breaker();
    expect([b.failure(0, false), b.failure(0, false), b.failure(0, false)]).toEqual([
      "counted",
      "counted",
      "opened",
    ]);
    expect(b.state).toBe("open");
    expect(b.admit()).toBe("refuse");
    expect(b.retryAfterMs()).toBe(1_000);
  });

  it("opens at once on a timeout", () => {
    const { breaker: b } = breaker();
    expect(b.failure(0, true)).toBe("opened");
    expect(b.state).toBe("open");
  });

  it("is half-open after openMs: one probe, then refusals until it settles", () => {
    const { clock, breaker: b } = breaker();
    b.failure(0, true);
    clock.now = 1_000;
    expect(b.state).toBe("half-open");
    expect(b.admit()).toBe("probe");
    expect(b.admit()).toBe("refuse");
    expect(b.retryAfterMs()).toBe(0);
  });

  it("closes when the probe succeeds, and opens again when it fails", () => {
    const { clock, breaker: b } = breaker();
    b.failure(0, true);
    clock.now = 1_000;
    b.admit();
    expect(b.failure(1_000, false)).toBe("opened");
    expect(b.state).toBe("open");
    clock.now = 2_000;
    b.admit();
    expect(b.success(2_000)).toBe(true);
    expect(b.state).toBe("closed");
    expect(b.admit()).toBe("request");
  });

  it("does not count a failure of a request sent before the last success", () => {
    const { clock, breaker: b } = breaker(1);
    clock.now = 500;
    b.success(400);
    expect(b.failure(300, true)).toBe("ignored");
    expect(b.state).toBe("closed");
  });
});
