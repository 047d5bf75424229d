/**
 * Reading provider response headers: one lookup that works for fetch `Headers` and for Node header
 * records, and parsers for the value formats providers use (counts, Go-style durations, Retry-After,
 * RFC 3339 timestamps). Pure: every deadline is computed from the `nowMs` passed in.
 */
import type { HeaderSource } from "./types.ts";

/** The value of header `name` (any case), trimmed; undefined when absent or empty. Repeated headers give their first value. */
export function getHeader(headers: HeaderSource | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const lower = name.toLowerCase();
  if (isFetchHeaders(headers)) return nonEmpty(headers.get(lower));
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  let value = Object.hasOwn(record, lower) ? record[lower] : undefined;
  if (value === undefined) {
    // Node records are lower-case already; tolerate hand-built records with other spellings.
    const key = Object.keys(record).find((k) => k.toLowerCase() === lower);
    if (key !== undefined) value = record[key];
  }
  return nonEmpty(typeof value === "string" ? value : value?.find((v) => v.trim() !== ""));
}

function isFetchHeaders(headers: HeaderSource): headers is Headers {
  return typeof (headers as { get?: unknown }).get === "function";
}

function nonEmpty(value: string | null | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

const COUNT = /^\d+(?:\.\d+)?$/;

/** A non-negative number such as "59" or "149984"; undefined for anything else. */
export function parseCount(value: string | undefined): number | undefined {
  if (value === undefined || !COUNT.test(value.trim())) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Rounds a millisecond amount up (never earlier than the provider said), ignoring float noise below 1µs. */
function ceilMs(ms: number): number {
  return Math.ceil(Math.round(ms * 1000) / 1000);
}

const GO_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const GO_NUMBER = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;
const GO_UNIT = "(?:ns|us|µs|μs|ms|s|m|h)";
const GO_DURATION = new RegExp(`^\\+?(?:${GO_NUMBER}${GO_UNIT})+$`);
const GO_PART = new RegExp(`(${GO_NUMBER})(${GO_UNIT})`, "g");

/**
 * Milliseconds in a Go `time.Duration` string, the format of OpenAI's `x-ratelimit-reset-*` headers
 * ("6m0s", "1s", "20ms", "1h2m3.5s") and of protobuf Duration JSON ("37s", "1.5s"). Follows Go's
 * grammar: units ns/us/µs/ms/s/m/h, fractions allowed, a bare "0" is zero. Negative or malformed
 * values give undefined. Rounded up to whole milliseconds.
 */
export function parseGoDuration(value: string | undefined): number | undefined {
  const text = value?.trim();
  if (text === undefined) return undefined;
  if (text === "0" || text === "+0") return 0;
  if (!GO_DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(GO_PART))
    total += Number(amount) * (GO_UNIT_MS[unit ?? ""] ?? NaN);
  return Number.isFinite(total) ? ceilMs(total) : undefined;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
/** IMF-fixdate (RFC 9110 §5.6.7), the HTTP-date form senders must use: "Wed, 21 Oct 2015 07:28:00 GMT". */
const HTTP_DATE =
  /^(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{2}):(\d{2}):(\d{2})\s+(?:GMT|UTC)$/;

/** Epoch ms of an HTTP-date, parsed by hand so the host's time zone never matters; undefined if not one. */
export function parseHttpDate(value: string | undefined): number | undefined {
  const m = value?.trim().match(HTTP_DATE);
  if (!m) return undefined;
  const [, day, mon, year, hh, mm, ss] = m;
  const month = MONTHS.indexOf((mon ?? "").toLowerCase());
  if (month < 0) return undefined;
  return validUtc(Number(year), month, Number(day), Number(hh), Number(mm), Number(ss));
}

/** Date.UTC, refusing values that would roll over (31 Feb, 25:00). */
function validUtc(
  year: number,
  month: number,
  day: number,
  h: number,
  min: number,
  s: number,
): number | undefined {
  const ms = Date.UTC(year, month, day, h, min, s);
  const d = new Date(ms);
  const same =
    d.getUTCFullYear() === year &&
    d.getUTCMonth() === month &&
    d.getUTCDate() === day &&
    d.getUTCHours() === h;
  return same && min < 60 && s < 60 ? ms : undefined;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Epoch ms of an RFC 3339 timestamp ("2025-08-21T12:40:59Z", "...59.5+02:00"); undefined if not one. */
export function parseRfc3339(value: string | undefined): number | undefined {
  const m = value?.trim().match(RFC3339);
  if (!m) return undefined;
  const [, year, month, day, hh, mm, ss, fraction, zone] = m;
  const base = validUtc(Number(year), Number(month) - 1, Number(day), Number(hh), Number(mm), Number(ss));
  if (base === undefined) return undefined;
  const fractionMs = fraction ? Math.floor(Number(fraction) * 1000) : 0;
  let offsetMs = 0;
  if (zone && zone !== "Z" && zone !== "z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    offsetMs = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
  }
  return base + fractionMs - offsetMs;
}

/**
 * The deadline a `Retry-After` value gives: delta-seconds ("30", tolerated with a fraction: "1.5")
 * from `nowMs`, or an HTTP-date. A date in the past means "now". Undefined when it is neither.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  const seconds = parseCount(value);
  if (seconds !== undefined) return nowMs + ceilMs(seconds * 1000);
  const date = parseHttpDate(value);
  return date === undefined ? undefined : Math.max(date, nowMs);
}

/**
 * The deadline the generic retry headers give, or undefined. `retry-after-ms` (sent by OpenAI and
 * Azure OpenAI, honoured by their SDKs) wins over `retry-after` because it is the more precise of
 * the two; a malformed `retry-after-ms` falls back to `retry-after`.
 */
export function retryAfterDeadline(headers: HeaderSource | undefined, nowMs: number): number | undefined {
  const ms = parseCount(getHeader(headers, "retry-after-ms"));
  if (ms !== undefined) return nowMs + ceilMs(ms);
  return parseRetryAfter(getHeader(headers, "retry-after"), nowMs);
}

/** Relative seconds (as Mistral's `ratelimitbysize-reset: 12`) turned into a deadline. */
export function secondsFromNow(value: string | undefined, nowMs: number): number | undefined {
  const seconds = parseCount(value);
  return seconds === undefined ? undefined : nowMs + ceilMs(seconds * 1000);
}
