/**
 * A provider profile: everything provider-specific as data and small pure functions. No I/O.
 */
import type { Outcome, RateLimitInfo } from "../pool/outcome.ts";

export const PROVIDER_NAMES = ["openai", "anthropic", "google", "mistral", "openai-compatible"] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** Response headers as Node gives them (lower-case names) or a fetch/undici Headers object. */
export type HeaderSource = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** What a provider answered. `body` may be the raw text or already-parsed JSON. */
export interface ProviderResponse {
  status: number;
  headers?: HeaderSource;
  body?: unknown;
}

/** The result of classifying an answer: what it means for the key, and whether to try another key. */
export interface Classification extends Outcome {
  /** True when another key (or a later retry) could succeed: 429, 5xx, 529, auth failures, network errors. */
  retryable: boolean;
}

/** The cheapest request that proves a key works, spending no tokens (a list-models call). */
export interface ProbeRequest {
  method: "GET";
  /** Path relative to the base URL, e.g. "/v1/models". Never carries the key. */
  path: string;
  headers: Record<string, string>;
}

export interface ProviderProfile {
  name: ProviderName;
  /** Base URL used when the KeyPool sets no spec.baseURL. */
  defaultBaseURL: string;
  /** Request headers that authenticate with `key` (never a URL parameter: URLs end up in logs). */
  authHeaders(key: string): Record<string, string>;
  /** The header names authHeaders sets, lower-case, so a proxy can strip callers' versions of them. */
  authHeaderNames: readonly string[];
  /** The key check (probe) request, without auth headers. */
  probe: ProbeRequest;
  /** Maps an HTTP answer to an outcome. `nowMs` turns relative waits (retry-after: 30) into deadlines. */
  classify(response: ProviderResponse, nowMs: number): Classification;
  /** Parses the provider's rate-limit headers; undefined when there are none. */
  rateLimitInfo(headers: HeaderSource | undefined, nowMs: number): RateLimitInfo | undefined;
}
