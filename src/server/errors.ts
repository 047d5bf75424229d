/**
 * Errors of the HTTP API: one base class with a stable machine-readable `code`, and one table
 * mapping each code to its HTTP status. Callers match on `error.code`, never on messages.
 */
import type { ServerResponse } from "node:http";

export const ERROR_STATUS = {
  /** No or bad credentials: send a ServiceAccount token as Authorization: Bearer. */
  unauthenticated: 401,
  /** Authenticated, but RBAC does not grant the verb on this pool. */
  forbidden: 403,
  /** No KeyPool with that namespace/name. */
  pool_not_found: 404,
  /** The report names a lease this pool does not have (closed, expired, or another pool's). */
  lease_not_found: 404,
  /** The report or action names a key id this pool does not have. */
  key_not_found: 404,
  /** No such endpoint. */
  not_found: 404,
  /** The endpoint exists but not with this method (or not in this mode). */
  method_not_allowed: 405,
  /** The request body or a path segment is malformed; the message names the field. */
  invalid_request: 400,
  /**
   * Proxy: the path after /proxy/{namespace}/{pool}/ has a dot segment, a backslash or an encoded
   * slash (raw or percent-encoded), or would leave the pool's base URL: refused, nothing is sent.
   */
  invalid_path: 400,
  /**
   * A report's token counts contradict each other: cachedInputTokens without inputTokens, or more
   * than it (inputTokens counts the cached ones too).
   */
  invalid_usage: 400,
  /** The key is already in the pool (compat POST /keys). */
  conflict: 409,
  /** The body is larger than the server accepts. */
  payload_too_large: 413,
  /** Only application/json bodies are accepted. */
  unsupported_media_type: 415,
  /** Every key of the pool (and of its fallbacks) is unusable now; Retry-After says when to come back. */
  no_usable_key: 503,
  /** Proxy: no key of the pool became usable within maxWait; Retry-After says when one will. */
  rate_limited: 429,
  /** Proxy: the provider could not be reached (connection refused, reset, TLS) on any attempt. */
  upstream_unavailable: 502,
  /** Proxy: the provider did not start answering within spec.proxy.timeout. */
  upstream_timeout: 504,
  /** The pool's spec is invalid and it has never been valid: nothing to serve. */
  pool_not_ready: 503,
  /** TokenReview / SubjectAccessReview could not be reached: try again. */
  auth_unavailable: 503,
  /**
   * The shared state store (--state-store) is unreachable and --state-store-failure=closed: no key
   * is handed out or proxied until it is back; Retry-After says when to try again.
   */
  state_store_unavailable: 503,
  /** A bug: logged with details, answered without them. */
  internal: 500,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * The one place errors become HTTP answers: status, JSON body (the API's shape unless the proxy
 * passes the provider's), Retry-After, WWW-Authenticate, no caching. After headers went out the
 * connection is cut instead.
 */
export function writeError(
  res: ServerResponse,
  error: KeyPoolError,
  body: unknown = error.toJSON(),
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.statusCode = error.status;
  if (error.retryAfterSeconds !== undefined) res.setHeader("Retry-After", String(error.retryAfterSeconds));
  if (error.code === "unauthenticated") res.setHeader("WWW-Authenticate", 'Bearer realm="keypool"');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

export class KeyPoolError extends Error {
  override name = "KeyPoolError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  /** no_usable_key: when a key becomes usable by time alone (epoch ms), for callers that wait. */
  readonly retryAtMs: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    extra: { retryAfterSeconds?: number; retryAtMs?: number; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryAfterSeconds = extra.retryAfterSeconds;
    this.retryAtMs = extra.retryAtMs;
    this.details = extra.details;
  }

  toJSON() {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.retryAfterSeconds !== undefined ? { retryAfterSeconds: this.retryAfterSeconds } : {}),
        ...(this.details ?? {}),
      },
    };
  }
}
