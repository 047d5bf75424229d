/**
 * Token usage read from answers as they stream through the proxy: from a JSON body at its end,
 * or from server-sent events as each one completes. The total counts against the key's
 * tokensPerMinute (`tokens()`); the tokens by kind (input, cached input, output) price the call
 * (`usage()`).
 *
 * - OpenAI chat completions (and OpenAI-compatible, Mistral): `usage.total_tokens`, or prompt +
 *   completion; by kind `prompt_tokens` (cached included), `prompt_tokens_details.cached_tokens`,
 *   `completion_tokens`. In a stream, the final chunk's `usage` (with stream_options.include_usage).
 * - OpenAI Responses API: `usage.total_tokens`; by kind `input_tokens` (cached included),
 *   `input_tokens_details.cached_tokens`, `output_tokens`. In a stream, `response.completed`'s
 *   `response.usage`.
 * - Anthropic: `usage.input_tokens` + `cache_creation_input_tokens` + `cache_read_input_tokens`
 *   are the input (the cache reads its cached part), `output_tokens` the output; in a stream,
 *   message_start carries the input tokens and message_delta the output tokens so far.
 *   https://docs.claude.com/en/api/messages#response-usage
 * - Gemini: `usageMetadata.totalTokenCount`; by kind `promptTokenCount` (cached included),
 *   `cachedContentTokenCount`, `candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed
 *   as output). In a stream, every chunk repeats the running totals.
 *   https://ai.google.dev/api/generate-content#UsageMetadata
 */
import type { CallUsage } from "../pool/outcome.ts";
import { isRecord } from "../providers/errors-body.ts";

/** Largest JSON body read for usage; larger bodies pass through uncounted. */
const MAX_JSON_BYTES = 8 * 1024 * 1024;
/** Longest SSE line kept while looking for usage (longer lines are skipped, not buffered). */
const MAX_EVENT_LINE = 1024 * 1024;

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0);

/** Usage fields of one JSON object (a whole answer or one stream event). */
interface UsageReading {
  /** Tokens in total, when the object says so. */
  total?: number;
  /** Anthropic's input (cache included) and output, added up when there is no total. */
  input?: number;
  output?: number;
  /** By kind, for pricing: input (cached included), its cached part, output. */
  inputTokens?: number;
  cachedInputTokens?: number;
  outputTokens?: number;
}

/** Tokens by kind of an OpenAI, Anthropic or Responses API `usage` object (fields it has only). */
function kindsOf(usage: Record<string, unknown>, reading: UsageReading): void {
  if (usage["prompt_tokens"] !== undefined || usage["completion_tokens"] !== undefined) {
    if (usage["prompt_tokens"] !== undefined) reading.inputTokens = num(usage["prompt_tokens"]);
    const details = usage["prompt_tokens_details"];
    if (isRecord(details) && details["cached_tokens"] !== undefined)
      reading.cachedInputTokens = num(details["cached_tokens"]);
    if (usage["completion_tokens"] !== undefined) reading.outputTokens = num(usage["completion_tokens"]);
    return;
  }
  const created = usage["cache_creation_input_tokens"];
  const read = usage["cache_read_input_tokens"];
  if (usage["input_tokens"] !== undefined || created !== undefined || read !== undefined)
    reading.inputTokens = num(usage["input_tokens"]) + num(created) + num(read);
  const details = usage["input_tokens_details"];
  if (read !== undefined) reading.cachedInputTokens = num(read);
  else if (isRecord(details) && details["cached_tokens"] !== undefined)
    reading.cachedInputTokens = num(details["cached_tokens"]);
  if (usage["output_tokens"] !== undefined) reading.outputTokens = num(usage["output_tokens"]);
}

function readUsage(value: unknown): UsageReading | undefined {
  if (!isRecord(value)) return undefined;
  // Anthropic stream events wrap the message: {type: "message_start", message: {usage}}; OpenAI's
  // Responses API stream ends with {type: "response.completed", response: {usage}}.
  const message = isRecord(value["message"])
    ? value["message"]
    : isRecord(value["response"])
      ? value["response"]
      : undefined;
  const usage = isRecord(value["usage"])
    ? value["usage"]
    : message && isRecord(message["usage"])
      ? message["usage"]
      : undefined;
  if (usage) {
    const reading: UsageReading = {};
    kindsOf(usage, reading);
    if (usage["total_tokens"] !== undefined) reading.total = num(usage["total_tokens"]);
    else if (usage["prompt_tokens"] !== undefined || usage["completion_tokens"] !== undefined)
      reading.total = num(usage["prompt_tokens"]) + num(usage["completion_tokens"]);
    else {
      const input =
        num(usage["input_tokens"]) +
        num(usage["cache_creation_input_tokens"]) +
        num(usage["cache_read_input_tokens"]);
      if (input > 0) reading.input = input;
      if (usage["output_tokens"] !== undefined) reading.output = num(usage["output_tokens"]);
    }
    return reading;
  }
  const meta = value["usageMetadata"];
  if (!isRecord(meta)) return undefined;
  const reading: UsageReading = {};
  if (meta["totalTokenCount"] !== undefined) reading.total = num(meta["totalTokenCount"]);
  if (meta["promptTokenCount"] !== undefined) reading.inputTokens = num(meta["promptTokenCount"]);
  if (meta["cachedContentTokenCount"] !== undefined)
    reading.cachedInputTokens = num(meta["cachedContentTokenCount"]);
  if (meta["candidatesTokenCount"] !== undefined || meta["thoughtsTokenCount"] !== undefined)
    reading.outputTokens = num(meta["candidatesTokenCount"]) + num(meta["thoughtsTokenCount"]);
  return reading;
}

/** Watches an answer's bytes go by and says how many tokens it used, in total and by kind. */
export class UsageMeter {
  readonly #mode: "json" | "sse" | "none";
  readonly #decoder = new TextDecoder();
  #json: Buffer[] = [];
  #jsonBytes = 0;
  #line = "";
  #skipLine = false;
  #total = 0;
  #input = 0;
  #output = 0;
  /** Tokens by kind; -1 until the answer states that kind. */
  #inputTokens = -1;
  #cachedInputTokens = -1;
  #outputTokens = -1;

  constructor(contentType: string | undefined) {
    const type = (contentType ?? "").toLowerCase();
    this.#mode = type.includes("text/event-stream")
      ? "sse"
      : type.includes("json") && !type.includes("ndjson") // one JSON document, not JSON lines
        ? "json"
        : "none";
  }

  push(chunk: Buffer): void {
    if (this.#mode === "json") {
      if (this.#jsonBytes + chunk.length > MAX_JSON_BYTES) {
        this.#json = [];
        this.#jsonBytes = Number.POSITIVE_INFINITY;
        return;
      }
      this.#json.push(chunk);
      this.#jsonBytes += chunk.length;
    } else if (this.#mode === "sse") {
      this.#scan(this.#decoder.decode(chunk, { stream: true }));
    }
  }

  /** Lines of an event stream; only `data:` lines that mention usage are parsed. */
  #scan(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (nl < 0) {
        const rest = text.slice(start);
        if (this.#line.length + rest.length > MAX_EVENT_LINE) {
          this.#line = "";
          this.#skipLine = true;
        } else if (!this.#skipLine) this.#line += rest;
        return;
      }
      const tooLong = this.#line.length + (nl - start) > MAX_EVENT_LINE;
      const line = this.#skipLine || tooLong ? "" : this.#line + text.slice(start, nl);
      this.#line = "";
      this.#skipLine = false;
      this.#event(line.endsWith("\r") ? line.slice(0, -1) : line);
      start = nl + 1;
    }
  }

  #event(line: string): void {
    if (!line.startsWith("data:")) return;
    const at = line.indexOf("sage"); // "usage", "usageMetadata": most chunks are skipped unparsed
    if (at < 0) return;
    // OpenAI's chunks with include_usage say `"usage":null` on every chunk but the last.
    if (line.startsWith('"usage":null', at - 3) && line.indexOf("sage", at + 4) < 0) return;
    let value: unknown;
    try {
      value = JSON.parse(line.slice(5));
    } catch {
      return;
    }
    this.#apply(readUsage(value));
  }

  #apply(reading: UsageReading | undefined): void {
    if (!reading) return;
    // Running totals (OpenAI's last chunk, Gemini's every chunk, Anthropic's message_delta) replace
    // what came before; they never shrink.
    if (reading.total !== undefined) this.#total = Math.max(this.#total, reading.total);
    if (reading.input !== undefined) this.#input = Math.max(this.#input, reading.input);
    if (reading.output !== undefined) this.#output = Math.max(this.#output, reading.output);
    if (reading.inputTokens !== undefined)
      this.#inputTokens = Math.max(this.#inputTokens, reading.inputTokens);
    if (reading.cachedInputTokens !== undefined)
      this.#cachedInputTokens = Math.max(this.#cachedInputTokens, reading.cachedInputTokens);
    if (reading.outputTokens !== undefined)
      this.#outputTokens = Math.max(this.#outputTokens, reading.outputTokens);
  }

  /** A JSON answer is read once, at its end. */
  #finish(): void {
    if (this.#mode === "json" && this.#json.length > 0) {
      try {
        this.#apply(readUsage(JSON.parse(Buffer.concat(this.#json).toString("utf8"))));
      } catch {
        // Not JSON after all: nothing to count.
      }
      this.#json = [];
    }
  }

  /** Tokens the answer used (0 when it did not say). Call once the body has ended. */
  tokens(): number {
    this.#finish();
    return Math.max(this.#total, this.#input + this.#output);
  }

  /**
   * The answer's tokens by kind, each 0 when it states others but not that one; undefined when it
   * states none (no usage in the answer: a stream without include_usage, a model list, an error).
   * Cached input never exceeds input. Call once the body has ended (or broke off: what came so far).
   */
  usage(): Omit<CallUsage, "model"> | undefined {
    this.#finish();
    if (this.#inputTokens < 0 && this.#cachedInputTokens < 0 && this.#outputTokens < 0) return undefined;
    const inputTokens = Math.max(0, this.#inputTokens, this.#cachedInputTokens);
    return {
      inputTokens,
      cachedInputTokens: Math.max(0, this.#cachedInputTokens),
      outputTokens: Math.max(0, this.#outputTokens),
    };
  }
}
