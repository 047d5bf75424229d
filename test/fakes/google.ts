/**
 * Fake Gemini API (generativelanguage.googleapis.com). Shapes follow the API reference:
 * - https://ai.google.dev/api/generate-content (GenerateContentResponse: `candidates`, `usageMetadata`,
 *   `modelVersion`, `responseId`; `:streamGenerateContent?alt=sse` sends `data: {...}` events separated
 *   by CRLF CRLF, without `?alt=sse` one JSON array written element by element)
 * - https://ai.google.dev/api/models (`models`, each with `name: "models/…"` and generation methods)
 * - https://ai.google.dev/gemini-api/docs/troubleshooting and https://cloud.google.com/apis/design/errors
 *   (`{"error":{"code","message","status","details"}}` with ErrorInfo, QuotaFailure, RetryInfo, Help)
 * The Gemini API sends no rate-limit headers: its limits show only in 429 bodies.
 */
import { ceilSeconds, countTokens, numberAt, randomId, replyPieces, textOf, valueAt } from "./format.ts";
import { MIN_CACHED_TOKENS } from "./cache.ts";
import type { Failure } from "./keys.ts";
import type { Answer, Dialect, RequestHead, RequestInfo, Route, RouteContext } from "./server.ts";

const CHUNK_GAP_MS = 5;
/** Tokens a thinking model spends thinking, at most (the request's thinkingBudget may allow fewer). */
const THOUGHT_TOKENS = 24;
const SERVICE = "generativelanguage.googleapis.com";
const QUOTA_MESSAGE =
  "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit.";

const MODELS = [
  { id: "gemini-2.5-flash", displayName: "Gemini 2.5 Flash", version: "001", outputTokenLimit: 65_536 },
  { id: "gemini-2.5-pro", displayName: "Gemini 2.5 Pro", version: "2.5", outputTokenLimit: 65_536 },
  { id: "gemini-2.0-flash", displayName: "Gemini 2.0 Flash", version: "2.0", outputTokenLimit: 8_192 },
];

function googleError(code: number, status: string, message: string, details?: unknown[]): Answer {
  return { status: code, body: { error: { code, message, status, ...(details ? { details } : {}) } } };
}

const errorInfo = (reason: string) => ({
  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
  reason,
  domain: "googleapis.com",
  metadata: { service: SERVICE },
});

/** The model a generate call names in its path; a default for other calls. */
function modelOf(info: RequestInfo): string {
  return /^\/v1beta\/models\/([^/:]+):/.exec(info.pathname)?.[1] ?? "gemini-2.5-flash";
}

function quotaFailure(
  info: RequestInfo,
  quotaId: string,
  metric: string,
  limit: number,
  retryMs: number,
): Answer {
  const seconds = ceilSeconds(retryMs);
  return googleError(
    429,
    "RESOURCE_EXHAUSTED",
    `${QUOTA_MESSAGE}\n* Quota exceeded for metric: ${SERVICE}/${metric}, limit: ${limit}, model: ${modelOf(info)}\nPlease retry in ${(retryMs / 1000).toFixed(3)}s.`,
    [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        violations: [
          {
            quotaMetric: `${SERVICE}/${metric}`,
            quotaId,
            quotaDimensions: { location: "global", model: modelOf(info) },
            quotaValue: String(limit),
          },
        ],
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        links: [
          {
            description: "Learn more about Gemini API quotas",
            url: "https://ai.google.dev/gemini-api/docs/rate-limits",
          },
        ],
      },
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: `${seconds}s` },
    ],
  );
}

/** Google's canonical code names for the 5xx statuses a test may ask for. */
const SERVER_ERRORS: Readonly<Record<number, [string, string]>> = {
  500: [
    "INTERNAL",
    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
  ],
  501: ["UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."],
  503: ["UNAVAILABLE", "The service is currently unavailable."],
  504: ["DEADLINE_EXCEEDED", "Deadline expired before operation could complete."],
};

function failure(failure: Failure, info: RequestInfo): Answer {
  switch (failure.kind) {
    case "invalid":
      return googleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        errorInfo("API_KEY_INVALID"),
        {
          "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
          locale: "en-US",
          message: "API key not valid. Please pass a valid API key.",
        },
      ]);
    case "rateLimited":
      return quotaFailure(
        info,
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "generate_content_free_tier_requests",
        10,
        failure.remainingMs,
      );
    case "quotaExhausted":
      // Real answers carry a RetryInfo even for a daily quota; waiting it out does not help.
      return quotaFailure(
        info,
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        "generate_content_free_tier_requests",
        250,
        43_000,
      );
    case "overloaded":
      return googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    case "serverError": {
      const [status, message] = SERVER_ERRORS[failure.status] ?? ["UNKNOWN", "Unknown error."];
      return googleError(failure.status, status, message);
    }
  }
}

function listModels({ exchange }: RouteContext): void {
  exchange.json({
    status: 200,
    body: {
      models: MODELS.map((m) => ({
        name: `models/${m.id}`,
        version: m.version,
        displayName: m.displayName,
        description: m.displayName,
        inputTokenLimit: 1_048_576,
        outputTokenLimit: m.outputTokenLimit,
        supportedGenerationMethods: [
          "generateContent",
          "countTokens",
          "createCachedContent",
          "batchGenerateContent",
        ],
        temperature: 1,
        topP: 0.95,
        topK: 64,
        maxTemperature: 2,
        thinking: m.id.startsWith("gemini-2.5"),
      })),
    },
  });
}

async function generate(ctx: RouteContext): Promise<void> {
  const { body, exchange, consume, match, promptCache } = ctx;
  const model = match[1] ?? "";
  const contents = valueAt(body, "contents");
  if (!Array.isArray(contents) || contents.length === 0)
    return exchange.json(
      googleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"),
    );
  const { pieces, truncated } = replyPieces(numberAt(valueAt(body, "generationConfig"), "maxOutputTokens"));
  const finishReason = truncated ? "MAX_TOKENS" : "STOP";
  const promptTokens = countTokens(textOf([valueAt(body, "systemInstruction"), contents]));
  // Implicit caching of long prompts (cache.ts): a lead of contents sent before, part of the prompt.
  const cachedTokens =
    promptTokens >= MIN_CACHED_TOKENS
      ? Math.min(promptTokens, promptCache.cachedLead([valueAt(body, "systemInstruction"), ...contents]))
      : 0;
  // Thinking, when the request gives it a budget: billed as output, counted apart from candidates.
  const budget = numberAt(valueAt(valueAt(body, "generationConfig"), "thinkingConfig"), "thinkingBudget");
  const thoughts = budget !== undefined && budget > 0 ? Math.min(Math.floor(budget), THOUGHT_TOKENS) : 0;
  consume(promptTokens, pieces.length + thoughts);
  const responseId = randomId(22);
  const usageMetadata = (candidates: number) => ({
    promptTokenCount: promptTokens,
    candidatesTokenCount: candidates,
    totalTokenCount: promptTokens + candidates + thoughts,
    ...(cachedTokens > 0 ? { cachedContentTokenCount: cachedTokens } : {}),
    ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
    promptTokensDetails: [{ modality: "TEXT", tokenCount: promptTokens }],
    ...(cachedTokens > 0 ? { cacheTokensDetails: [{ modality: "TEXT", tokenCount: cachedTokens }] } : {}),
  });
  const response = (text: string, candidates: number, finish: string | undefined) => ({
    candidates: [
      {
        content: { parts: [{ text }], role: "model" },
        ...(finish ? { finishReason: finish } : {}),
        index: 0,
      },
    ],
    usageMetadata: usageMetadata(candidates),
    modelVersion: model,
    responseId,
  });

  if (match[2] === "generateContent")
    return exchange.json({ status: 200, body: response(pieces.join(""), pieces.length, finishReason) });

  const chunks = pieces.map((text, i) =>
    response(text, i + 1, i === pieces.length - 1 ? finishReason : undefined),
  );
  if (ctx.query.get("alt") === "sse") {
    await exchange.stream(
      200,
      { "content-type": "text/event-stream", "content-disposition": "attachment" },
      chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\r\n\r\n`),
      CHUNK_GAP_MS,
    );
    return;
  }
  // Without alt=sse: one JSON array, written element by element as the elements are generated.
  const frames = chunks.map((chunk, i) => `${i === 0 ? "[" : ",\r\n"}${JSON.stringify(chunk)}`);
  await exchange.stream(
    200,
    { "content-type": "application/json; charset=UTF-8" },
    [...frames, "]"],
    CHUNK_GAP_MS,
  );
}

const ROUTES: readonly Route[] = [
  { method: "GET", path: /^\/v1beta\/models$/, jsonBody: false, handle: listModels },
  {
    method: "POST",
    path: /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/,
    jsonBody: true,
    handle: generate,
  },
];

function googleKey(head: RequestHead): string | undefined {
  const value = head.headers["x-goog-api-key"];
  const header = Array.isArray(value) ? value[0] : value;
  return header?.trim() || head.query.get("key") || undefined;
}

export const googleDialect: Dialect = {
  name: "google",
  routes: ROUTES,
  jsonContentType: "application/json; charset=UTF-8",
  keyOf: googleKey,
  baseHeaders: () => ({ server: "scaffolding on HTTPServer2", vary: "Origin, X-Origin, Referer" }),
  missingKey: () =>
    googleError(
      403,
      "PERMISSION_DENIED",
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    ),
  failure,
  notFound: () => googleError(404, "NOT_FOUND", "Method not found."),
  malformedJson: (_info, raw) => {
    const message = `Invalid JSON payload received. Unexpected token.\n${raw.slice(0, 40)}\n^`;
    return googleError(400, "INVALID_ARGUMENT", message, [
      { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ description: message }] },
    ]);
  },
  // A JSON-array stream that fails before its first element answers with the error inside an array.
  shapeError: (info, answer) =>
    info.pathname.endsWith(":streamGenerateContent") && info.query.get("alt") !== "sse"
      ? { ...answer, body: [answer.body] }
      : answer,
};
