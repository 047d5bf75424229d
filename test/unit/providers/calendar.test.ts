import { describe, expect, it } from "vitest";
import { nextPacificMidnight, startOfNextUtcMonth } from "../../../src/providers/calendar.ts";

const at = (iso: string) => Date.parse(iso);

describe("the next midnight in Pacific time (when Gemini daily quotas reset)", () => {
  it.each([
    ["a winter morning (PST, UTC-8)", "2025-01-15T12:00:00Z", "2025-01-16T08:00:00Z"],
    ["a summer morning (PDT, UTC-7)", "2025-07-15T12:00:00Z", "2025-07-16T07:00:00Z"],
    ["one minute before midnight PST", "2025-01-16T07:59:00Z", "2025-01-16T08:00:00Z"],
    ["exactly midnight PST, which is the start of a new day", "2025-01-16T08:00:00Z", "2025-01-17T08:00:00Z"],
    [
      "late evening in California, already the next day in UTC",
      "2025-01-16T06:00:00Z",
      "2025-01-16T08:00:00Z",
    ],
    ["the evening before clocks spring forward", "2025-03-09T07:30:00Z", "2025-03-09T08:00:00Z"],
    ["the morning clocks sprang forward", "2025-03-09T12:00:00Z", "2025-03-10T07:00:00Z"],
    ["the evening before clocks fall back", "2025-11-02T06:30:00Z", "2025-11-02T07:00:00Z"],
    ["the morning clocks fell back", "2025-11-02T12:00:00Z", "2025-11-03T08:00:00Z"],
    ["New Year's Eve", "2025-12-31T20:00:00Z", "2026-01-01T08:00:00Z"],
    ["a leap day", "2024-02-29T12:00:00Z", "2024-03-01T08:00:00Z"],
  ])("on %s", (_name, now, expected) => {
    expect(new Date(nextPacificMidnight(at(now))).toISOString()).toBe(new Date(at(expected)).toISOString());
  });
});

describe("the start of the next UTC month (when monthly spend caps lift)", () => {
  it.each([
    ["mid-January", "2025-01-15T12:00:00Z", "2025-02-01T00:00:00Z"],
    ["the last millisecond of a month", "2025-04-30T23:59:59.999Z", "2025-05-01T00:00:00Z"],
    ["December, rolling into the next year", "2025-12-10T00:00:00Z", "2026-01-01T00:00:00Z"],
  ])("from %s", (_name, now, expected) => {
    expect(startOfNextUtcMonth(at(now))).toBe(at(expected));
  });
});
