/**
 * Reading provider error bodies. A body may arrive as raw text (JSON, or an HTML error page from a
 * proxy), as bytes, as already-parsed JSON, or not at all; everything here copes with each and never
 * throws. What comes out are `ErrorFacts`: the few fields the classification tables match on.
 */

/** What an error answer says, reduced to what classification tables match on. */
export interface ErrorFacts {
  status: number;
  /** True when the body was the provider's own JSON error (not an HTML page from a proxy, not empty). */
  structured: boolean;
  /** The error category: OpenAI/Mistral/Anthropic `error.type`, Google `error.status` ("INVALID_ARGUMENT"). */
  type?: string;
  /** Machine-readable codes: OpenAI `error.code`, Anthropic `error.details.error_code`, Google ErrorInfo reasons. */
  codes: readonly string[];
  /** The human-readable message. Matched by tables, never copied into an outcome (it may quote the key). */
  message?: string;
  /** A relative wait the body states (Google RetryInfo.retryDelay), in ms. */
  statedWaitMs?: number;
}

/** The body as JSON when it is JSON (text, bytes or parsed); undefined for HTML, plain text or nothing. */
export function parseBody(body: unknown): unknown {
  if (body === undefined || body === null) return undefined;
  if (body instanceof Uint8Array) return parseBody(new TextDecoder().decode(body));
  if (typeof body !== "string") return body;
  const text = body.trim();
  if (!text.startsWith("{") && !text.startsWith("[")) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `obj[key]` when it is a record. */
export function recordAt(obj: unknown, key: string): Record<string, unknown> | undefined {
  const value = isRecord(obj) ? obj[key] : undefined;
  return isRecord(value) ? value : undefined;
}

/** `obj[key]` when it is a non-empty string (numbers are turned into strings: some servers send `"code": 400`). */
export function stringAt(obj: unknown, key: string): string | undefined {
  const value = isRecord(obj) ? obj[key] : undefined;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** `obj[key]` when it is an array. */
export function arrayAt(obj: unknown, key: string): readonly unknown[] {
  const value = isRecord(obj) ? obj[key] : undefined;
  return Array.isArray(value) ? value : [];
}

/**
 * Facts from an OpenAI-shaped error body, the shape most providers copy:
 * - OpenAI: `{"error": {"message", "type", "param", "code"}}`
 * - Anthropic: `{"type": "error", "error": {"type", "message", "details"?}}` (same `error` object)
 * - Mistral, vLLM: `{"object": "error", "message", "type", "param", "code"}` at the top level
 * - some compatible servers: `{"error": "Unauthorized"}` or FastAPI's `{"detail": "..."}`
 */
export function openAIStyleFacts(status: number, body: unknown): ErrorFacts {
  const parsed = parseBody(body);
  const error = recordAt(parsed, "error");
  if (error) {
    const code = stringAt(error, "code");
    return compact({
      status,
      structured: true,
      type: stringAt(error, "type"),
      codes: code === undefined ? [] : [code],
      message: stringAt(error, "message"),
    });
  }
  if (isRecord(parsed) && (parsed["object"] === "error" || stringAt(parsed, "type") !== undefined)) {
    const code = stringAt(parsed, "code");
    return compact({
      status,
      structured: true,
      type: stringAt(parsed, "type"),
      codes: code === undefined ? [] : [code],
      message: stringAt(parsed, "message"),
    });
  }
  const text = stringAt(parsed, "error") ?? stringAt(parsed, "detail") ?? stringAt(parsed, "message");
  return compact({ status, structured: text !== undefined, codes: [], message: text });
}

/** Drops undefined fields, so facts print and compare cleanly. */
export function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
