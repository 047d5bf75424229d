/**
 * Token usage read from answers as they stream through the proxy: from a JSON body at its end,
 * or from server-sent events as each one completes. Counts go against the key's tokensPerMinute.
 *
 * - OpenAI (and OpenAI-compatible, Mistral): `usage.total_tokens`, or prompt + completion; in a
 *   stream, the final chunk's `usage` (sent with stream_options.include_usage).
 * - Anthropic: `usage.input_tokens` + `usage.output_tokens` (+ cache tokens); in a stream,
 *   message_start carries the input tokens and message_delta the output tokens so far.
 * - Gemini: `usageMetadata.totalTokenCount`; in a stream, every chunk repeats the running total.
 */
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
  input?: number;
  output?: number;
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
    if (usage["total_tokens"] !== undefined) return { total: num(usage["total_tokens"]) };
    if (usage["prompt_tokens"] !== undefined || usage["completion_tokens"] !== undefined)
      return { total: num(usage["prompt_tokens"]) + num(usage["completion_tokens"]) };
    const input =
      num(usage["input_tokens"]) +
      num(usage["cache_creation_input_tokens"]) +
      num(usage["cache_read_input_tokens"]);
    const reading: UsageReading = {};
    if (input > 0) reading.input = input;
    if (usage["output_tokens"] !== undefined) reading.output = num(usage["output_tokens"]);
    return reading.input !== undefined || reading.output !== undefined ? reading : undefined;
  }
  const meta = value["usageMetadata"];
  if (isRecord(meta) && meta["totalTokenCount"] !== undefined) return { total: num(meta["totalTokenCount"]) };
  return undefined;
}

/** Watches an answer's bytes go by and says how many tokens it used. */
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
  }

  /** Tokens the answer used (0 when it did not say). Call once the body has ended. */
  tokens(): number {
    if (this.#mode === "json" && this.#json.length > 0) {
      try {
        this.#apply(readUsage(JSON.parse(Buffer.concat(this.#json).toString("utf8"))));
      } catch {
        // Not JSON after all: nothing to count.
      }
      this.#json = [];
    }
    return Math.max(this.#total, this.#input + this.#output);
  }
}
