import { describe, expect, it } from "vitest";
import {
  getHeader,
  parseCount,
  parseGoDuration,
  parseHttpDate,
  parseRetryAfter,
  parseRfc3339,
  retryAfterDeadline,
} from "../../../src/providers/headers.ts";
import type { HeaderSource } from "../../../src/providers/types.ts";

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

describe("reading a header", () => {
  it.each<[string, HeaderSource | undefined, string, string | undefined]>([
    [
      "a fetch Headers object, whatever the case asked for",
      new Headers({ "Retry-After": "30" }),
      "RETRY-AFTER",
      "30",
    ],
    ["a Node record with lower-case names", { "retry-after": "30" }, "Retry-After", "30"],
    ["a hand-built record with another spelling", { "Retry-After": "30" }, "retry-after", "30"],
    [
      "the first value of a repeated header in a Node record",
      { "retry-after": ["30", "60"] },
      "retry-after",
      "30",
    ],
    ["a value with surrounding spaces, trimmed", { "retry-after": "  30 " }, "retry-after", "30"],
    ["an absent header", { "x-other": "1" }, "retry-after", undefined],
    ["an empty header", { "retry-after": "" }, "retry-after", undefined],
    ["an empty array", { "retry-after": [] }, "retry-after", undefined],
    ["a header explicitly undefined", { "retry-after": undefined }, "retry-after", undefined],
    ["no headers at all", undefined, "retry-after", undefined],
    ["a header named like an Object method", { constructor: "x" }, "toString", undefined],
  ])("finds the value in %s", (_name, headers, name, expected) => {
    expect(getHeader(headers, name)).toBe(expected);
  });
});

describe("reading a count header", () => {
  it.each<[string | undefined, number | undefined]>([
    ["59", 59],
    ["149984", 149984],
    ["0", 0],
    ["1000.5", 1000.5],
    ["-1", undefined],
    ["12abc", undefined],
    ["", undefined],
    [undefined, undefined],
  ])("reads %j as %j", (value, expected) => {
    expect(parseCount(value)).toBe(expected);
  });
});

describe("reading an OpenAI reset duration (Go time.Duration syntax)", () => {
  it.each<[string, number | undefined]>([
    ["6m0s", 360_000],
    ["1s", 1_000],
    ["20ms", 20],
    ["1h2m3.5s", 3_723_500],
    ["0", 0],
    ["0s", 0],
    ["+5s", 5_000],
    ["1.5s", 1_500],
    [".5s", 500],
    ["5.s", 5_000],
    ["2m59.56s", 179_560],
    ["7.66s", 7_660],
    ["1.1s", 1_100],
    ["300us", 1],
    ["300µs", 1],
    ["1500000ns", 2],
    ["1m1m", 120_000],
    ["90m", 5_400_000],
    [" 6m0s ", 360_000],
  ])("reads %j as %j ms", (value, expected) => {
    expect(parseGoDuration(value)).toBe(expected);
  });

  it.each([
    ["an empty string", ""],
    ["a number without a unit", "6"],
    ["a trailing number without a unit", "6m0"],
    ["a negative duration", "-1s"],
    ["an unknown unit", "1d"],
    ["an upper-case unit", "1S"],
    ["a space inside", "1 s"],
    ["a lone dot", ".s"],
    ["exponent notation", "1e3s"],
    ["plain words", "soon"],
  ])("refuses %s", (_name, value) => {
    expect(parseGoDuration(value)).toBeUndefined();
  });

  it("refuses a value too large to be a number", () => {
    expect(parseGoDuration(`${"9".repeat(400)}h`)).toBeUndefined();
  });
});

describe("reading Retry-After", () => {
  it.each<[string, string | undefined, number | undefined]>([
    ["delta-seconds", "30", NOW + 30_000],
    ["zero seconds", "0", NOW],
    ["fractional seconds some servers send", "1.5", NOW + 1_500],
    ["an IMF-fixdate in the future", "Wed, 15 Jan 2025 12:01:30 GMT", NOW + 90_000],
    ["an HTTP-date without the day name", "15 Jan 2025 12:00:10 GMT", NOW + 10_000],
    ["an HTTP-date in the past, meaning now", "Tue, 14 Jan 2025 12:00:00 GMT", NOW],
    ["an impossible date", "Mon, 31 Feb 2025 12:00:00 GMT", undefined],
    ["an unknown month", "Wed, 15 Foo 2025 12:00:00 GMT", undefined],
    ["a negative number", "-5", undefined],
    ["words", "soon", undefined],
    ["a date V8 would guess at", "a 1", undefined],
    ["nothing", undefined, undefined],
  ])("turns %s into a deadline", (_name, value, expected) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });

  it.each<[string, HeaderSource, number | undefined]>([
    ["retry-after-ms wins over retry-after", { "retry-after-ms": "1500", "retry-after": "2" }, NOW + 1_500],
    [
      "a malformed retry-after-ms falls back to retry-after",
      { "retry-after-ms": "soon", "retry-after": "2" },
      NOW + 2_000,
    ],
    ["retry-after alone", { "retry-after": "2" }, NOW + 2_000],
    ["fractional retry-after-ms rounds up", { "retry-after-ms": "120.4" }, NOW + 121],
    ["neither", { "x-ratelimit-reset-requests": "1s" }, undefined],
  ])("picks the retry header: %s", (_name, headers, expected) => {
    expect(retryAfterDeadline(headers, NOW)).toBe(expected);
  });
});

describe("reading timestamps", () => {
  it.each<[string, string, number | undefined]>([
    ["an RFC 3339 UTC time", "2025-08-21T12:40:59Z", Date.UTC(2025, 7, 21, 12, 40, 59)],
    ["fractional seconds", "2025-08-21T12:40:59.250Z", Date.UTC(2025, 7, 21, 12, 40, 59, 250)],
    ["microseconds", "2025-08-21T12:40:59.123456Z", Date.UTC(2025, 7, 21, 12, 40, 59, 123)],
    ["a positive offset", "2025-08-21T14:40:59+02:00", Date.UTC(2025, 7, 21, 12, 40, 59)],
    ["a negative offset", "2025-08-21T05:10:59-07:30", Date.UTC(2025, 7, 21, 12, 40, 59)],
    ["a space separator and lower-case z", "2025-08-21 12:40:59z", Date.UTC(2025, 7, 21, 12, 40, 59)],
    ["no time zone", "2025-08-21T12:40:59", undefined],
    ["an impossible day", "2025-02-30T00:00:00Z", undefined],
    ["a date only", "2025-08-21", undefined],
    ["an HTTP-date", "Thu, 21 Aug 2025 12:40:59 GMT", undefined],
  ])("reads %s", (_name, value, expected) => {
    expect(parseRfc3339(value)).toBe(expected);
  });

  it("reads an HTTP-date regardless of the machine's time zone", () => {
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT")).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
  });
});
