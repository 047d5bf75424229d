/**
 * Any OpenAI-compatible endpoint (vLLM, Azure OpenAI's v1 API, LiteLLM, Groq, DeepSeek, Ollama…):
 * Bearer auth and OpenAI's body and header shapes, classified by HTTP status alone, because only
 * OpenAI itself promises OpenAI's error codes.
 */
import { openAIStyleFacts } from "./errors-body.ts";
import { retryAfterDeadline } from "./headers.ts";
import { defineProfile, type Rule, untilRateLimitLifts } from "./profile.ts";
import {
  durationOrSecondsFromNow,
  openAIStyleWindows,
  pickRateLimitDeadline,
  toRateLimitInfo,
} from "./rate-limit.ts";

/**
 * There is no default endpoint: the empty string means a KeyPool with `provider: openai-compatible`
 * must set `spec.baseURL` (the root before `/v1`, e.g. "http://vllm.ai.svc:8000").
 */
export const OPENAI_COMPATIBLE_DEFAULT_BASE_URL = "";

/**
 * Generic OpenAI semantics, keyed on status only; anything unmatched falls through to
 * HTTP_FALLBACK_RULES (402 → quotaExhausted, 408 → networkError, other 4xx → requestError, 5xx → serverError).
 * Sources:
 * - https://platform.openai.com/docs/guides/error-codes (the status meanings compatible servers copy)
 * - https://www.rfc-editor.org/rfc/rfc9110#section-15 and https://www.rfc-editor.org/rfc/rfc6585#section-4 (HTTP)
 */
export const OPENAI_COMPATIBLE_RULES: readonly Rule[] = [
  // 401: the server refused the key (vLLM --api-key, Azure "invalid subscription key", gateways).
  { status: 401, kind: "invalidKey", retryable: true, reason: "unauthorized" },
  // Decision: 403 is a requestError. Without a provider's documented codes a 403 cannot be told apart
  // from a network policy, firewall or gateway refusal (Azure "network access denied"), so the key is
  // not blamed.
  { status: 403, kind: "requestError", retryable: false, reason: "forbidden" },
  // 429: rate limited (no insufficient_quota assumption: quota errors arrive as 402 from DeepSeek & co.).
  { status: 429, kind: "rateLimited", retryable: true, reason: "rate_limited", until: untilRateLimitLifts },
];

export const openaiCompatible = defineProfile({
  name: "openai-compatible",
  defaultBaseURL: OPENAI_COMPATIBLE_DEFAULT_BASE_URL,
  authHeaders: (key) => ({ authorization: `Bearer ${key}` }),
  authHeaderNames: ["authorization"],
  // GET /v1/models is served by every OpenAI-compatible server and spends no tokens.
  probe: { method: "GET", path: "/v1/models", headers: { accept: "application/json" } },
  rules: OPENAI_COMPATIBLE_RULES,
  facts: openAIStyleFacts,
  // OpenAI's header names; resets as Go durations or bare seconds.
  rateLimitInfo: (headers, nowMs) => {
    const { requests, tokens } = openAIStyleWindows(headers, nowMs, durationOrSecondsFromNow);
    return toRateLimitInfo(requests, tokens);
  },
  rateLimitDeadline: (headers, _facts, nowMs) => {
    const { requests, tokens } = openAIStyleWindows(headers, nowMs, durationOrSecondsFromNow);
    return pickRateLimitDeadline(retryAfterDeadline(headers, nowMs), [requests, tokens]);
  },
});
