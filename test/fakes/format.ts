/** Value formats the providers use in headers and bodies, and small deterministic helpers. */
import { randomBytes } from "node:crypto";

/**
 * A Go `time.Duration` string, as OpenAI's `x-ratelimit-reset-*` headers carry: "120ms", "1s",
 * "59.5s", "6m0s", "1h2m3.5s" (Go prints units below a second only for durations under one second).
 */
export function goDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return "0s";
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const seconds = String((total % 60_000) / 1000);
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** An RFC 3339 timestamp in whole seconds, rounded up, as Anthropic's reset headers carry: "2025-01-15T12:00:30Z". */
export function rfc3339(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Whole seconds, rounded up: what a `retry-after` header (and Gemini's retryDelay) says for `ms`. */
export function ceilSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A random identifier of `length` base-62 characters (for message, request and response ids). */
export function randomId(length: number): string {
  return Array.from(randomBytes(length), (b) => BASE62[b % BASE62.length]).join("");
}

/** A key as a provider quotes it in an error message: never more than its last four characters. */
export function maskKey(key: string): string {
  return key.length > 12 ? `${key.slice(0, 3)}${"*".repeat(key.length - 7)}${key.slice(-4)}` : "*".repeat(8);
}

const REPLY = "Hello! This answer comes from a fake provider server, streamed in small pieces.";

/** The reply text, cut into the pieces a stream sends, limited to `maxTokens` pieces (one piece is one token). */
export function replyPieces(maxTokens: number | undefined): { pieces: string[]; truncated: boolean } {
  const all = REPLY.match(/\S+\s*/g) ?? [REPLY];
  const limit = maxTokens !== undefined && maxTokens > 0 ? Math.floor(maxTokens) : all.length;
  return { pieces: all.slice(0, limit), truncated: limit < all.length };
}

/** A rough token count for prompt text: four characters a token, at least one. */
export function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** All strings found anywhere in a JSON value (prompt text for token counting). */
export function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(textOf).join(" ");
  if (typeof value === "object" && value !== null) return Object.values(value).map(textOf).join(" ");
  return "";
}

/** A number at `obj[key]`, when there is one. */
export function numberAt(obj: unknown, key: string): number | undefined {
  const value = typeof obj === "object" && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** A string at `obj[key]`, when there is one. */
export function stringAt(obj: unknown, key: string): string | undefined {
  const value = typeof obj === "object" && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
  return typeof value === "string" ? value : undefined;
}

/** `obj[key]`, for any JSON object. */
export function valueAt(obj: unknown, key: string): unknown {
  return typeof obj === "object" && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}
