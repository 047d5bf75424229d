/**
 * Transport failures (no HTTP answer at all) as outcomes: timeouts, resets, refused connections,
 * DNS and TLS failures. All are networkError and retryable: another attempt, or another key on
 * another connection, may well succeed.
 */
import { isRecord } from "./errors-body.ts";
import type { Classification } from "./types.ts";

/**
 * Error `code`s Node (libuv, OpenSSL) and undici set, with the reason each becomes.
 * Sources: https://nodejs.org/api/errors.html#common-system-errors,
 * https://undici.nodejs.org/#/docs/api/Errors
 */
const CODE_REASONS: Readonly<Record<string, string>> = {
  ETIMEDOUT: "timeout",
  ESOCKETTIMEDOUT: "timeout",
  UND_ERR_CONNECT_TIMEOUT: "connect_timeout",
  UND_ERR_HEADERS_TIMEOUT: "timeout",
  UND_ERR_BODY_TIMEOUT: "timeout",
  ECONNRESET: "connection_reset",
  EPIPE: "connection_reset",
  ECONNABORTED: "connection_reset",
  UND_ERR_SOCKET: "connection_reset",
  UND_ERR_CLOSED: "connection_closed",
  ECONNREFUSED: "connection_refused",
  ENOTFOUND: "dns_lookup_failed",
  EAI_AGAIN: "dns_lookup_failed",
  EHOSTUNREACH: "host_unreachable",
  ENETUNREACH: "network_unreachable",
  ENETDOWN: "network_unreachable",
};

/** Code prefixes of TLS and certificate failures (OpenSSL verify errors, Node TLS errors). */
const TLS_CODE =
  /^(?:ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/;

/** Error `name`s with a meaning of their own (DOMExceptions from AbortSignal, undici error classes). */
const NAME_REASONS: Readonly<Record<string, string>> = {
  TimeoutError: "timeout", // AbortSignal.timeout() fired
  AbortError: "aborted", // the request was aborted before an answer
  ConnectTimeoutError: "connect_timeout",
  HeadersTimeoutError: "timeout",
  BodyTimeoutError: "timeout",
  SocketError: "connection_reset",
};

/** The reason `err` (or, depth-first, its `cause` and AggregateError members) carries, if any. */
function reasonOf(err: unknown, depth: number): string | undefined {
  if (depth > 5 || !isRecord(err)) return undefined;
  const code = typeof err["code"] === "string" ? err["code"] : undefined;
  if (code !== undefined) {
    const reason = CODE_REASONS[code] ?? (TLS_CODE.test(code) ? "tls_error" : undefined);
    if (reason) return reason;
  }
  const name = typeof err["name"] === "string" ? err["name"] : undefined;
  if (name !== undefined && Object.hasOwn(NAME_REASONS, name)) return NAME_REASONS[name];
  // fetch wraps the real failure: TypeError("fetch failed", { cause }); happy eyeballs an AggregateError.
  const nested = [err["cause"], ...(Array.isArray(err["errors"]) ? (err["errors"] as unknown[]) : [])];
  for (const inner of nested) {
    const reason = reasonOf(inner, depth + 1);
    if (reason) return reason;
  }
  return undefined;
}

/**
 * Classifies a failed call that produced no HTTP answer. The reason is always one of a fixed set
 * (never the error's message, which may hold a URL or header).
 */
export function classifyNetworkError(err: unknown): Classification {
  return { kind: "networkError", retryable: true, reason: reasonOf(err, 0) ?? "network_error" };
}
