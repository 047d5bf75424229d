import { describe, expect, it } from "vitest";
import { parseGoDuration, parseRfc3339 } from "../../../src/providers/headers.ts";
import { goDuration, maskKey, rfc3339 } from "../../fakes/format.ts";

describe("header formats the fakes write, read back by the provider parsers", () => {
  it.each<[string, number, string]>([
    ["under a second is in milliseconds", 120, "120ms"],
    ["zero is 0s", 0, "0s"],
    ["whole seconds", 1_000, "1s"],
    ["fractional seconds", 59_500, "59.5s"],
    ["minutes keep a zero seconds part", 360_000, "6m0s"],
    ["hours, minutes and fractional seconds", 3_723_500, "1h2m3.5s"],
    ["fractions of a millisecond round up", 0.2, "1ms"],
  ])("a Go duration: %s", (_sentence, ms, text) => {
    expect(goDuration(ms)).toBe(text);
    expect(parseGoDuration(text)).toBe(Math.ceil(ms));
  });

  it.each<[string, number, string]>([
    ["a whole second stays", Date.UTC(2025, 0, 15, 12, 0, 30), "2025-01-15T12:00:30Z"],
    ["a fraction rounds up to the next second", Date.UTC(2025, 0, 15, 12, 0, 30, 1), "2025-01-15T12:00:31Z"],
  ])("an RFC 3339 reset: %s", (_sentence, ms, text) => {
    expect(rfc3339(ms)).toBe(text);
    expect(parseRfc3339(text)).toBeGreaterThanOrEqual(ms);
  });

  it.each<[string, string, string]>([
    [
      "a long key shows at most its first three and last four characters",
      "sk-proj-abcdefghijklmnop",
      "sk-*****************mnop",
    ],
    ["a short key is not shown at all", "key-1", "********"],
  ])("masking: %s", (_sentence, key, masked) => {
    expect(maskKey(key)).toBe(masked);
  });
});
