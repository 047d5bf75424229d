/**
 * Fake Anthropic API (api.anthropic.com). Shapes follow the API reference and the
 * @anthropic-ai/sdk types:
 * - https://docs.claude.com/en/api/messages (Message, `usage`), https://docs.claude.com/en/api/messages-streaming
 *   (`event: X` + `data: {...}`: message_start, content_block_start, ping, content_block_delta…,
 *   content_block_stop, message_delta with `usage.output_tokens`, message_stop)
 * - https://docs.claude.com/en/api/models-list (`data`, `has_more`, `first_id`, `last_id`)
 * - https://docs.claude.com/en/api/errors (`{"type":"error","error":{"type","message"},"request_id"}`,
 *   401 authentication_error, 429 rate_limit_error, 500 api_error, 529 overloaded_error)
 * - https://docs.claude.com/en/api/rate-limits (`retry-after`, `anthropic-ratelimit-*` with RFC 3339 resets)
 * - https://docs.claude.com/en/api/versioning (`anthropic-version` is required)
 */
import {
  ceilSeconds,
  countTokens,
  numberAt,
  randomId,
  replyPieces,
  rfc3339,
  stringAt,
  textOf,
  valueAt,
} from "./format.ts";
import { anthropicCachePrefix, MIN_CACHED_TOKENS } from "./cache.ts";
import type { Failure, Usage } from "./keys.ts";
import type { Answer, Dialect, RequestHead, Route, RouteContext } from "./server.ts";

/** Tier-1 limits of Claude Sonnet. */
const LIMITS = { requests: 50, inputTokens: 30_000, outputTokens: 8_000 } as const;
const ORGANIZATION_ID = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";
const CHUNK_GAP_MS = 5;

const MODELS = [
  { id: "claude-sonnet-4-5-20250929", display_name: "Claude Sonnet 4.5", created_at: "2025-09-29T00:00:00Z" },
  { id: "claude-haiku-4-5-20251001", display_name: "Claude Haiku 4.5", created_at: "2025-10-15T00:00:00Z" },
  { id: "claude-opus-4-1-20250805", display_name: "Claude Opus 4.1", created_at: "2025-08-05T00:00:00Z" },
];

/** The request id of the answer being built: a header and, on errors, a body field. */
function newRequestId(): string {
  return `req_011C${randomId(20)}`;
}

function anthropicError(
  status: number,
  type: string,
  message: string,
  headers: Record<string, string> = {},
): Answer {
  const requestId = newRequestId();
  return {
    status,
    headers: { "request-id": requestId, ...headers },
    body: { type: "error", error: { type, message }, request_id: requestId },
  };
}

/** `anthropic-ratelimit-*` for all four families after this request. */
function rateLimitHeaders(usage: Usage): Record<string, string> {
  const reset = rfc3339(Date.now() + usage.resetInMs);
  const family = (name: string, limit: number, used: number) => ({
    [`anthropic-ratelimit-${name}-limit`]: String(limit),
    [`anthropic-ratelimit-${name}-remaining`]: String(Math.max(0, limit - used)),
    [`anthropic-ratelimit-${name}-reset`]: reset,
  });
  // "tokens" is the most restrictive token limit in effect: the family with less headroom.
  const scale = usage.limitScale;
  const limits = {
    requests: LIMITS.requests * scale,
    inputTokens: LIMITS.inputTokens * scale,
    outputTokens: LIMITS.outputTokens * scale,
  };
  const inputLeft = 1 - usage.inputTokens / limits.inputTokens;
  const outputLeft = 1 - usage.outputTokens / limits.outputTokens;
  const tokens =
    outputLeft < inputLeft
      ? family("tokens", limits.outputTokens, usage.outputTokens)
      : family("tokens", limits.inputTokens, usage.inputTokens);
  return {
    ...family("requests", limits.requests, usage.requests),
    ...tokens,
    ...family("input-tokens", limits.inputTokens, usage.inputTokens),
    ...family("output-tokens", limits.outputTokens, usage.outputTokens),
  };
}

function successHeaders(usage: Usage): Record<string, string> {
  return {
    "request-id": newRequestId(),
    "anthropic-organization-id": ORGANIZATION_ID,
    ...rateLimitHeaders(usage),
  };
}

function failure(failure: Failure): Answer {
  switch (failure.kind) {
    case "invalid":
      return anthropicError(401, "authentication_error", "invalid x-api-key");
    case "rateLimited": {
      const reset = rfc3339(Date.now() + failure.remainingMs);
      return anthropicError(
        429,
        "rate_limit_error",
        `This request would exceed the rate limit for your organization (${ORGANIZATION_ID}) of ${LIMITS.requests} requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.`,
        {
          "retry-after": String(ceilSeconds(failure.remainingMs)),
          "anthropic-ratelimit-requests-limit": String(LIMITS.requests),
          "anthropic-ratelimit-requests-remaining": "0",
          "anthropic-ratelimit-requests-reset": reset,
        },
      );
    }
    case "quotaExhausted":
      return anthropicError(
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
      );
    case "overloaded":
      return anthropicError(529, "overloaded_error", "Overloaded");
    case "serverError":
      return failure.status === 504
        ? anthropicError(504, "timeout_error", "Request timed out")
        : anthropicError(failure.status, "api_error", "Internal server error");
  }
}

function listModels({ exchange, consume }: RouteContext): void {
  exchange.json({
    status: 200,
    headers: successHeaders(consume(0, 0)),
    body: {
      data: MODELS.map((m) => ({ type: "model", ...m })),
      has_more: false,
      first_id: MODELS[0]?.id ?? null,
      last_id: MODELS.at(-1)?.id ?? null,
    },
  });
}

/** Anthropic's validation answer for a missing field: "<field>: Field required". */
function missingField(body: unknown): string | undefined {
  if (stringAt(body, "model") === undefined) return "model";
  if (!Array.isArray(valueAt(body, "messages"))) return "messages";
  if (numberAt(body, "max_tokens") === undefined) return "max_tokens";
  return undefined;
}

function sse(event: string, data: object): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

async function messages({ body, exchange, consume, promptCache }: RouteContext): Promise<void> {
  const missing = missingField(body);
  if (missing)
    return exchange.json(anthropicError(400, "invalid_request_error", `${missing}: Field required`));
  const model = stringAt(body, "model") ?? "";
  const { pieces, truncated } = replyPieces(numberAt(body, "max_tokens"));
  const stopReason = truncated ? "max_tokens" : "end_turn";
  const inputTokens = countTokens(textOf([valueAt(body, "system"), valueAt(body, "messages")]));
  const headers = successHeaders(consume(inputTokens, pieces.length));
  // Up to the last cache_control breakpoint, when that prefix is long enough (cache.ts): written
  // to the cache the first time, read from it after.
  const prefix = anthropicCachePrefix(valueAt(body, "system"), valueAt(body, "messages"));
  const prefixTokens = prefix ? Math.min(inputTokens, countTokens(textOf(prefix))) : 0;
  const cached = prefix !== undefined && prefixTokens >= MIN_CACHED_TOKENS;
  const cacheRead = cached && promptCache.seen(prefix) ? prefixTokens : 0;
  const cacheCreation = cached && cacheRead === 0 ? prefixTokens : 0;
  const usage = (outputTokens: number) => ({
    input_tokens: inputTokens - cacheRead - cacheCreation,
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: cacheRead,
    output_tokens: outputTokens,
    service_tier: "standard",
  });
  const message = {
    id: `msg_01${randomId(22)}`,
    type: "message",
    role: "assistant",
    model,
  };

  if (valueAt(body, "stream") !== true) {
    return exchange.json({
      status: 200,
      headers,
      body: {
        ...message,
        content: [{ type: "text", text: pieces.join("") }],
        stop_reason: stopReason,
        stop_sequence: null,
        usage: usage(pieces.length),
      },
    });
  }

  const frames = [
    sse("message_start", {
      type: "message_start",
      message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: usage(1) },
    }),
    sse("content_block_start", {
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    }),
    sse("ping", { type: "ping" }),
    ...pieces.map((text) =>
      sse("content_block_delta", {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text },
      }),
    ),
    sse("content_block_stop", { type: "content_block_stop", index: 0 }),
    sse("message_delta", {
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: pieces.length },
    }),
    sse("message_stop", { type: "message_stop" }),
  ];
  await exchange.stream(
    200,
    { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
    frames,
    CHUNK_GAP_MS,
  );
}

const ROUTES: readonly Route[] = [
  { method: "GET", path: /^\/v1\/models$/, jsonBody: false, handle: listModels },
  { method: "POST", path: /^\/v1\/messages$/, jsonBody: true, handle: messages },
];

function header(head: RequestHead, name: string): string | undefined {
  const value = head.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text.trim() === "" ? undefined : text.trim();
}

export const anthropicDialect: Dialect = {
  name: "anthropic",
  routes: ROUTES,
  jsonContentType: "application/json",
  keyOf: (head) => header(head, "x-api-key"),
  baseHeaders: () => ({}),
  missingKey: () => anthropicError(401, "authentication_error", "x-api-key header is required"),
  precheck: (info) =>
    header(info, "anthropic-version") === undefined
      ? anthropicError(400, "invalid_request_error", "anthropic-version: header is required")
      : undefined,
  failure,
  notFound: () => anthropicError(404, "not_found_error", "Not Found"),
  malformedJson: () =>
    anthropicError(
      400,
      "invalid_request_error",
      "There was an issue with the request body: the body is not valid JSON.",
    ),
};
