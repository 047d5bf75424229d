/**
 * Rate-limit header families and the rule for turning them into one deadline.
 */
import type { RateLimitInfo } from "../pool/outcome.ts";
import { getHeader, parseCount, parseGoDuration, secondsFromNow } from "./headers.ts";
import type { HeaderSource } from "./types.ts";

/** One rate-limit window as headers describe it: how much is left and when it refills. */
export interface LimitWindow {
  limit?: number;
  remaining?: number;
  resetAtMs?: number;
}

/**
 * Until when a rate-limited key should rest, when several deadlines are known:
 * 1. `stated` (a Retry-After / retry-after-ms header or a body's retry delay) wins: it is the
 *    provider's instruction for this very answer, while reset headers describe whole windows.
 * 2. Otherwise the latest reset among windows that are empty (remaining 0): the key is unusable
 *    until every exhausted window has refilled.
 * 3. Otherwise (the limit hit is not visible, e.g. one request larger than what is left) the earliest
 *    reset: the soonest moment capacity grows.
 * Undefined when nothing is known; the engine then applies the pool's rateLimitCooldown.
 */
export function pickRateLimitDeadline(
  stated: number | undefined,
  windows: readonly LimitWindow[],
): number | undefined {
  if (stated !== undefined) return stated;
  const resets = windows.filter((w): w is LimitWindow & { resetAtMs: number } => w.resetAtMs !== undefined);
  const exhausted = resets.filter((w) => w.remaining === 0);
  if (exhausted.length > 0) return Math.max(...exhausted.map((w) => w.resetAtMs));
  if (resets.length > 0) return Math.min(...resets.map((w) => w.resetAtMs));
  return undefined;
}

/** Builds RateLimitInfo from a request window and a token window; undefined when both are empty. */
export function toRateLimitInfo(requests: LimitWindow, tokens: LimitWindow): RateLimitInfo | undefined {
  const info: RateLimitInfo = {};
  if (requests.limit !== undefined) info.limitRequests = requests.limit;
  if (requests.remaining !== undefined) info.remainingRequests = requests.remaining;
  if (requests.resetAtMs !== undefined) info.resetRequestsAtMs = requests.resetAtMs;
  if (tokens.limit !== undefined) info.limitTokens = tokens.limit;
  if (tokens.remaining !== undefined) info.remainingTokens = tokens.remaining;
  if (tokens.resetAtMs !== undefined) info.resetTokensAtMs = tokens.resetAtMs;
  return Object.keys(info).length > 0 ? info : undefined;
}

/** How a reset header's value becomes a deadline. */
export type ResetParser = (value: string | undefined, nowMs: number) => number | undefined;

/** OpenAI's reset format: a Go duration from now ("6m0s", "1s", "20ms"). */
export const durationFromNow: ResetParser = (value, nowMs) => {
  const ms = parseGoDuration(value);
  return ms === undefined ? undefined : nowMs + ms;
};

/** For OpenAI-compatible servers: a Go duration, or bare seconds ("7.5") as some servers send. */
export const durationOrSecondsFromNow: ResetParser = (value, nowMs) =>
  durationFromNow(value, nowMs) ?? secondsFromNow(value, nowMs);

/**
 * The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` family that OpenAI documents and many
 * compatible servers (Azure OpenAI, Groq, vLLM behind gateways) copy.
 */
export function openAIStyleWindows(
  headers: HeaderSource | undefined,
  nowMs: number,
  parseReset: ResetParser,
): { requests: LimitWindow; tokens: LimitWindow } {
  const window = (unit: "requests" | "tokens"): LimitWindow =>
    compactWindow({
      limit: parseCount(getHeader(headers, `x-ratelimit-limit-${unit}`)),
      remaining: parseCount(getHeader(headers, `x-ratelimit-remaining-${unit}`)),
      resetAtMs: parseReset(getHeader(headers, `x-ratelimit-reset-${unit}`), nowMs),
    });
  return { requests: window("requests"), tokens: window("tokens") };
}

/** Drops undefined fields. */
export function compactWindow(window: LimitWindow): LimitWindow {
  const out: LimitWindow = {};
  if (window.limit !== undefined) out.limit = window.limit;
  if (window.remaining !== undefined) out.remaining = window.remaining;
  if (window.resetAtMs !== undefined) out.resetAtMs = window.resetAtMs;
  return out;
}
