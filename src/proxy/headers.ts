/**
 * Which headers cross the proxy. Callers authenticate with their ServiceAccount token wherever
 * their SDK puts its API key (Authorization: Bearer, x-api-key, x-goog-api-key, ?key=); that
 * credential never reaches the provider, and the provider's key never reaches the caller.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { bearerToken } from "../server/authorizer.ts";

/** Hop-by-hop headers (RFC 9110 §7.6.1) and framing headers each side sets for itself. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Where SDKs put their API key: the caller's token arrives in one of these, and all are dropped. */
const CREDENTIAL_HEADERS = new Set(["authorization", "x-api-key", "x-goog-api-key", "api-key"]);

/** The caller's token and where it came from. */
export interface CallerCredential {
  token: string | undefined;
  /** "authorization" | "x-api-key" | "x-goog-api-key" | "query" | undefined when none was sent. */
  from: string | undefined;
}

const single = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/**
 * The caller's token: OpenAI SDKs send Authorization: Bearer, Anthropic's x-api-key, Google's
 * x-goog-api-key or ?key=. The first one present wins, in that order.
 */
export function callerCredential(headers: IncomingHttpHeaders, query: URLSearchParams): CallerCredential {
  const authorization = single(headers.authorization);
  if (authorization !== undefined) return { token: bearerToken(authorization), from: "authorization" };
  const apiKey = single(headers["x-api-key"]);
  if (apiKey) return { token: apiKey.trim(), from: "x-api-key" };
  const googKey = single(headers["x-goog-api-key"]);
  if (googKey) return { token: googKey.trim(), from: "x-goog-api-key" };
  const queryKey = query.get("key");
  if (queryKey) return { token: queryKey, from: "query" };
  return { token: undefined, from: undefined };
}

/**
 * The headers sent to the provider: the caller's, without hop-by-hop headers, the caller's
 * credential, keypool's own x-keypool-* headers, Host and framing; then the key's auth headers.
 * A provider header the key's auth also sets (anthropic-version) keeps the caller's value.
 * The response is asked for uncompressed, so the proxy can read token usage from it.
 */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  keyAuth: Record<string, string>,
  bodyLength: number | undefined,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionListed = listedInConnection(incoming.connection);
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || connectionListed.has(name) || CREDENTIAL_HEADERS.has(name)) continue;
    if (name === "host" || name === "content-length" || name === "expect" || name === "accept-encoding")
      continue;
    if (name.startsWith("x-keypool-")) continue;
    out[name] = value;
  }
  for (const [name, value] of Object.entries(keyAuth)) {
    if (CREDENTIAL_HEADERS.has(name) || out[name] === undefined) out[name] = value;
  }
  out["accept-encoding"] = "identity";
  if (bodyLength !== undefined) out["content-length"] = String(bodyLength);
  return out;
}

/**
 * The provider's response headers as the caller gets them: without hop-by-hop headers and
 * without the provider's per-key x-ratelimit-* (the proxy sends the pool's instead).
 */
export function downstreamHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionListed = listedInConnection(upstream.connection);
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || connectionListed.has(name)) continue;
    if (name.startsWith("x-ratelimit-")) continue;
    out[name] = value;
  }
  return out;
}

function listedInConnection(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return new Set(
    text
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** OpenAI's duration format in x-ratelimit-reset-*: "20ms", "1s", "6m0s", "1h2m3s". */
export function resetDuration(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const totalSeconds = Math.ceil(ms / 1000);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
