/**
 * Calendar windows budgets are counted in: the day and the month that contain an instant, in an
 * IANA time zone (UTC by default). Pure: the instant is an argument; the zone rules come from the
 * ICU data built into Node (Intl), so daylight-saving days are 23 or 25 hours long as they are.
 */

export interface CalendarWindow {
  /** 2026-12-04 (a day) or 2026-12 (a month): names the window in snapshots and the shared store. */
  id: string;
  startMs: number;
  /** The next window's start: when this one resets. */
  endMs: number;
}

export interface BudgetWindows {
  day: CalendarWindow;
  month: CalendarWindow;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

interface Wall {
  year: number;
  month: number;
  day: number;
  /** The wall clock read as if it were UTC, ms. */
  asUtcMs: number;
}

function wallClock(ms: number, timeZone: string): Wall {
  const parts: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(ms))
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  const { year = NaN, month = NaN, day = NaN, hour = NaN, minute = NaN, second = NaN } = parts;
  return { year, month, day, asUtcMs: Date.UTC(year, month - 1, day, hour, minute, second) };
}

/** The instant the zone's wall clock reads `wallAsUtcMs` (midnights: never in a DST gap in practice). */
function instantOf(wallAsUtcMs: number, timeZone: string): number {
  if (timeZone === "UTC") return wallAsUtcMs;
  // The offset at the guess, then once more at the corrected instant (DST changes between).
  let guess = wallAsUtcMs;
  for (let i = 0; i < 2; i++) {
    const offset =
      wallClock(Math.floor(guess / 1000) * 1000, timeZone).asUtcMs - Math.floor(guess / 1000) * 1000;
    guess = wallAsUtcMs - offset;
  }
  return guess;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** The day and the month containing `nowMs` in `timeZone`. */
export function budgetWindows(nowMs: number, timeZone = "UTC"): BudgetWindows {
  const w = wallClock(nowMs, timeZone);
  const dayStart = instantOf(Date.UTC(w.year, w.month - 1, w.day), timeZone);
  const dayEnd = instantOf(Date.UTC(w.year, w.month - 1, w.day + 1), timeZone);
  const monthStart = instantOf(Date.UTC(w.year, w.month - 1, 1), timeZone);
  const monthEnd = instantOf(Date.UTC(w.year, w.month, 1), timeZone);
  return {
    day: { id: `${w.year}-${pad(w.month)}-${pad(w.day)}`, startMs: dayStart, endMs: dayEnd },
    month: { id: `${w.year}-${pad(w.month)}`, startMs: monthStart, endMs: monthEnd },
  };
}
