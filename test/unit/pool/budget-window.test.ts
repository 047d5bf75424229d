import { describe, expect, it } from "vitest";
import { budgetWindows } from "../../../src/pool/budget-window.ts";

const H = 3_600_000;

describe("budget windows", () => {
  it("are the UTC day and month by default", () => {
    const w = budgetWindows(Date.UTC(2026, 11, 4, 17, 30));
    expect(w.day).toEqual({ id: "2026-12-04", startMs: Date.UTC(2026, 11, 4), endMs: Date.UTC(2026, 11, 5) });
    expect(w.month).toEqual({ id: "2026-12", startMs: Date.UTC(2026, 11, 1), endMs: Date.UTC(2027, 0, 1) });
  });

  it("follow a time zone's midnight, and its 23-hour day when the clocks go forward", () => {
    // 2026-03-29 is the day Europe/Berlin moves from UTC+1 to UTC+2.
    const w = budgetWindows(Date.UTC(2026, 2, 29, 12), "Europe/Berlin");
    expect(w.day.id).toBe("2026-03-29");
    expect(w.day.startMs).toBe(Date.UTC(2026, 2, 28, 23));
    expect(w.day.endMs).toBe(Date.UTC(2026, 2, 29, 22));
    expect(w.day.endMs - w.day.startMs).toBe(23 * H);
    expect(w.month).toMatchObject({
      id: "2026-03",
      startMs: Date.UTC(2026, 1, 28, 23),
      endMs: Date.UTC(2026, 2, 31, 22),
    });
  });

  it("put an instant just before a zone's midnight in that zone's day", () => {
    // 23:30 on Dec 31 in New York is already next year in UTC.
    const w = budgetWindows(Date.UTC(2027, 0, 1, 4, 30), "America/New_York");
    expect(w.day.id).toBe("2026-12-31");
    expect(w.month.id).toBe("2026-12");
    expect(w.day.endMs).toBe(Date.UTC(2027, 0, 1, 5));
  });
});
