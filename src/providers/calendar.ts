/**
 * Calendar deadlines providers reset quotas at. Pure: every function takes the current time as an
 * argument; the time-zone rules come from the ICU data built into Node (Intl, through the budget
 * windows of src/pool/budget-window.ts), so PST/PDT changes (second Sunday of March, first Sunday
 * of November) need no table of our own.
 */
import { budgetWindows } from "../pool/budget-window.ts";

/**
 * The next midnight in America/Los_Angeles strictly after `nowMs`: when Google resets daily
 * (per-day) Gemini API quotas. The end of the Pacific calendar day holding `nowMs` (a day of 23
 * or 25 hours on the days the clocks change).
 */
export function nextPacificMidnight(nowMs: number): number {
  return budgetWindows(nowMs, "America/Los_Angeles").day.endMs;
}

/** 00:00 UTC on the first day of the month after `nowMs`'s month. */
export function startOfNextUtcMonth(nowMs: number): number {
  return budgetWindows(nowMs, "UTC").month.endMs;
}
