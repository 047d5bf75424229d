import { describe, expect, it } from "vitest";
import { backoffCeiling, backoffDelay } from "../../../src/controller/backoff.ts";

const POLICY = { baseMs: 1_000, maxMs: 300_000 };

describe("the controller's backoff", () => {
  it.each([
    { name: "the first retry waits up to the base", retry: 0, ceiling: 1_000 },
    { name: "each further retry doubles the ceiling", retry: 3, ceiling: 8_000 },
    { name: "the ceiling stops at the maximum", retry: 9, ceiling: 300_000 },
    { name: "a huge retry count stays at the maximum", retry: 5_000, ceiling: 300_000 },
    { name: "a negative retry count is the first retry", retry: -1, ceiling: 1_000 },
  ])("$name", ({ retry, ceiling }) => {
    expect(backoffCeiling(retry, POLICY)).toBe(ceiling);
  });

  it.each([
    { name: "half the ceiling at the lowest jitter", random: 0, delay: 4_000 },
    { name: "three quarters of it at the middle", random: 0.5, delay: 6_000 },
    { name: "just under the ceiling at the highest", random: 0.999, delay: 7_996 },
  ])("draws a delay of $name", ({ random, delay }) => {
    expect(backoffDelay(3, POLICY, () => random)).toBe(delay);
  });
});
