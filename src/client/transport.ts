/**
 * One call to the KeyPool server: the bearer token (a fixed one, or the projected token file read
 * again on every call, because the kubelet rotates it), a timeout, the caller's AbortSignal, and
 * the answer as JSON or as a KeyPoolClientError. Nothing here retries.
 */
import { readFile } from "node:fs/promises";
import { errorFromAnswer, KeyPoolClientError } from "./errors.ts";

/** Where the bearer token comes from: nothing (`keypool serve --auth none`), a string, or a file. */
export type TokenSource =
  { kind: "none" } | { kind: "static"; token: string } | { kind: "file"; path: string };

export interface TransportOptions {
  /** http(s)://host:port of the KeyPool server, without a trailing slash. */
  baseURL: string;
  token: TokenSource;
  timeoutMs: number;
  fetch: typeof globalThis.fetch;
}

export interface CallOptions {
  method: "GET" | "POST";
  /** Path and query string, starting with "/". */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

export async function readToken(source: TokenSource): Promise<string | undefined> {
  if (source.kind === "none") return undefined;
  if (source.kind === "static") return source.token;
  let text: string;
  try {
    text = await readFile(source.path, "utf8");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new KeyPoolClientError(
      "token_unavailable",
      `Cannot read the token file ${source.path}${typeof code === "string" ? ` (${code})` : ""}`,
      { cause: err },
    );
  }
  const token = text.trim();
  if (!token) throw new KeyPoolClientError("token_unavailable", `The token file ${source.path} is empty`);
  return token;
}

/** Sends one request and returns its JSON answer; every failure is a KeyPoolClientError (or the caller's abort reason). */
export async function call(options: TransportOptions, request: CallOptions): Promise<unknown> {
  request.signal?.throwIfAborted();
  const token = await readToken(options.token);
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
  const headers: Record<string, string> = { accept: "application/json", ...request.headers };
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
  if (request.body !== undefined) headers["content-type"] = "application/json";
  const what = `${request.method} ${request.path.split("?")[0]}`;
  let text: string;
  let res: Response;
  try {
    res = await options.fetch(`${options.baseURL}${request.path}`, {
      method: request.method,
      headers,
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal,
    });
    text = await res.text();
  } catch (err) {
    if (request.signal?.aborted) throw request.signal.reason;
    if (timeout.aborted)
      throw new KeyPoolClientError("timeout", `${what}: no answer within ${options.timeoutMs} ms`, {
        cause: err,
      });
    throw new KeyPoolClientError("network_error", `${what}: the KeyPool server could not be reached`, {
      cause: err,
    });
  }
  if (!res.ok) throw errorFromAnswer(res.status, text, res.headers.get("retry-after"), Date.now());
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new KeyPoolClientError(
      "invalid_response",
      `${what}: HTTP ${res.status} with a body that is not JSON`,
      {
        status: res.status,
        cause: err,
      },
    );
  }
}
