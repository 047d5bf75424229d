/**
 * One attempt at a delivery: a POST with a timeout, and what its answer means for the next step
 * (done, retry, give up). Nothing here waits between attempts or counts them: notifier.ts does.
 */
import { isRetryableStatus, retryAfterMs } from "./retry.ts";

/** setTimeout and clearTimeout, injected so tests drive time; the globals by default. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const GLOBAL_TIMERS: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export type AttemptResult =
  /** The receiver answered 2xx. */
  | { kind: "delivered"; status: number }
  /** Worth another attempt: a network error, a timeout, 408, 429 or 5xx. */
  | { kind: "retry"; status?: number; retryAfterMs?: number; error: string }
  /** A permanent refusal. */
  | { kind: "failed"; status: number; error: string }
  /** Cut short by `signal` (its webhook removed, or the notifier closed). */
  | { kind: "stopped" };

export interface AttemptInput {
  fetch: typeof globalThis.fetch;
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  timers: Timers;
  /** Aborts the attempt from outside. */
  signal: AbortSignal;
  /** Epoch milliseconds, for a Retry-After given as a date. */
  nowMs: number;
}

/** The start of an answer's body goes into the log line of a failure (Slack says "no_service", "invalid_token"). */
const SNIPPET_BYTES = 512;
const SNIPPET_CHARS = 200;

const TIMED_OUT = Symbol("timed out");

export async function attemptDelivery(input: AttemptInput): Promise<AttemptResult> {
  if (input.signal.aborted) return { kind: "stopped" };
  const controller = new AbortController();
  const timer = input.timers.setTimeout(() => controller.abort(TIMED_OUT), input.timeoutMs);
  const stop = () => controller.abort(input.signal.reason);
  input.signal.addEventListener("abort", stop, { once: true });
  try {
    const res = await input.fetch(input.url, {
      method: "POST",
      headers: input.headers,
      body: input.body,
      // A redirect is not followed: the signed body goes only where the KeyPool says.
      redirect: "manual",
      signal: controller.signal,
    });
    const snippet = await readSnippet(res);
    if (res.status >= 200 && res.status <= 299) return { kind: "delivered", status: res.status };
    const error = `HTTP ${res.status}${snippet ? `: ${snippet}` : ""}`;
    if (!isRetryableStatus(res.status)) return { kind: "failed", status: res.status, error };
    const after = retryAfterMs(res.headers.get("retry-after"), input.nowMs);
    return {
      kind: "retry",
      status: res.status,
      error,
      ...(after === undefined ? {} : { retryAfterMs: after }),
    };
  } catch (err) {
    if (input.signal.aborted) return { kind: "stopped" };
    if (controller.signal.reason === TIMED_OUT) {
      return { kind: "retry", error: `no answer within ${input.timeoutMs} ms` };
    }
    return { kind: "retry", error: describeNetworkError(err) };
  } finally {
    input.timers.clearTimeout(timer);
    input.signal.removeEventListener("abort", stop);
  }
}

/**
 * The first bytes of the answer's body, on one line; the rest is not read. A body that fails
 * half way (the timeout) gives what came: the status already says how the attempt went.
 */
async function readSnippet(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < SNIPPET_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
    if (size >= SNIPPET_BYTES) await reader.cancel();
  } catch {
    // Aborted or reset mid-body: keep what came.
  }
  const text = Buffer.concat(chunks).subarray(0, SNIPPET_BYTES).toString("utf8");
  return text.replace(/\s+/g, " ").trim().slice(0, SNIPPET_CHARS);
}

/**
 * "network error (ECONNREFUSED)": the code of the failure, not its message. undici's messages
 * can carry the address it was connecting to, and a webhook's URL may be a secret.
 */
function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; name?: unknown } } | undefined)?.cause;
  const code = cause?.code ?? (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string") return `network error (${code})`;
  const name = cause?.name ?? (err as { name?: unknown } | undefined)?.name;
  return `network error (${typeof name === "string" ? name : "unknown"})`;
}
