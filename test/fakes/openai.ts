/**
 * Fake OpenAI API (api.openai.com). Shapes follow the API reference and the openai-node SDK's types:
 * - https://platform.openai.com/docs/api-reference/chat (chat.completion, chat.completion.chunk,
 *   `stream_options.include_usage`: a last chunk with `choices: []` and `usage`, then `data: [DONE]`)
 * - https://platform.openai.com/docs/api-reference/models/list, .../embeddings (base64 when asked,
 *   as openai-node asks by default: little-endian float32)
 * - https://platform.openai.com/docs/guides/error-codes (401 invalid_api_key, 429 rate_limit_exceeded vs
 *   insufficient_quota, 500 server_error, 503 server_is_overloaded)
 * - https://platform.openai.com/docs/guides/rate-limits (`x-ratelimit-*`, resets as Go durations)
 */
import { MIN_CACHED_TOKENS, openaiCachedTokens } from "./cache.ts";
import type { Failure, Usage } from "./keys.ts";
import {
  ceilSeconds,
  countTokens,
  goDuration,
  maskKey,
  numberAt,
  randomId,
  replyPieces,
  stringAt,
  textOf,
  valueAt,
} from "./format.ts";
import type { Answer, Dialect, RequestHead, RequestInfo, Route, RouteContext } from "./server.ts";

/** Tier-1 limits of gpt-4o-mini. */
const LIMIT_REQUESTS = 500;
const LIMIT_TOKENS = 200_000;
const ORGANIZATION = "org-fakekeypool";
const CHUNK_GAP_MS = 5;

const MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small", "o4-mini"];

function openaiError(
  status: number,
  message: string,
  type: string,
  code: string | null,
  param: string | null = null,
) {
  return { status, body: { error: { message, type, param, code } } };
}

/** `x-ratelimit-*` after this request: what every successful answer carries. */
function rateLimitHeaders(usage: Usage): Record<string, string> {
  const tokens = usage.inputTokens + usage.outputTokens;
  const limitRequests = LIMIT_REQUESTS * usage.limitScale;
  const limitTokens = LIMIT_TOKENS * usage.limitScale;
  return {
    "x-ratelimit-limit-requests": String(limitRequests),
    "x-ratelimit-limit-tokens": String(limitTokens),
    "x-ratelimit-remaining-requests": String(Math.max(0, limitRequests - usage.requests)),
    "x-ratelimit-remaining-tokens": String(Math.max(0, limitTokens - tokens)),
    // OpenAI's buckets refill continuously: a reset is the time until everything used is back.
    "x-ratelimit-reset-requests": goDuration((60_000 * usage.requests) / limitRequests),
    "x-ratelimit-reset-tokens": goDuration((60_000 * tokens) / limitTokens),
  };
}

function successHeaders(usage: Usage): Record<string, string> {
  return {
    "openai-organization": ORGANIZATION,
    "openai-processing-ms": "42",
    "openai-version": "2020-10-01",
    ...rateLimitHeaders(usage),
  };
}

function failure(failure: Failure, info: RequestInfo, key: string): Answer {
  switch (failure.kind) {
    case "invalid":
      return openaiError(
        401,
        `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        "invalid_request_error",
        "invalid_api_key",
      );
    case "rateLimited": {
      const wait = goDuration(failure.remainingMs);
      return {
        ...openaiError(
          429,
          `Rate limit reached for ${modelOf(info)} in organization ${ORGANIZATION} on requests per min (RPM): Limit ${LIMIT_REQUESTS}, Used ${LIMIT_REQUESTS}, Requested 1. Please try again in ${wait}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
          "requests",
          "rate_limit_exceeded",
        ),
        headers: {
          "retry-after": String(ceilSeconds(failure.remainingMs)),
          "x-ratelimit-limit-requests": String(LIMIT_REQUESTS),
          "x-ratelimit-limit-tokens": String(LIMIT_TOKENS),
          "x-ratelimit-remaining-requests": "0",
          "x-ratelimit-remaining-tokens": String(LIMIT_TOKENS),
          "x-ratelimit-reset-requests": wait,
          "x-ratelimit-reset-tokens": "0s",
        },
      };
    }
    case "quotaExhausted":
      return openaiError(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        "insufficient_quota",
      );
    case "overloaded":
      return openaiError(
        503,
        "The server is overloaded or not ready yet.",
        "service_unavailable_error",
        "server_is_overloaded",
      );
    case "serverError":
      return failure.status === 500
        ? openaiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            null,
          )
        : openaiError(
            failure.status,
            "The server had an error processing your request.",
            "server_error",
            null,
          );
  }
}

/** The model a request names, for error messages. */
function modelOf(info: RequestInfo): string {
  return stringAt(info.body, "model") ?? "gpt-4o-mini";
}

function listModels({ exchange, consume }: RouteContext): void {
  exchange.json({
    status: 200,
    headers: successHeaders(consume(0, 0)),
    body: {
      object: "list",
      data: MODELS.map((id, i) => ({ id, object: "model", created: 1_715_367_049 + i, owned_by: "system" })),
    },
  });
}

async function chatCompletions({ body, exchange, consume, promptCache }: RouteContext): Promise<void> {
  const model = stringAt(body, "model");
  const messages = valueAt(body, "messages");
  if (model === undefined)
    return exchange.json(
      openaiError(400, "you must provide a model parameter", "invalid_request_error", null),
    );
  if (!Array.isArray(messages))
    return exchange.json(
      openaiError(
        400,
        "Missing required parameter: 'messages'.",
        "invalid_request_error",
        "missing_required_parameter",
        "messages",
      ),
    );
  const maxTokens = numberAt(body, "max_completion_tokens") ?? numberAt(body, "max_tokens");
  const { pieces, truncated } = replyPieces(maxTokens);
  const finishReason = truncated ? "length" : "stop";
  const promptTokens = countTokens(textOf(messages));
  // Long prompts only: a lead of messages sent before is read from the cache (cache.ts).
  const cachedTokens =
    promptTokens >= MIN_CACHED_TOKENS
      ? openaiCachedTokens(promptCache.cachedLead(messages as unknown[]), promptTokens)
      : 0;
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: pieces.length,
    total_tokens: promptTokens + pieces.length,
    prompt_tokens_details: { cached_tokens: cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
  const headers = successHeaders(consume(promptTokens, pieces.length));
  const common = {
    id: `chatcmpl-${randomId(29)}`,
    created: Math.floor(Date.now() / 1000),
    model,
    service_tier: "default",
    system_fingerprint: "fp_fake0keypool",
  };

  if (valueAt(body, "stream") !== true) {
    return exchange.json({
      status: 200,
      headers,
      body: {
        ...common,
        object: "chat.completion",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: pieces.join(""), refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage,
      },
    });
  }

  const includeUsage = valueAt(valueAt(body, "stream_options"), "include_usage") === true;
  const chunk = (choices: unknown[], chunkUsage: unknown = null) =>
    `data: ${JSON.stringify({
      ...common,
      object: "chat.completion.chunk",
      choices,
      ...(includeUsage ? { usage: chunkUsage } : {}),
    })}\n\n`;
  const choice = (delta: object, finish: string | null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finish,
  });
  const frames = [
    chunk([choice({ role: "assistant", content: "", refusal: null }, null)]),
    ...pieces.map((text) => chunk([choice({ content: text }, null)])),
    chunk([choice({}, finishReason)]),
    ...(includeUsage ? [chunk([], usage)] : []),
    "data: [DONE]\n\n",
  ];
  await exchange.stream(
    200,
    { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
    frames,
    CHUNK_GAP_MS,
  );
}

/** A deterministic vector for `text`. */
function embed(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++)
    vector[i] = Math.sin((text.charCodeAt(i % Math.max(1, text.length)) || 1) * (i + 1));
  return vector;
}

function embeddings({ body, exchange, consume }: RouteContext): void {
  const model = stringAt(body, "model");
  const input = valueAt(body, "input");
  if (model === undefined || input === undefined)
    return exchange.json(
      openaiError(
        400,
        "Missing required parameter: 'input'.",
        "invalid_request_error",
        "missing_required_parameter",
        "input",
      ),
    );
  const inputs: unknown[] =
    typeof input === "string" || (Array.isArray(input) && typeof input[0] === "number")
      ? [input]
      : Array.isArray(input)
        ? input
        : [input];
  const dimensions = numberAt(body, "dimensions") ?? 1536;
  const base64 = valueAt(body, "encoding_format") === "base64";
  const promptTokens = countTokens(textOf(inputs));
  exchange.json({
    status: 200,
    headers: successHeaders(consume(promptTokens, 0)),
    body: {
      object: "list",
      data: inputs.map((item, index) => {
        const vector = embed(typeof item === "string" ? item : JSON.stringify(item), dimensions);
        return {
          object: "embedding",
          index,
          embedding: base64 ? Buffer.from(vector.buffer).toString("base64") : Array.from(vector),
        };
      }),
      model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    },
  });
}

const ROUTES: readonly Route[] = [
  { method: "GET", path: /^\/v1\/models$/, jsonBody: false, handle: listModels },
  { method: "POST", path: /^\/v1\/chat\/completions$/, jsonBody: true, handle: chatCompletions },
  { method: "POST", path: /^\/v1\/embeddings$/, jsonBody: true, handle: embeddings },
];

function bearerKey(info: RequestHead): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(info.headers.authorization ?? "");
  return match?.[1];
}

export const openaiDialect: Dialect = {
  name: "openai",
  routes: ROUTES,
  jsonContentType: "application/json",
  keyOf: bearerKey,
  baseHeaders: () => ({ "x-request-id": `req_${randomId(32).toLowerCase()}` }),
  missingKey: () =>
    openaiError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
      "invalid_request_error",
      null,
    ),
  failure: (f, info) => failure(f, info, bearerKey(info) ?? ""),
  notFound: (info) =>
    openaiError(404, `Invalid URL (${info.method} ${info.pathname})`, "invalid_request_error", null),
  malformedJson: () =>
    openaiError(
      400,
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
      "invalid_request_error",
      null,
    ),
};
