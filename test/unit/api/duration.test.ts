import { describe, expect, it } from "vitest";
import { duration, formatDuration, parseDuration } from "../../../src/api/duration.ts";

describe("parsing a duration as Kubernetes users write it", () => {
  it.each([
    { name: "seconds", text: "90s", ms: 90_000 },
    { name: "minutes", text: "5m", ms: 300_000 },
    { name: "hours", text: "2h", ms: 7_200_000 },
    { name: "milliseconds", text: "250ms", ms: 250 },
    { name: "hours and minutes together", text: "1h30m", ms: 5_400_000 },
    { name: "every unit at once", text: "1h2m3s4ms", ms: 3_723_004 },
    { name: "a fraction of a unit", text: "1.5h", ms: 5_400_000 },
    { name: "a fraction of a second, rounded to whole milliseconds", text: "0.0015s", ms: 2 },
    { name: "zero", text: "0s", ms: 0 },
    { name: "units in any order, as Go's time.ParseDuration allows", text: "30s1h", ms: 3_630_000 },
  ])("reads $name ($text)", ({ text, ms }) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    { name: "a word", text: "soon" },
    { name: "an empty string", text: "" },
    { name: "a bare number", text: "300" },
    { name: "a negative duration", text: "-5s" },
    { name: "a space between number and unit", text: "5 m" },
    { name: "days, which Go durations do not have", text: "1d" },
    { name: "an upper-case unit", text: "5M" },
    { name: "a unit without a number", text: "m" },
    { name: "a dangling decimal point", text: "1.s" },
    { name: "trailing garbage", text: "5m later" },
  ])("refuses $name", ({ text }) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe("formatting a duration", () => {
  it.each([
    { name: "whole hours", ms: 3_600_000, text: "1h" },
    { name: "a day as hours", ms: 86_400_000, text: "24h" },
    { name: "hours and minutes", ms: 5_400_000, text: "1h30m" },
    { name: "minutes and seconds", ms: 90_000, text: "1m30s" },
    { name: "hours, minutes and seconds", ms: 3_723_000, text: "1h2m3s" },
    { name: "seconds", ms: 10_000, text: "10s" },
    { name: "less than a second, in milliseconds", ms: 250, text: "250ms" },
    { name: "a part of a second, in milliseconds", ms: 1_500, text: "1500ms" },
    { name: "zero", ms: 0, text: "0s" },
    { name: "a negative amount as zero", ms: -5_000, text: "0s" },
  ])("writes $name as $text", ({ ms, text }) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([250, 1_000, 59_000, 60_000, 61_000, 3_599_000, 3_600_000, 86_400_000, 90_061_000])(
    "reads back what it writes (%i ms)",
    (ms) => {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    },
  );
});

describe("a duration field", () => {
  const field = duration("test field", { minMs: 10_000, maxMs: 300_000 });
  const messages = (value: unknown) => field.safeParse(value).error?.issues.map((issue) => issue.message);

  it.each([
    { name: "its lower bound", value: "10s" },
    { name: "its upper bound", value: "5m" },
    { name: "a value in between, in mixed units", value: "2m30s" },
  ])("accepts $name", ({ value }) => {
    expect(field.parse(value)).toBe(value);
  });

  it.each([
    { name: "below its lower bound, saying the bound", value: "9s", expected: ["must be at least 10s"] },
    { name: "above its upper bound, saying the bound", value: "301s", expected: ["must be at most 5m"] },
    {
      name: "a malformed string with one message, not a bound as well",
      value: "soon",
      expected: ['must be a duration such as "90s", "5m" or "1h30m"'],
    },
    {
      name: "longer than 32 characters, even when its value is in bounds",
      value: `${"0".repeat(38)}30s`,
      expected: ["Too big: expected string to have <=32 characters"],
    },
    {
      name: "a number instead of a string",
      value: 30,
      expected: ["Invalid input: expected string, received number"],
    },
  ])("refuses a value $name", ({ value, expected }) => {
    expect(messages(value)).toEqual(expected);
  });

  it("states its bounds as CEL too, so the API server refuses them at apply time", () => {
    expect(field.meta()?.["x-kubernetes-validations"]).toEqual([
      {
        rule: "!self.matches(r'^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) >= duration('10s')",
        message: "must be at least 10s",
      },
      {
        rule: "!self.matches(r'^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) <= duration('5m')",
        message: "must be at most 5m",
      },
    ]);
  });
});
