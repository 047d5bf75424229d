/**
 * The public shape of the fake provider servers: what tests script (a behaviour per key) and what
 * they read back (every request, in order).
 */

export type FakeProviderName = "openai" | "anthropic" | "google";

/** How the fake answers requests made with one key. Unknown keys are "invalid". */
export type KeyBehaviour =
  /** 200 with the provider's real success shapes and (OpenAI, Anthropic) rate-limit headers. */
  | { kind: "valid" }
  /** OpenAI 401 invalid_api_key, Anthropic 401 authentication_error, Gemini 400 INVALID_ARGUMENT + ErrorInfo API_KEY_INVALID. */
  | { kind: "invalid" }
  /** 429 with the provider's rate-limit body and headers, for that long from the moment it is set; then valid again. */
  | { kind: "rateLimited"; retryAfterSeconds: number }
  /** OpenAI 429 insufficient_quota, Anthropic 400 "credit balance is too low", Gemini 429 with a PerDay quotaId. */
  | { kind: "quotaExhausted" }
  /** 500 (or `status`) with the provider's error body. */
  | { kind: "serverError"; status?: number }
  /** Anthropic 529 overloaded_error; OpenAI 503 server_is_overloaded; Gemini 503 UNAVAILABLE "The model is overloaded". */
  | { kind: "overloaded" }
  /** Every Nth request with this key (counted from when it was set) is a 500; the others are valid. */
  | { kind: "flaky"; failEvery: number }
  /**
   * Valid, but the answer starts only after `delayMs`, and a stream pauses `chunkGapMs` between
   * pieces (default: the provider's usual few ms): for timeouts and abort tests.
   */
  | { kind: "slow"; delayMs: number; chunkGapMs?: number };

export interface RecordedRequest {
  method: string;
  /** Path and query string as received, without Gemini's `?key=` parameter (that is in `key`). */
  path: string;
  /** The key the request authenticated with, from the provider's own auth header (or Gemini's `?key=`). */
  key: string | undefined;
  /** The request headers as Node parsed them (lower-case names), auth headers included. */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body; the raw text when it is not JSON; undefined when there was none. */
  body: unknown;
  /** True when the client went away before the response ended. */
  aborted: boolean;
  /** Epoch ms when the request arrived. */
  at: number;
}

export interface FakeOptions {
  /** Multiplies the provider's tier limits in rate-limit headers (benchmarks need more than tier 1). */
  limitScale?: number;
  /** Keep no request records (benchmarks: millions of requests). */
  record?: boolean;
  /** Address to listen on (default 127.0.0.1; "0.0.0.0" serves other hosts, as in a container). */
  host?: string;
  /** Port to listen on (default 0: a free port). */
  port?: number;
  /**
   * A path prefix the API is served under, as behind a gateway ("/gw/team-a"): `url` ends with
   * it, and requests outside it get the provider's 404 (they are still recorded).
   */
  basePath?: string;
}

export interface FakeProvider {
  name: FakeProviderName;
  /**
   * http://127.0.0.1:<port> (no trailing slash): what a KeyPool's spec.baseURL points at. With
   * `options.host`, that host instead (127.0.0.1 still for the wildcard addresses 0.0.0.0 and ::);
   * with `options.basePath`, followed by it.
   */
  url: string;
  /** Scripts how requests with `key` are answered; unknown keys are "invalid". */
  setKey(key: string, behaviour: KeyBehaviour): void;
  /** Every request, in order of arrival. */
  requests: RecordedRequest[];
  /** Forgets the recorded requests; keys and their behaviours stay. */
  reset(): void;
  /** Stops the server, cutting any answer still in flight. */
  close(): Promise<void>;
}
