/**
 * Durations as Kubernetes users write them: Go-style strings such as "90s", "5m", "1h30m", "250ms".
 */
import { z } from "zod";
import { type Rule, withRules } from "./rules.ts";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
/** Also the CRD's `pattern`, so the API server rejects a malformed duration at apply time. */
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";
const DURATION_RE = new RegExp(DURATION_PATTERN);
const PART_RE = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** Milliseconds in a duration string; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART_RE))
    total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  return Math.round(total);
}

/** Formats milliseconds the way users write them (the inverse of parseDuration for whole units). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms % 1000 !== 0) return `${ms}ms`;
  let seconds = ms / 1000;
  const h = Math.floor(seconds / 3600);
  seconds -= h * 3600;
  const m = Math.floor(seconds / 60);
  seconds -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${seconds ? `${seconds}s` : ""}`;
}

/** Longest duration string accepted: plenty for "1h30m15s500ms", and it bounds CEL costs. */
export const DURATION_MAX_LENGTH = 32;

/**
 * A duration field: a string in the CRD, validated by pattern and parsed to ms at run time.
 * Bounds are checked by both: CEL's `duration()` (Go's time.ParseDuration, which accepts every
 * string DURATION_PATTERN does) at apply time, and a refinement in the runtime parser.
 */
export function duration(description: string, bounds: { minMs?: number; maxMs?: number } = {}) {
  const rules: Rule<string>[] = [];
  // A malformed string already fails the pattern: the bounds hold for it, so it gets one message.
  // (The API server runs CEL even after the pattern failed, hence the guard in the rule.)
  const wellFormed = `!self.matches(r'${DURATION_PATTERN}') || `;
  if (bounds.minMs) {
    const min = bounds.minMs;
    rules.push({
      rule: `${wellFormed}duration(self) >= duration('${formatDuration(min)}')`,
      message: `must be at least ${formatDuration(min)}`,
      holds: (s) => (parseDuration(s) ?? min) >= min,
    });
  }
  if (bounds.maxMs !== undefined) {
    const max = bounds.maxMs;
    rules.push({
      rule: `${wellFormed}duration(self) <= duration('${formatDuration(max)}')`,
      message: `must be at most ${formatDuration(max)}`,
      holds: (s) => (parseDuration(s) ?? max) <= max,
    });
  }
  const text = z
    .string()
    .max(DURATION_MAX_LENGTH)
    .regex(DURATION_RE, { message: 'must be a duration such as "90s", "5m" or "1h30m"' });
  return (rules.length ? withRules(text, rules) : text).describe(description);
}
