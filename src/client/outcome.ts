/**
 * What one call with a key said, turned into a report for the KeyPool server and a retry
 * decision. The server classifies HTTP answers itself (status, rate-limit headers, the provider's
 * error body), so an answer is reported as it came; only calls without an answer get an outcome
 * here (a network error, or the caller's own failure). Recognises fetch Responses, objects with
 * `status`/`statusCode` and `headers` (undici, axios), and the OpenAI and Anthropic SDKs' errors.
 */
import { isRecord } from "./errors.ts";

/** How a call with a key went, as the API's report `outcome` names it. */
export type Outcome =
  | "success"
  | "rateLimited"
  | "quotaExhausted"
  | "invalidKey"
  | "serverError"
  | "networkError"
  | "providerOverloaded"
  | "requestError";

/** Response headers: a fetch Headers, or a plain record as node:http, undici and axios give them. */
export type HeadersLike =
  | { forEach(callback: (value: string, name: string) => void): void }
  | Readonly<Record<string, string | readonly string[] | number | undefined>>;

/** The provider's HTTP answer: the server classifies it as the pool's provider documents it. */
export interface HttpResult {
  statusCode: number;
  headers?: HeadersLike;
  /** The provider's error body (text or parsed JSON): tells a rate limit from an exhausted quota. */
  body?: unknown;
}

/** Anything with a numeric HTTP `status` and `headers`: a fetch Response, for one. */
export interface ResponseLike {
  status: number;
  headers: HeadersLike;
}

/** The fields of a report body that say how the call went. */
export type ReportFields =
  { outcome: Outcome } | { statusCode: number; headers?: Record<string, string>; body?: unknown };

/**
 * Which provider statuses are worth another key (the proxy's rule, src/proxy): 401/403 the key was
 * refused and another may work; 429 the key is rate-limited; 5xx (529 included: Anthropic
 * overloaded) the call failed, possibly because of this key. 400, 404, 422 and the other 4xx are
 * about the request: another key would get the same answer.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 401 || status === 403 || status === 429 || (status >= 500 && status <= 599);
}

/** Header names worth sending: the ones the server's provider tables read (never auth headers). */
const RATE_LIMIT_HEADER = /^(?:retry-after|retry-after-ms|x-should-retry)$|rate-?limit/;
/** The server's limits on a report's headers (src/server/dispenser.ts ReportBody). */
const HEADER_VALUE_MAX = 1024;
const HEADERS_MAX = 64;
/** Enough of an error body to classify it; the server takes bodies up to 64 KiB. */
const ERROR_BODY_MAX = 16 * 1024;

/** The rate-limit headers of an answer, lower-cased, as the report's `headers`. */
export function rateLimitHeaders(headers: HeadersLike | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  let count = 0;
  const add = (value: unknown, rawName: string) => {
    const name = rawName.toLowerCase();
    if (count >= HEADERS_MAX || !RATE_LIMIT_HEADER.test(name)) return;
    const text = Array.isArray(value)
      ? value.join(", ")
      : typeof value === "string" || typeof value === "number"
        ? String(value)
        : undefined;
    if (text === undefined) return;
    out[name] = text.slice(0, HEADER_VALUE_MAX);
    count++;
  };
  if (!headers) return out;
  if (typeof headers.forEach === "function") (headers as Headers).forEach(add);
  else for (const [name, value] of Object.entries(headers)) add(value, name);
  return out;
}

/** `value` as an HTTP answer, when it is one (fetch Response, undici, or { statusCode, headers }). */
function httpStatusOf(value: unknown): number | undefined {
  if (!isRecord(value)) return undefined;
  const status = typeof value["status"] === "number" ? value["status"] : value["statusCode"];
  return typeof status === "number" && Number.isInteger(status) && status >= 100 && status <= 599
    ? status
    : undefined;
}

export function isResponseLike(value: unknown): value is ResponseLike {
  return httpStatusOf(value) !== undefined && isRecord(value) && isRecord(value["headers"]);
}

/** A stream, or anything else that is not a body we may send: those are not read. */
function isPlainBody(body: unknown): boolean {
  if (typeof body === "string") return true;
  if (!isRecord(body) && !Array.isArray(body)) return false;
  return !("getReader" in body) && !("pipe" in body) && !(Symbol.asyncIterator in body);
}

/** The start of a fetch Response's error body, read from a clone: the caller still gets the whole answer. */
async function errorBodyText(res: { clone(): Response }): Promise<string | undefined> {
  try {
    const reader = res.clone().body?.getReader();
    if (!reader) return undefined;
    const decoder = new TextDecoder();
    let text = "";
    while (text.length < ERROR_BODY_MAX) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    await reader.cancel().catch(() => undefined);
    return text.slice(0, ERROR_BODY_MAX);
  } catch {
    return undefined; // body already used or the stream failed: report the status alone
  }
}

/** The report fields for an HTTP answer given as a Response, an undici result or `{statusCode, headers, body}`. */
export async function reportOfAnswer(answer: ResponseLike | HttpResult): Promise<ReportFields> {
  const statusCode = httpStatusOf(answer) as number;
  const headers = rateLimitHeaders((answer as { headers?: HeadersLike }).headers);
  let body: unknown = (answer as { body?: unknown }).body;
  const clone = (answer as { clone?: unknown }).clone;
  if (statusCode >= 400 && typeof clone === "function") body = await errorBodyText(answer as Response);
  else if (!isPlainBody(body)) body = undefined;
  return { statusCode, headers, ...(body === undefined ? {} : { body }) };
}

/**
 * The HTTP answer a thrown error carries: `status`/`statusCode` and `headers` on the error (OpenAI
 * and Anthropic SDKs' APIError, got) or on its `response` (axios). The OpenAI SDK keeps only the
 * body's `error` object in `.error`: it is put back in its `{"error": ...}` envelope.
 */
export function answerOfError(err: unknown): HttpResult | undefined {
  // A KeyPoolClientError's status is the KeyPool server's, not a provider's.
  if (!isRecord(err) || err["name"] === "KeyPoolClientError") return undefined;
  const response = isRecord(err["response"]) ? err["response"] : undefined;
  const statusCode = httpStatusOf(err) ?? httpStatusOf(response);
  if (statusCode === undefined) return undefined;
  const headers = (isRecord(err["headers"]) ? err["headers"] : response?.["headers"]) as
    HeadersLike | undefined;
  let body: unknown;
  const sdkError = err["error"];
  if (isRecord(sdkError)) body = "error" in sdkError ? sdkError : { error: sdkError };
  else body = [err["body"], response?.["data"], response?.["body"]].find(isPlainBody);
  return { statusCode, ...(headers ? { headers } : {}), ...(body === undefined ? {} : { body }) };
}

/**
 * Error `code`s of transport failures (Node's system errors and undici's), as src/providers/network.ts
 * knows them: https://nodejs.org/api/errors.html#common-system-errors, https://undici.nodejs.org/#/docs/api/Errors
 */
const NETWORK_CODE =
  /^(?:ETIMEDOUT|ESOCKETTIMEDOUT|ECONNRESET|EPIPE|ECONNABORTED|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ENETDOWN|UND_ERR_\w+|ERR_TLS_\w+|ERR_SSL_\w+)$/;
/** Error names of failures without an answer: AbortSignal.timeout(), the SDKs' connection errors. */
const NETWORK_NAMES: ReadonlySet<string> = new Set([
  "TimeoutError",
  "APIConnectionError",
  "APIConnectionTimeoutError",
  "ConnectTimeoutError",
  "HeadersTimeoutError",
  "BodyTimeoutError",
  "SocketError",
]);

/** True when `err` (or what it wraps) is a failure to reach the provider, not the caller's own. */
export function isNetworkError(err: unknown, depth = 0): boolean {
  if (depth > 5 || !isRecord(err)) return false;
  const code = err["code"];
  if (typeof code === "string" && NETWORK_CODE.test(code)) return true;
  // The OpenAI SDK leaves `name` at "Error": its class name tells.
  const names = [err["name"], (err as { constructor?: { name?: unknown } }).constructor?.name];
  if (names.some((name) => typeof name === "string" && NETWORK_NAMES.has(name))) return true;
  // fetch: TypeError("fetch failed", { cause }); happy eyeballs: AggregateError of attempts.
  if (err instanceof TypeError && err.message === "fetch failed") return true;
  const nested = [err["cause"], ...(Array.isArray(err["errors"]) ? (err["errors"] as unknown[]) : [])];
  return nested.some((inner) => isNetworkError(inner, depth + 1));
}

/** Tokens a parsed provider answer says it used: OpenAI `usage`, Anthropic `usage`, Gemini `usageMetadata`. */
export function usageTokens(value: unknown): number | undefined {
  if (!isRecord(value) || httpStatusOf(value) !== undefined) return undefined;
  const usage = isRecord(value["usage"]) ? value["usage"] : undefined;
  const count = (n: unknown) =>
    typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined;
  const total = count(usage?.["total_tokens"]);
  if (total !== undefined) return total;
  const input = count(usage?.["input_tokens"]);
  const output = count(usage?.["output_tokens"]);
  if (input !== undefined || output !== undefined) return (input ?? 0) + (output ?? 0);
  const gemini = isRecord(value["usageMetadata"]) ? value["usageMetadata"] : undefined;
  return count(gemini?.["totalTokenCount"]);
}

/** A call's model and tokens by kind, as the report's `model`, `inputTokens`, ... fields carry them. */
export interface CallUsage {
  /** The model the call asked for: the pool's price list prices it. */
  model?: string;
  /** Input (prompt) tokens, cachedInputTokens included. */
  inputTokens?: number;
  /** Of inputTokens, those read from the provider's prompt cache. */
  cachedInputTokens?: number;
  outputTokens?: number;
}

/** The server's limits on a report's usage (src/server/dispenser.ts ReportBody). */
const MODEL_MAX = 200;
const TOKENS_MAX = 100_000_000;

/**
 * The model and tokens by kind a parsed provider answer states: OpenAI chat completions (`usage`
 * prompt/completion tokens, `prompt_tokens_details.cached_tokens`) and Responses API (`usage`
 * input/output tokens, `input_tokens_details.cached_tokens`), Anthropic (`usage`: input, cache
 * creation and cache read tokens are the input, cache reads its cached part), Gemini
 * (`usageMetadata`: prompt, cached content, candidates + thoughts as output). The model is the one
 * the answer names (`model`, Gemini's `modelVersion`): often a dated snapshot of the one asked for
 * (withKey's `model` option names that one instead). Undefined when the answer says neither.
 */
export function answerUsage(value: unknown): CallUsage | undefined {
  if (!isRecord(value) || httpStatusOf(value) !== undefined) return undefined;
  const count = (n: unknown) =>
    typeof n === "number" && Number.isFinite(n) && n >= 0 ? Math.min(TOKENS_MAX, Math.round(n)) : undefined;
  const sum = (...ns: unknown[]) =>
    ns.some((n) => count(n) !== undefined) ? ns.reduce<number>((a, n) => a + (count(n) ?? 0), 0) : undefined;
  const u = isRecord(value["usage"]) ? value["usage"] : undefined;
  const gemini = isRecord(value["usageMetadata"]) ? value["usageMetadata"] : undefined;
  let input: number | undefined;
  let cached: number | undefined;
  let output: number | undefined;
  if (u && (u["prompt_tokens"] !== undefined || u["completion_tokens"] !== undefined)) {
    input = count(u["prompt_tokens"]);
    cached = count(
      isRecord(u["prompt_tokens_details"]) ? u["prompt_tokens_details"]["cached_tokens"] : undefined,
    );
    output = count(u["completion_tokens"]);
  } else if (u) {
    input = sum(u["input_tokens"], u["cache_creation_input_tokens"], u["cache_read_input_tokens"]);
    cached =
      count(u["cache_read_input_tokens"]) ??
      count(isRecord(u["input_tokens_details"]) ? u["input_tokens_details"]["cached_tokens"] : undefined);
    output = count(u["output_tokens"]);
  } else if (gemini) {
    input = count(gemini["promptTokenCount"]);
    cached = count(gemini["cachedContentTokenCount"]);
    output = sum(gemini["candidatesTokenCount"], gemini["thoughtsTokenCount"]);
  }
  const usage: CallUsage = {};
  const model = typeof value["model"] === "string" ? value["model"] : value["modelVersion"];
  if (typeof model === "string" && model.length > 0 && model.length <= MODEL_MAX) usage.model = model;
  // Cached tokens are part of the input: the server refuses more of them than of input tokens.
  if (input !== undefined || cached !== undefined) usage.inputTokens = Math.max(input ?? 0, cached ?? 0);
  if (cached !== undefined) usage.cachedInputTokens = cached;
  if (output !== undefined) usage.outputTokens = output;
  return Object.keys(usage).length > 0 ? usage : undefined;
}

/** How one attempt of `withKey` ended: what to report, and whether another key may do better. */
export interface Verdict {
  report: ReportFields;
  retry: boolean;
  tokens?: number;
  /** The answer's model and tokens by kind (a success's). */
  usage?: CallUsage;
}

/** The verdict on what `fn` returned: an HTTP answer is reported as such, anything else is a success. */
export async function verdictOfValue(value: unknown, retryOn: (status: number) => boolean): Promise<Verdict> {
  if (isResponseLike(value)) {
    const report = await reportOfAnswer(value);
    const status = httpStatusOf(value) as number;
    return { report, retry: retryOn(status) };
  }
  const tokens = usageTokens(value);
  const usage = answerUsage(value);
  return {
    report: { outcome: "success" },
    retry: false,
    ...(tokens === undefined ? {} : { tokens }),
    ...(usage === undefined ? {} : { usage }),
  };
}

/** The verdict on what `fn` threw: its HTTP answer, a network error (retried), or the caller's own failure. */
export function verdictOfError(err: unknown, retryOn: (status: number) => boolean): Verdict {
  const answer = answerOfError(err);
  if (answer) {
    return {
      report: {
        statusCode: answer.statusCode,
        headers: rateLimitHeaders(answer.headers),
        ...(answer.body === undefined ? {} : { body: answer.body }),
      },
      retry: retryOn(answer.statusCode),
    };
  }
  if (isNetworkError(err)) return { report: { outcome: "networkError" }, retry: true };
  return { report: { outcome: "requestError" }, retry: false };
}
