/**
 * Calendar deadlines providers reset quotas at. Pure: every function takes the current time as an
 * argument; the time-zone rules come from the ICU data built into Node (Intl), so PST/PDT changes
 * (second Sunday of March, first Sunday of November) need no table of our own.
 */

const PACIFIC = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/Los_Angeles",
  hourCycle: "h23",
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "numeric",
  second: "numeric",
});

/** The Pacific wall-clock fields at instant `ms`. */
function pacificWallClock(ms: number): { year: number; month: number; day: number; wallAsUtcMs: number } {
  const parts: Record<string, number> = {};
  for (const part of PACIFIC.formatToParts(ms))
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  const { year = NaN, month = NaN, day = NaN, hour = NaN, minute = NaN, second = NaN } = parts;
  return { year, month, day, wallAsUtcMs: Date.UTC(year, month - 1, day, hour, minute, second) };
}

/** Pacific time's offset from UTC at instant `ms`: -8 h (PST) or -7 h (PDT), in ms. */
function pacificOffsetMs(ms: number): number {
  const wholeSecond = Math.floor(ms / 1000) * 1000;
  return pacificWallClock(wholeSecond).wallAsUtcMs - wholeSecond;
}

/**
 * The next midnight in America/Los_Angeles strictly after `nowMs`: when Google resets daily
 * (per-day) Gemini API quotas. Computed for the local calendar date, then converted with the offset
 * in force at that midnight (which differs from now's on the days the clocks change).
 */
export function nextPacificMidnight(nowMs: number): number {
  const { year, month, day } = pacificWallClock(nowMs);
  const midnightWall = Date.UTC(year, month - 1, day + 1);
  const firstGuess = midnightWall - pacificOffsetMs(nowMs);
  return midnightWall - pacificOffsetMs(firstGuess);
}

/** 00:00 UTC on the first day of the month after `nowMs`'s month. */
export function startOfNextUtcMonth(nowMs: number): number {
  const now = new Date(nowMs);
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
}
