/**
 * The model a proxied request asks for, which prices the call (the pool's price list is per
 * model): the JSON body's top-level `model` (OpenAI, Anthropic, Mistral, OpenAI-compatible
 * APIs), or for Gemini the path (`/v1beta/models/{model}:generateContent`,
 * `:streamGenerateContent`; its OpenAI-compatible endpoint names it in the body).
 *
 * The request's model, not the one the answer names: OpenAI and Anthropic answers name a dated
 * snapshot ("gpt-4o-2024-08-06" for "gpt-4o"), Gemini's `modelVersion` a version, and price lists
 * are written against the names callers ask for. The request's name is also the one the caller
 * chose and can see in its own code.
 *
 * The body is scanned, not parsed: `ModelScanner` walks the bytes once, skipping strings with
 * Buffer.indexOf and keeping nothing but the top-level keys it compares with "model" and that
 * key's value. It takes the body in chunks, so a body too large to hold for retries
 * (ProxyBody "streamed") is read as it streams to the provider, never buffered. A body that is
 * not a JSON object, or has no top-level string `model`, names no model. Like the providers'
 * JSON parsers, the last `model` of an object with several wins.
 */
import type { ProviderName } from "../providers/types.ts";
import type { ProxyBody } from "./body.ts";

/** Longest model name taken (the report API accepts the same); longer ones are no model. */
export const MAX_MODEL_LENGTH = 200;
/** Longest raw top-level key or `model` value kept while scanning (escapes take up to 6 bytes a character). */
const MAX_RAW = MAX_MODEL_LENGTH * 6;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const MODEL_KEY = Buffer.from("model");

/** Where each provider's requests name their model, as its API reference documents it. */
const MODEL_IN: Readonly<Record<ProviderName, "body" | "path">> = {
  // https://platform.openai.com/docs/api-reference/chat/create (and /responses, /embeddings)
  openai: "body",
  "openai-compatible": "body",
  // https://docs.mistral.ai/api/#tag/chat
  mistral: "body",
  // https://docs.claude.com/en/api/messages
  anthropic: "body",
  // https://ai.google.dev/api/generate-content: models/{model}:generateContent
  google: "path",
};

/** Gemini's `…/models/{model}:{method}` (Vertex-style prefixes included). */
const MODEL_PATH_RE = /\/models\/([A-Za-z0-9][A-Za-z0-9._-]*):[A-Za-z]+$/;

/** The model a Gemini path names, e.g. "gemini-2.5-flash" for /v1beta/models/gemini-2.5-flash:generateContent. */
export function modelOfPath(path: string): string | undefined {
  const model = MODEL_PATH_RE.exec(path)?.[1];
  return model !== undefined && model.length <= MAX_MODEL_LENGTH ? model : undefined;
}

/** The top-level `model` of a whole JSON body. */
export function modelOfJson(bytes: Buffer): string | undefined {
  const scanner = new ModelScanner();
  scanner.push(bytes);
  return scanner.model;
}

/**
 * The model of a request to `provider` when it can be known now: from the path, or from a body
 * held in memory. Undefined for a streamed body (scan it with a ModelScanner as it is sent).
 */
export function requestModel(provider: ProviderName, path: string, body: ProxyBody): string | undefined {
  if (MODEL_IN[provider] === "path") {
    const model = modelOfPath(path);
    if (model !== undefined) return model;
  }
  return body.kind === "buffered" ? modelOfJson(body.bytes) : undefined;
}

/** Where the scan is. */
const Phase = {
  /** Before the first non-blank byte: it must open an object. */
  Start: 0,
  /** Inside the top-level object. */
  Object: 1,
  /** The object ended, or the body is not one: nothing more to read. */
  Done: 2,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** What the string being read is kept for. */
const Capture = {
  None: 0,
  /** A top-level key: is it "model"? */
  Key: 1,
  /** The string value of a top-level "model". */
  Model: 2,
} as const;
type Capture = (typeof Capture)[keyof typeof Capture];

/** Reads a JSON body chunk by chunk for its top-level `model` (see the module header). */
export class ModelScanner {
  #phase: Phase = Phase.Start;
  /** Objects and arrays open: 1 inside the top-level object. */
  #depth = 0;
  #inString = false;
  /** Inside a string, the last chunk ended with an odd run of backslashes: the next byte is escaped. */
  #escaped = false;
  /** At depth 1, the next string is a key. */
  #expectKey = false;
  /** At depth 1, the last key was "model": its value comes next. */
  #modelValue = false;
  #capture: Capture = Capture.None;
  /** A captured string's bytes from earlier chunks (it started in one and went on). */
  #parts: Buffer[] = [];
  #partBytes = 0;
  #model: string | undefined;

  /** The last top-level string `model` seen so far. */
  get model(): string | undefined {
    return this.#model;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n && this.#phase !== Phase.Done) {
      if (this.#inString) {
        const end = this.#stringEnd(chunk, i);
        if (end < 0) {
          this.#keep(chunk, i, n);
          this.#escaped = oddRun(chunk, i, n, this.#escaped);
          return;
        }
        this.#inString = false;
        this.#escaped = false;
        if (this.#capture !== Capture.None) this.#captured(chunk, i, end);
        i = end + 1;
        continue;
      }
      const b = chunk[i] as number;
      i++;
      if (this.#phase === Phase.Start) {
        if (isBlank(b)) continue;
        if (b !== 0x7b) {
          this.#phase = Phase.Done; // not a JSON object
          return;
        }
        this.#phase = Phase.Object;
        this.#depth = 1;
        this.#expectKey = true;
        continue;
      }
      if (b === QUOTE) {
        this.#inString = true;
        if (this.#depth === 1) {
          this.#capture = this.#expectKey ? Capture.Key : this.#modelValue ? Capture.Model : Capture.None;
        }
      } else if (b === 0x7b || b === 0x5b) {
        this.#depth++;
        if (this.#modelValue) this.#notString(); // an object or array is no model name
      } else if (b === 0x7d || b === 0x5d) {
        if (--this.#depth === 0) this.#phase = Phase.Done;
      } else if (this.#depth === 1) {
        if (b === COMMA) {
          this.#expectKey = true;
          this.#modelValue = false;
        } else if (this.#modelValue && b !== COLON && !isBlank(b)) {
          this.#notString(); // a number, true, false, null
        }
      }
    }
  }

  /** The last `model` is not a string: no model (the last one wins). */
  #notString(): void {
    this.#modelValue = false;
    this.#model = undefined;
  }

  /** Index of the quote that ends the string going on at `from`, or -1 when it goes on past the chunk. */
  #stringEnd(chunk: Buffer, from: number): number {
    for (let q = nextQuote(chunk, from); q >= 0; q = nextQuote(chunk, q + 1)) {
      // A quote after an odd run of backslashes is escaped; a run reaching `from` goes on from
      // the last chunk's end.
      let k = q - 1;
      while (k >= from && chunk[k] === BACKSLASH) k--;
      const run = q - 1 - k;
      const escaped = k < from ? (run % 2 === 1) !== this.#escaped : run % 2 === 1;
      if (!escaped) return q;
    }
    return -1;
  }

  /** Keeps a captured string's bytes that continue in the next chunk (bounded). */
  #keep(chunk: Buffer, from: number, to: number): void {
    if (this.#capture === Capture.None) return;
    this.#partBytes += to - from;
    if (this.#partBytes > MAX_RAW) this.#parts = [];
    else this.#parts.push(Buffer.from(chunk.subarray(from, to)));
  }

  /** A top-level key or model value ended at `to`. */
  #captured(chunk: Buffer, from: number, to: number): void {
    const capture = this.#capture;
    this.#capture = Capture.None;
    let buf = chunk;
    let start = from;
    let end = to;
    if (this.#partBytes > 0) {
      // It began in an earlier chunk (rare: a key or model name cut by a chunk boundary).
      const whole = this.#partBytes + (to - from) <= MAX_RAW;
      buf = whole ? Buffer.concat([...this.#parts, chunk.subarray(from, to)]) : Buffer.alloc(MAX_RAW + 1);
      start = 0;
      end = buf.length;
      this.#parts = [];
      this.#partBytes = 0;
    }
    if (capture === Capture.Key) {
      this.#expectKey = false;
      this.#modelValue = isModelKey(buf, start, end);
      return;
    }
    this.#modelValue = false;
    const model = end - start > MAX_RAW ? undefined : unescape(buf, start, end);
    this.#model =
      model !== undefined && model.length > 0 && model.length <= MAX_MODEL_LENGTH ? model : undefined;
  }
}

/** Whether the raw key `buf[start, end)` is "model" (written plainly, as every SDK does, or escaped). */
function isModelKey(buf: Buffer, start: number, end: number): boolean {
  if (end - start === MODEL_KEY.length) {
    for (let k = 0; k < MODEL_KEY.length; k++) if (buf[start + k] !== MODEL_KEY[k]) return false;
    return true;
  }
  return end - start > MODEL_KEY.length && unescape(buf, start, end) === "model";
}

/** Bytes looked at one by one before asking Buffer.indexOf, whose call costs more than short strings. */
const SHORT_RUN = 48;

/** The index of the next `"` from `from`, or -1. */
function nextQuote(chunk: Buffer, from: number): number {
  const stop = Math.min(chunk.length, from + SHORT_RUN);
  for (let k = from; k < stop; k++) if (chunk[k] === QUOTE) return k;
  return stop < chunk.length ? chunk.indexOf(QUOTE, stop) : -1;
}

function isBlank(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Whether a string's bytes up to `to` end in an unfinished escape (an odd run of backslashes). */
function oddRun(chunk: Buffer, from: number, to: number, before: boolean): boolean {
  let k = to - 1;
  while (k >= from && chunk[k] === BACKSLASH) k--;
  const odd = (to - 1 - k) % 2 === 1;
  return k < from ? odd !== before : odd;
}

/** A JSON string's raw bytes `buf[start, end)` as the string they stand for; undefined when malformed. */
function unescape(buf: Buffer, start: number, end: number): string | undefined {
  const text = buf.toString("utf8", start, end);
  if (!text.includes("\\")) return text;
  try {
    return JSON.parse(`"${text}"`) as string;
  } catch {
    return undefined;
  }
}
