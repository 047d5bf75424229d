/**
 * What one call with a key says about that key. Produced by provider profiles (src/providers)
 * from an HTTP answer, or by callers' reports; consumed by the engine's state machine.
 */

/** Which way an outcome moves a key. */
export const OutcomeKind = {
  /** The call worked: the key is fine. Resets the consecutive-error count. */
  Success: "success",
  /** The key (or its quota group) hit a rate limit; it recovers at `untilMs` or after rateLimitCooldown. */
  RateLimited: "rateLimited",
  /** The key's account is out of credit or its daily/monthly quota: held long, re-checked by probe. */
  QuotaExhausted: "quotaExhausted",
  /** The provider rejected the key itself (revoked, wrong, disabled): Invalid until the Secret changes. */
  InvalidKey: "invalidKey",
  /** 5xx from the provider for this call: counts towards Degraded after failureThreshold in a row. */
  ServerError: "serverError",
  /** Timeout or connection failure: counts towards Degraded like a server error. */
  NetworkError: "networkError",
  /**
   * The caller says the key is degraded (the key-pool-manager API's `degraded`): Degraded at
   * once, not after failureThreshold errors; Healthy again after degradedCooldown without errors,
   * or on the next success.
   */
  Degraded: "degraded",
  /** The provider as a whole is overloaded (Anthropic 529): retry elsewhere, the key is not blamed. */
  ProviderOverloaded: "providerOverloaded",
  /** The request itself was wrong (400/404/422) or the caller's network is refused: says nothing about the key. */
  RequestError: "requestError",
} as const;
export type OutcomeKind = (typeof OutcomeKind)[keyof typeof OutcomeKind];

/** Rate-limit facts from provider headers; any field may be missing. Times are epoch ms. */
export interface RateLimitInfo {
  limitRequests?: number;
  remainingRequests?: number;
  resetRequestsAtMs?: number;
  limitTokens?: number;
  remainingTokens?: number;
  resetTokensAtMs?: number;
}

/** A call's model and tokens by kind, as the price list charges them. */
export interface CallUsage {
  model?: string;
  /** Input (prompt) tokens, including cachedInputTokens. */
  inputTokens?: number;
  /** Of inputTokens, those read from the provider's prompt cache (cheaper on most price lists). */
  cachedInputTokens?: number;
  outputTokens?: number;
}

export interface Outcome {
  kind: OutcomeKind;
  /** Until when the key should not be used (rateLimited/quotaExhausted), epoch ms, when the provider said. */
  untilMs?: number;
  /** Stable machine-readable reason, e.g. "rate_limit_exceeded", "insufficient_quota", "http_500". */
  reason?: string;
  /** HTTP status that produced this outcome, when there was one. */
  statusCode?: number;
  /** Tokens the call used (success), counted against tokensPerMinute. */
  tokens?: number;
  /**
   * What the call cost, from the pool's price list: the model it named and its tokens by kind.
   * Any may be missing; without a model, or a price for it, the call costs nothing known.
   */
  usage?: CallUsage;
  /** Rate-limit headers seen on the answer (any outcome). */
  rateLimit?: RateLimitInfo;
  /**
   * How long the call took, in ms: a report's `latencyMs`, or the proxy's time from sending the
   * request to the provider's response headers. Feeds the key's average latency (not for
   * requestError outcomes: those say nothing about the key).
   */
  latencyMs?: number;
}
