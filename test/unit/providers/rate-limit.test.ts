import { describe, expect, it } from "vitest";
import { type LimitWindow, pickRateLimitDeadline } from "../../../src/providers/rate-limit.ts";

describe("choosing one deadline when several are known", () => {
  it.each<[string, number | undefined, LimitWindow[], number | undefined]>([
    ["the retry header wins over reset headers", 5_000, [{ remaining: 0, resetAtMs: 60_000 }], 5_000],
    [
      "without one, the latest reset among exhausted windows",
      undefined,
      [
        { remaining: 0, resetAtMs: 1_000 },
        { remaining: 0, resetAtMs: 30_000 },
        { remaining: 5, resetAtMs: 90_000 },
      ],
      30_000,
    ],
    [
      "with no exhausted window, the earliest reset",
      undefined,
      [
        { remaining: 3, resetAtMs: 20_000 },
        { remaining: 100, resetAtMs: 2_000 },
      ],
      2_000,
    ],
    ["windows without resets say nothing", undefined, [{ remaining: 0 }, {}], undefined],
    ["nothing at all", undefined, [], undefined],
  ])("%s", (_name, stated, windows, expected) => {
    expect(pickRateLimitDeadline(stated, windows)).toBe(expected);
  });
});
