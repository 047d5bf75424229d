import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableStatus,
  retryAfterMs,
  retryDelay,
} from "../../../src/notify/retry.ts";

const POLICY = { baseDelayMs: 1_000, maxDelayMs: 60_000 };
const NOW_MS = Date.UTC(2026, 0, 1);

describe("which answers are retried", () => {
  it.each([
    [408, true],
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [504, true],
    [599, true],
    [400, false],
    [401, false],
    [403, false],
    [404, false],
    [410, false],
    [413, false],
    [301, false],
    [302, false],
    [600, false],
  ])("HTTP %i: %s", (status, retried) => {
    expect(isRetryableStatus(status)).toBe(retried);
  });
});

describe("the backoff between attempts", () => {
  it.each([
    { name: "the first retry waits half the base at the lowest jitter", retry: 0, random: 0, delay: 500 },
    { name: "the first retry waits up to the base", retry: 0, random: 0.999_999, delay: 1_000 },
    { name: "each further retry doubles it", retry: 3, random: 0, delay: 4_000 },
    {
      name: "the middle of the jitter is three quarters of the ceiling",
      retry: 3,
      random: 0.5,
      delay: 6_000,
    },
    { name: "it stops growing at the maximum", retry: 10, random: 0.5, delay: 45_000 },
    { name: "a huge retry count stays at the maximum", retry: 5_000, random: 0, delay: 30_000 },
    { name: "a negative retry count is the first retry", retry: -1, random: 0, delay: 500 },
  ])("$name", ({ retry, random, delay }) => {
    expect(backoffDelay(retry, POLICY, () => random)).toBe(delay);
  });

  it.each([
    { name: "Retry-After replaces the backoff", retryAfter: 3_000, delay: 3_000 },
    { name: "Retry-After 0 retries at once", retryAfter: 0, delay: 0 },
    { name: "Retry-After is capped by maxDelayMs", retryAfter: 3_600_000, delay: 60_000 },
    { name: "without Retry-After the backoff decides", retryAfter: undefined, delay: 1_000 },
  ])("$name", ({ retryAfter, delay }) => {
    expect(retryDelay(1, POLICY, retryAfter, () => 0)).toBe(delay);
  });

  it("defaults to 6 attempts, 1 s base, 60 s cap, 10 s per attempt", () => {
    expect(DEFAULT_RETRY).toEqual({ attempts: 6, baseDelayMs: 1_000, maxDelayMs: 60_000, timeoutMs: 10_000 });
  });
});

describe("reading Retry-After", () => {
  it.each([
    { name: "delay-seconds", header: "30", ms: 30_000 },
    { name: "fractional seconds", header: "1.5", ms: 1_500 },
    { name: "seconds with spaces around", header: " 2 ", ms: 2_000 },
    { name: "an HTTP date", header: new Date(NOW_MS + 45_000).toUTCString(), ms: 45_000 },
    { name: "an HTTP date in the past", header: new Date(NOW_MS - 45_000).toUTCString(), ms: 0 },
    { name: "no header", header: null, ms: undefined },
    { name: "a negative number", header: "-5", ms: undefined },
    { name: "digits as seconds, never a year", header: "2026", ms: 2_026_000 },
    { name: "nonsense", header: "soon", ms: undefined },
  ])("$name", ({ header, ms }) => {
    expect(retryAfterMs(header, NOW_MS)).toBe(ms);
  });
});
