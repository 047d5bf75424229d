/**
 * The client's errors: one class, `KeyPoolClientError`, with a stable `code` callers match on
 * (never the message). Codes are the dispensing API's own (copied from src/server/errors.ts) plus
 * a few the client gives when there is no API answer to read. Messages never hold key material.
 */

/**
 * The dispensing API's error codes: the keys of ERROR_STATUS in src/server/errors.ts, copied
 * because the client ships standalone (test/unit/client/errors.test.ts keeps the two equal).
 */
export const SERVER_ERROR_CODES = [
  "unauthenticated",
  "forbidden",
  "pool_not_found",
  "lease_not_found",
  "key_not_found",
  "not_found",
  "method_not_allowed",
  "invalid_request",
  "invalid_path",
  "invalid_usage",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "no_usable_key",
  "rate_limited",
  "upstream_unavailable",
  "upstream_timeout",
  "pool_not_ready",
  "auth_unavailable",
  "state_store_unavailable",
  "internal",
] as const;
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

/** Codes the client gives itself, when there is no API error to read. */
export const CLIENT_ERROR_CODES = [
  /** The token file could not be read, or it is empty. */
  "token_unavailable",
  /** The KeyPool server could not be reached (connection refused or reset, DNS, TLS). */
  "network_error",
  /** The KeyPool server did not answer within `timeoutMs`. */
  "timeout",
  /** The answer was not the API's JSON (a proxy's HTML page, a truncated body, an unknown code). */
  "invalid_response",
] as const;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

export type KeyPoolClientErrorCode = ServerErrorCode | ClientErrorCode;

const SERVER_CODES: ReadonlySet<string> = new Set(SERVER_ERROR_CODES);

export class KeyPoolClientError extends Error {
  override name = "KeyPoolClientError";
  readonly code: KeyPoolClientErrorCode;
  /** The HTTP status of the API's answer; undefined when there was none. */
  readonly status: number | undefined;
  /** `no_usable_key` (and other 503s/429s): when to come back, from the body or Retry-After. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: KeyPoolClientErrorCode,
    message: string,
    extra: { status?: number; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.status = extra.status;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

/** Delta-seconds of a Retry-After header (an HTTP date is turned into seconds from `nowMs`). */
export function retryAfterSeconds(header: string | null, nowMs: number): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/**
 * The error an API answer with a non-2xx status stands for: its `{"error": {code, message}}`
 * body when it has one (compat routes add `success: false`, ignored), else invalid_response.
 */
export function errorFromAnswer(
  status: number,
  text: string,
  retryAfterHeader: string | null,
  nowMs: number,
): KeyPoolClientError {
  const fromHeader = retryAfterSeconds(retryAfterHeader, nowMs);
  let error: Record<string, unknown> | undefined;
  try {
    const body = JSON.parse(text) as unknown;
    const inner = isRecord(body) ? body["error"] : undefined;
    if (isRecord(inner)) error = inner;
  } catch {
    // not JSON: below
  }
  const code = typeof error?.["code"] === "string" ? error["code"] : undefined;
  if (code === undefined || !SERVER_CODES.has(code)) {
    const what =
      code === undefined ? "not the KeyPool API's error JSON" : `unknown error code "${clip(code)}"`;
    return new KeyPoolClientError("invalid_response", `HTTP ${status} from the KeyPool server: ${what}`, {
      status,
      ...(fromHeader === undefined ? {} : { retryAfterSeconds: fromHeader }),
    });
  }
  const stated = error?.["retryAfterSeconds"];
  const retryAfter = typeof stated === "number" && stated >= 0 ? stated : fromHeader;
  const message = typeof error?.["message"] === "string" ? clip(error["message"], 500) : `HTTP ${status}`;
  return new KeyPoolClientError(code as ServerErrorCode, message, {
    status,
    ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
  });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function clip(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
