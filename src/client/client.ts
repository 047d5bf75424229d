/**
 * KeyPoolClient: the dispensing API for services that call a provider themselves. `getKey` takes
 * a key (waiting out `no_usable_key` when its Retry-After fits in `maxWaitMs`), `report` says how
 * the call went, and `withKey` is the loop services otherwise write by hand: take a key, run the
 * call, report what it answered, and on a 429/5xx/refused key/network error move to a key this
 * call has not tried yet.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isRecord, KeyPoolClientError } from "./errors.ts";
import {
  type HttpResult,
  isRetryableStatus,
  type Outcome,
  type ReportFields,
  reportOfAnswer,
  type ResponseLike,
  type Verdict,
  verdictOfError,
  verdictOfValue,
} from "./outcome.ts";
import { call, type TokenSource, type TransportOptions } from "./transport.ts";

/** Where the kubelet mounts the projected ServiceAccount token of audience keypool (examples/client.yaml). */
export const PROJECTED_TOKEN_FILE = "/var/run/secrets/keypool/token";

/** Every default, in one place (the README's table lists these). */
export const CLIENT_DEFAULTS = {
  /** Namespace of a pool given by name alone ("gpt-4"): keypool serve's pools live there. */
  namespace: "default",
  /** Per call to the KeyPool server (not to the provider). */
  timeoutMs: 10_000,
  /** withKey: keys tried per call, the first included. */
  maxAttempts: 3,
  /** How long getKey/withKey wait for a key when the pool has none usable: 0, fail at once. */
  maxWaitMs: 0,
} as const;

export interface PoolRef {
  namespace: string;
  name: string;
}

/** A pool: "namespace/name", a name alone (in the client's `namespace`), or a PoolRef. */
export type PoolInput = string | PoolRef;

export interface KeyPoolClientOptions {
  /** The KeyPool server, e.g. http://keypool-operator.keypool-system.svc:8769 or http://127.0.0.1:8769. */
  baseURL: string;
  /** A fixed bearer token (keypool serve --auth tokens). */
  token?: string;
  /** A file holding the bearer token, read on every call (the kubelet rotates it): PROJECTED_TOKEN_FILE in a pod. */
  tokenFile?: string;
  /** Namespace of pools given by name alone. */
  namespace?: string;
  timeoutMs?: number;
  maxAttempts?: number;
  maxWaitMs?: number;
  /** Which provider statuses withKey retries on another key (default isRetryableStatus: 401, 403, 429, 5xx). */
  retryOn?: (status: number) => boolean;
  /** Called when withKey could not report an outcome (the call's own result is kept); default: ignored. */
  onReportError?: (error: unknown) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

/** A key handed out by the pool. */
export interface Lease {
  /** The provider API key. Never log it. */
  key: string;
  /** Stable id of the key (a hash prefix): safe to log. */
  keyId: string;
  /** Closes when reported; reporting after `expiresAt` falls back to the keyId. */
  leaseId: string;
  expiresAt: Date;
  /** The pool that served it: the one asked for, or a fallback pool (reports go here). */
  pool: PoolRef;
  strategy: string;
  /** The pools tried before, when a fallback pool served. */
  fallbackFrom?: PoolRef[];
}

/** What `report` needs to name the key: a Lease, or a pool with a leaseId or keyId. */
export interface LeaseRef {
  pool: PoolInput;
  leaseId?: string;
  keyId?: string;
}

export interface GetKeyOptions {
  /** Key ids not to hand out (the ones this call already tried). */
  exclude?: Iterable<string>;
  /** Keeps a conversation on one key while it is usable (x-keypool-session). */
  session?: string;
  signal?: AbortSignal;
  /** Overrides the client's maxWaitMs. */
  maxWaitMs?: number;
}

export interface ReportExtra {
  /** Tokens the call used, counted against the key's tokensPerMinute (default: inputTokens + outputTokens). */
  tokens?: number;
  /** The model the call asked for (at most 200 characters): the pool's price list prices it. */
  model?: string;
  /** Input (prompt) tokens, cachedInputTokens included. */
  inputTokens?: number;
  /** Of inputTokens, those read from the provider's prompt cache (at most inputTokens). */
  cachedInputTokens?: number;
  outputTokens?: number;
  latencyMs?: number;
  /** Rest the key at least this long (seconds). */
  retryAfterSeconds?: number;
}

export interface ReportResult {
  keyId: string;
  /** The key's state after the report: "Healthy", "RateLimited", "Invalid", ... */
  state: string;
}

/** What `withKey`'s function gets beside the key. */
export interface Attempt {
  lease: Lease;
  /** 1 for the first key, 2 for the second, ... */
  number: number;
  /** withKey's signal, to pass on to the provider call. */
  signal: AbortSignal | undefined;
}

export interface WithKeyOptions {
  maxAttempts?: number;
  /** Total time withKey may wait for usable keys, over all attempts. */
  maxWaitMs?: number;
  session?: string;
  signal?: AbortSignal;
  retryOn?: (status: number) => boolean;
  /**
   * The model the call asks for, reported with every attempt to price it. Default: the model a
   * successful answer names (OpenAI and Anthropic name a dated snapshot, e.g. "gpt-4o-2024-08-06"
   * for "gpt-4o", which a price list may not know).
   */
  model?: string;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a number >= 0`);
  return value;
}

export class KeyPoolClient {
  readonly #transport: TransportOptions;
  readonly #namespace: string;
  readonly #maxAttempts: number;
  readonly #maxWaitMs: number;
  readonly #retryOn: (status: number) => boolean;
  readonly #onReportError: (error: unknown) => void;

  constructor(options: KeyPoolClientOptions) {
    const url = new URL(options.baseURL); // throws on a malformed URL
    if (options.token !== undefined && options.tokenFile !== undefined)
      throw new TypeError("Give token or tokenFile, not both");
    const token: TokenSource =
      options.tokenFile !== undefined
        ? { kind: "file", path: options.tokenFile }
        : options.token !== undefined
          ? { kind: "static", token: options.token }
          : { kind: "none" };
    this.#transport = {
      baseURL: url.href.replace(/\/+$/, ""),
      token,
      timeoutMs: positiveInteger(options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs, "timeoutMs"),
      fetch: options.fetch ?? globalThis.fetch,
    };
    this.#namespace = options.namespace ?? CLIENT_DEFAULTS.namespace;
    this.#maxAttempts = positiveInteger(options.maxAttempts ?? CLIENT_DEFAULTS.maxAttempts, "maxAttempts");
    this.#maxWaitMs = nonNegative(options.maxWaitMs ?? CLIENT_DEFAULTS.maxWaitMs, "maxWaitMs");
    this.#retryOn = options.retryOn ?? isRetryableStatus;
    this.#onReportError = options.onReportError ?? (() => undefined);
  }

  /** "ns/name", "name" or {namespace, name} as a PoolRef. */
  poolRef(pool: PoolInput): PoolRef {
    if (typeof pool !== "string") return { namespace: pool.namespace, name: pool.name };
    const parts = pool.split("/");
    const ref =
      parts.length === 1
        ? { namespace: this.#namespace, name: parts[0] ?? "" }
        : { namespace: parts[0] ?? "", name: parts[1] ?? "" };
    if (parts.length > 2 || !ref.namespace || !ref.name)
      throw new KeyPoolClientError(
        "invalid_request",
        `Pool "${pool.slice(0, 64)}": give "namespace/name" or "name"`,
      );
    return ref;
  }

  /**
   * A key of `pool`, by the pool's strategy. When no key is usable (`no_usable_key`) and its
   * Retry-After fits in maxWaitMs, waits that long and asks again.
   */
  async getKey(pool: PoolInput, options: GetKeyOptions = {}): Promise<Lease> {
    const ref = this.poolRef(pool);
    const deadline = performance.now() + nonNegative(options.maxWaitMs ?? this.#maxWaitMs, "maxWaitMs");
    for (;;) {
      try {
        return await this.#dispense(ref, options);
      } catch (err) {
        const waitMs = waitBeforeRetry(err, deadline);
        if (waitMs === undefined) throw err;
        await abortableSleep(waitMs, options.signal);
      }
    }
  }

  async #dispense(ref: PoolRef, options: GetKeyOptions): Promise<Lease> {
    const exclude = [...(options.exclude ?? [])];
    const query = exclude.length ? `?${new URLSearchParams({ exclude: exclude.join(",") }).toString()}` : "";
    const answer = await call(this.#transport, {
      method: "GET",
      path: `${poolPath(ref)}/key${query}`,
      ...(options.session === undefined ? {} : { headers: { "x-keypool-session": options.session } }),
      signal: options.signal,
    });
    return leaseOf(answer);
  }

  /**
   * Says how a call with a leased key went: an outcome ("rateLimited", ...), or the provider's
   * HTTP answer (`{statusCode, headers, body}` or a fetch Response), which the server classifies
   * as the pool's provider documents it. Only rate-limit headers are sent, never auth headers.
   */
  async report(
    lease: LeaseRef,
    result: Outcome | HttpResult | ResponseLike,
    extra: ReportExtra = {},
  ): Promise<ReportResult> {
    const fields: ReportFields =
      typeof result === "string" ? { outcome: result } : await reportOfAnswer(result);
    return this.#report(lease, fields, extra);
  }

  async #report(lease: LeaseRef, fields: ReportFields, extra: ReportExtra): Promise<ReportResult> {
    const path = `${poolPath(this.poolRef(lease.pool))}/report`;
    const send = async (id: { leaseId: string } | { keyId: string }) =>
      resultOf(await call(this.#transport, { method: "POST", path, body: { ...id, ...fields, ...extra } }));
    if (lease.leaseId === undefined) {
      if (lease.keyId === undefined)
        throw new KeyPoolClientError("invalid_request", "report: give leaseId or keyId");
      return send({ keyId: lease.keyId });
    }
    try {
      return await send({ leaseId: lease.leaseId });
    } catch (err) {
      // The lease expired while the call ran: the outcome still says something about the key.
      if (err instanceof KeyPoolClientError && err.code === "lease_not_found" && lease.keyId !== undefined)
        return send({ keyId: lease.keyId });
      throw err;
    }
  }

  /**
   * Runs `fn` with a key of `pool` and reports how it went: what `fn` returned (a fetch Response
   * or anything with a numeric `status` and `headers` is reported as that HTTP answer; any other
   * value is a success) or what it threw (an error with `status`/`statusCode` and `headers`, as
   * the OpenAI and Anthropic SDKs throw, is reported as that answer; a network error as
   * networkError; anything else as requestError, and rethrown at once). On a retryable answer
   * (see `retryOn`) or a network error it tries a key this call has not tried yet, up to
   * maxAttempts; then it returns the last answer or throws the last error.
   *
   * When no untried key is usable and the Retry-After fits in what is left of maxWaitMs, it waits
   * and starts over with every key (the ones that cooled down are fresh again), as the proxy
   * does; otherwise it ends with the last answer (no_usable_key only when it never got a key).
   */
  async withKey<T>(
    pool: PoolInput,
    fn: (key: string, attempt: Attempt) => Promise<T> | T,
    options: WithKeyOptions = {},
  ): Promise<T> {
    const ref = this.poolRef(pool);
    const maxAttempts = positiveInteger(options.maxAttempts ?? this.#maxAttempts, "maxAttempts");
    const retryOn = options.retryOn ?? this.#retryOn;
    const deadline = performance.now() + nonNegative(options.maxWaitMs ?? this.#maxWaitMs, "maxWaitMs");
    const { signal } = options;
    const tried: string[] = [];
    let last: { value: T } | { error: unknown } | undefined;
    let number = 0;
    while (number < maxAttempts) {
      let lease: Lease;
      try {
        lease = await this.getKey(ref, {
          exclude: tried,
          maxWaitMs: 0,
          ...(options.session === undefined ? {} : { session: options.session }),
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        const waitMs = waitBeforeRetry(err, deadline);
        if (waitMs !== undefined) {
          await abortableSleep(waitMs, signal);
          tried.length = 0;
          continue;
        }
        // No untried key is usable: the caller gets the provider's last answer, as from the proxy.
        if (last && err instanceof KeyPoolClientError && err.code === "no_usable_key") break;
        throw err;
      }
      number++;
      tried.push(lease.keyId);
      if (last && "value" in last) await discardBody(last.value);
      const started = performance.now();
      let verdict: Verdict;
      try {
        const value = await fn(lease.key, { lease, number, signal });
        last = { value };
        verdict = await verdictOfValue(value, retryOn);
      } catch (error) {
        last = { error };
        verdict = verdictOfError(error, retryOn);
      }
      await this.#report(lease, verdict.report, {
        latencyMs: Math.round(performance.now() - started),
        ...(verdict.tokens === undefined ? {} : { tokens: verdict.tokens }),
        ...verdict.usage,
        ...(options.model === undefined ? {} : { model: options.model }),
      }).catch(this.#onReportError);
      if (!verdict.retry || signal?.aborted) break;
    }
    if (last === undefined) throw new KeyPoolClientError("internal", "withKey made no attempt"); // unreachable
    if ("error" in last) throw last.error;
    return last.value;
  }
}

/** How long to wait before asking again for a key, or undefined to give up now. */
function waitBeforeRetry(err: unknown, deadline: number): number | undefined {
  if (!(err instanceof KeyPoolClientError) || err.code !== "no_usable_key") return undefined;
  if (err.retryAfterSeconds === undefined) return undefined;
  const waitMs = Math.max(100, err.retryAfterSeconds * 1000);
  return performance.now() + waitMs <= deadline ? waitMs : undefined;
}

/** Waits `ms`; rejects with the signal's reason when it aborts first. */
async function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    throw signal?.aborted ? signal.reason : err;
  }
}

/** A fetch Response left behind for another key's answer: free its connection. */
async function discardBody(value: unknown): Promise<void> {
  const body = isRecord(value) ? value["body"] : undefined;
  if (isRecord(body) && typeof body["cancel"] === "function" && !(value as { bodyUsed?: boolean }).bodyUsed)
    await (body as unknown as ReadableStream).cancel().catch(() => undefined);
}

function poolPath(ref: PoolRef): string {
  return `/v1/pools/${encodeURIComponent(ref.namespace)}/${encodeURIComponent(ref.name)}`;
}

function invalid(what: string): KeyPoolClientError {
  return new KeyPoolClientError("invalid_response", `The KeyPool server's answer has no valid ${what}`);
}

function refOf(value: unknown, what: string): PoolRef {
  if (!isRecord(value) || typeof value["namespace"] !== "string" || typeof value["name"] !== "string")
    throw invalid(what);
  return { namespace: value["namespace"], name: value["name"] };
}

function leaseOf(answer: unknown): Lease {
  if (!isRecord(answer)) throw invalid("body");
  const { key, keyId, leaseId, expiresAt, strategy, fallbackFrom } = answer;
  if (typeof key !== "string" || !key) throw invalid("key");
  if (typeof keyId !== "string") throw invalid("keyId");
  if (typeof leaseId !== "string") throw invalid("leaseId");
  const expires = typeof expiresAt === "string" ? new Date(expiresAt) : undefined;
  if (!expires || Number.isNaN(expires.getTime())) throw invalid("expiresAt");
  return {
    key,
    keyId,
    leaseId,
    expiresAt: expires,
    pool: refOf(answer["pool"], "pool"),
    strategy: typeof strategy === "string" ? strategy : "",
    ...(Array.isArray(fallbackFrom)
      ? { fallbackFrom: fallbackFrom.map((r) => refOf(r, "fallbackFrom")) }
      : {}),
  };
}

function resultOf(answer: unknown): ReportResult {
  if (!isRecord(answer) || typeof answer["keyId"] !== "string" || typeof answer["state"] !== "string")
    throw invalid("report result");
  return { keyId: answer["keyId"], state: answer["state"] };
}
