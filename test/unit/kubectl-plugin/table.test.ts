/** Text as kubectl prints it: aligned columns, ages as 42s, 5m12s, 3h4m. */
import { describe, expect, it } from "vitest";
import { ago, formatSeconds, renderTable, secondsUntil } from "../../../src/kubectl-plugin/table.ts";

const NOW = Date.parse("2026-11-22T10:14:18Z");

describe("tables", () => {
  it("pads every column but the last to its widest cell, three spaces apart", () => {
    expect(
      renderTable(
        ["NAME", "READY", "USABLE"],
        [
          ["openai-prod", "True", "4/5"],
          ["a", "False", "0/2"],
        ],
      ),
    ).toBe(
      ["NAME          READY   USABLE", "openai-prod   True    4/5", "a             False   0/2", ""].join(
        "\n",
      ),
    );
  });

  it("keeps a row on one line whatever its cells hold", () => {
    expect(renderTable(["A", "B"], [["x\ny", "z"]])).toBe("A     B\nx y   z\n");
  });

  it("prints only the headers for no rows", () => {
    expect(renderTable(["A", "B"], [])).toBe("A   B\n");
  });
});

describe("durations", () => {
  it.each<[number, string]>([
    [0, "0s"],
    [42, "42s"],
    [119, "119s"],
    [120, "2m"],
    [312, "5m12s"],
    [3600, "1h"],
    [11_040, "3h4m"],
    [86_400 * 2 + 3600 * 5, "2d5h"],
    [-5, "0s"],
  ])("%i s reads %s", (seconds, text) => {
    expect(formatSeconds(seconds)).toBe(text);
  });

  it.each<[string | undefined, number]>([
    ["2026-11-22T10:15:00Z", 42],
    ["2026-11-22T10:14:18.200Z", 1],
    ["2026-11-22T10:14:00Z", 0],
    [undefined, 0],
    ["not a time", 0],
  ])("seconds until %s: %i (rounded up, never negative)", (time, seconds) => {
    expect(secondsUntil(time, NOW)).toBe(seconds);
  });

  it("says how long ago a time was", () => {
    expect(ago("2026-11-22T10:11:18Z", NOW)).toBe("3m ago");
    expect(ago("2026-11-22T09:14:18Z", NOW)).toBe("1h ago");
    expect(ago(undefined, NOW)).toBe("");
  });
});
