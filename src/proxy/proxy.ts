/**
 * src/proxy — `ALL /proxy/{namespace}/{pool}/{path}`: forwards a call to the pool's provider with
 * a key the caller never sees. The caller authenticates with its ServiceAccount token wherever its
 * SDK puts the API key; the proxy picks a key by the pool's strategy, injects it, and on a
 * retryable answer (429, 5xx, 529, a refused key, a network error) reports it and tries another
 * key, as long as nothing has been sent to the caller. Answers stream through with backpressure;
 * token usage and rate-limit headers update the key, and each report carries the call's model
 * and tokens by kind (input, cached input, output) for its price.
 * May import: src/api, src/pool, src/providers, src/server (errors, names, dispensing: the server
 * never imports this folder; run-common.ts mounts the handler), src/log.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Dispatcher } from "undici";
import { Agent } from "undici";
import { type PoolRef, type PoolRegistry, type PoolRuntime, refKey } from "../pool/registry.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import type { CallUsage, Outcome } from "../pool/outcome.ts";
import { classifyNetworkError, getProvider, providerUrl } from "../providers/index.ts";
import type { Classification, ProviderName } from "../providers/types.ts";
import type { SessionAffinity } from "../server/affinity.ts";
import { type Authorizer, refusal } from "../server/authorizer.ts";
import { type DispenseResult, dispense } from "../server/dispense.ts";
import { KeyPoolError, writeError } from "../server/errors.ts";
import { nameSegment } from "../server/names.ts";
import { parseDuration } from "../api/duration.ts";
import { type BodyLimits, type ProxyBody, readProxyBody } from "./body.ts";
import { ModelScanner, requestModel } from "./model.ts";
import { providerErrorBody } from "./errors.ts";
import { copyBody } from "./copy-body.ts";
import { confinedPath, isWithinBase } from "./path.ts";
import { callerCredential, downstreamHeaders, resetDuration, upstreamHeaders } from "./headers.ts";
import type { ProxyMetrics } from "./metrics.ts";
import { type UpstreamAnswer, callUpstream } from "./upstream.ts";
import { UsageMeter } from "./usage.ts";
import { type KeyCoordinator, localCoordinator } from "../state/coordinator.ts";

export interface ProxyOptions {
  registry: PoolRegistry;
  auth: Authorizer;
  logger: Logger;
  clock: Clock;
  affinity: SessionAffinity;
  metrics?: ProxyMetrics;
  limits: BodyLimits;
  /** Upper bound of a caller's x-keypool-max-wait. */
  maxWaitLimitMs: number;
  /** How long a streaming answer may pause between chunks before the attempt counts as failed. */
  bodyTimeoutMs?: number;
  /** Connection pool to the providers (tests and benchmarks may pass their own). */
  dispatcher?: Dispatcher;
  /** The state store's side of picks and reports (default: the memory store). */
  coordinator?: KeyCoordinator | undefined;
}

/**
 * How long a streaming answer may pause between chunks when ProxyOptions.bodyTimeoutMs is not
 * given: long enough for a model thinking before its next token; not a flag or a spec field.
 */
const BODY_TIMEOUT_MS = 300_000;
/** The largest provider error body read to classify it; larger ones pass through unread. */
const MAX_ERROR_BODY = 1024 * 1024;
const PROXY_PATH_RE = /^\/proxy\/([^/?]+)\/([^/?]+)(\/[^?]*)?(?:\?(.*))?$/;

/** One attempt's answer when it is not passed through yet: an error the proxy may retry. */
interface HeldAnswer {
  /** The pool whose key got it. */
  runtime: PoolRuntime;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Everything one proxied call carries from step to step. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  ref: PoolRef;
  /** The requested pool, when it exists (fallback pools must match its provider). */
  pool: PoolRuntime | undefined;
  path: string;
  query: URLSearchParams;
  caller: string;
  startedAt: number;
  attempts: number;
  tried: Set<string>;
  upstreamMs: number;
  /** The latest attempt's time from sending to the provider's response headers (its latency). */
  headersMs: number;
  waitedMs: number;
  abort: AbortController;
  keyIds: string[];
  body: ProxyBody;
  /** The request's model once looked for (model.ts); null: it names none. */
  model: string | null | undefined;
  /** Reads the model of a streamed body as it is sent. */
  scanner: ModelScanner | undefined;
}

const NO_BODY: ProxyBody = { kind: "none" };

export function createProxy(options: ProxyOptions) {
  const log = options.logger.child({ component: "proxy" });
  const dispatcher =
    options.dispatcher ??
    new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: 256, pipelining: 1 });
  const bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  const metrics = options.metrics;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const abort = new AbortController();
    // The caller went away before the answer ended: stop the provider call too.
    res.once("close", () => {
      if (!res.writableFinished) abort.abort(new KeyPoolError("internal", "the caller disconnected"));
    });
    const call: Call = {
      req,
      res,
      ref: { namespace: "", name: "" },
      pool: undefined,
      path: "",
      query: new URLSearchParams(),
      caller: "",
      startedAt: performance.now(),
      attempts: 0,
      tried: new Set(),
      upstreamMs: 0,
      headersMs: 0,
      waitedMs: 0,
      abort,
      keyIds: [],
      body: NO_BODY,
      model: undefined,
      scanner: undefined,
    };
    try {
      const { ref, path, query } = parseProxyPath(req.url);
      call.ref = ref;
      call.path = path;
      call.query = query;
      const pool = options.registry.get(ref);
      call.pool = pool;
      const credential = callerCredential(req.headers, query);
      query.delete("key");
      const decision = await options.auth.check(credential.token, "use", ref.namespace, ref.name);
      if (!decision.ok) {
        const how =
          decision.code === "unauthenticated"
            ? " (send your ServiceAccount token where your SDK sends its API key: Authorization: Bearer, x-api-key or x-goog-api-key)"
            : "";
        throw refusal(decision, how);
      }
      call.caller = decision.caller.username;
      if (!pool) throw new KeyPoolError("pool_not_found", `KeyPool ${ref.namespace}/${ref.name} not found`);
      const body = await readProxyBody(req, options.limits);
      call.body = body;
      await forward(call, pool, body);
    } catch (err) {
      if (abort.signal.aborted) {
        finish(call, "client_aborted", 499);
        return;
      }
      const error = asError(err, log);
      // Answering before the request body was read (too large, refused): the connection cannot
      // be reused for another request, so say so rather than let the client's next one fail.
      if (!req.complete && !res.headersSent) res.setHeader("Connection", "close");
      writeProxyError(res, call.pool?.spec.provider, error);
      finish(call, error.code === "rate_limited" ? "rate_limited" : rejectedOutcome(error), error.status);
    }
  };

  /** The attempt loop: pick a key, call, fail over while nothing reached the caller. */
  async function forward(call: Call, first: PoolRuntime, body: ProxyBody): Promise<void> {
    const { maxAttempts } = first.engine.config.proxy;
    const waitUntil = call.startedAt + maxWaitMs(call.req, first, options.maxWaitLimitMs);
    const session = headerText(call.req.headers["x-keypool-session"])?.slice(0, 256);
    let held: HeldAnswer | undefined;
    let lastNetworkError: Classification | undefined;

    while (call.attempts < maxAttempts) {
      let picked: DispenseResult;
      try {
        picked = await dispense(options.registry, options.affinity, options.clock, call.ref, {
          session,
          exclude: call.tried,
          accept: (runtime) => runtime.spec.provider === first.spec.provider,
          coordinator: options.coordinator,
        });
      } catch (err) {
        if (!(err instanceof KeyPoolError) || err.code !== "no_usable_key") throw err;
        const retryAt = err.retryAtMs;
        const now = options.clock.now();
        const waitStart = performance.now();
        if (retryAt !== undefined && waitStart + (retryAt - now) <= waitUntil) {
          // A key becomes usable within maxWait: wait for it rather than fail. Keys that cooled
          // down are fresh again, so the ones this call tried may be tried once more.
          await sleep(Math.max(1, retryAt - now + 5), undefined, { signal: call.abort.signal });
          const waited = performance.now() - waitStart;
          call.waitedMs += waited;
          metrics?.waitSeconds.observe(labels(call.ref), waited / 1000);
          call.tried.clear();
          continue;
        }
        if (held) return passThroughHeld(call, held, "exhausted");
        if (lastNetworkError) throw networkFailure(lastNetworkError);
        if (retryAt === undefined) throw err; // no key will come back by time: 503 no_usable_key
        const seconds = Math.max(1, Math.ceil((retryAt - now) / 1000));
        throw new KeyPoolError(
          "rate_limited",
          `Every key of KeyPool ${call.ref.namespace}/${call.ref.name} is cooling down; the first is usable again in ${seconds} s`,
          { retryAfterSeconds: seconds },
        );
      }

      const runtime = picked.runtime;
      const profile = getProvider(runtime.spec.provider);
      call.attempts++;
      call.tried.add(picked.keyId);
      call.keyIds.push(picked.keyId);
      if (call.attempts > 1) metrics?.failovers.inc(labels(call.ref));
      const replayable = body.kind !== "streamed";
      const base = runtime.spec.baseURL ?? profile.defaultBaseURL;
      const url = providerUrl(base, queryPath(call));
      if (!isWithinBase(url, base)) {
        reportTo(call, runtime, picked, { kind: "requestError", reason: "invalid_path" });
        throw new KeyPoolError("invalid_path", "The proxied path would leave the pool's base URL");
      }
      // A streamed body is sent once: its model is read as it goes (a held one's when needed).
      if (body.kind === "streamed") call.scanner = new ModelScanner();
      const sentAt = performance.now();
      let answer: UpstreamAnswer;
      try {
        answer = await callUpstream(dispatcher, {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: call.req.method as Dispatcher.HttpMethod,
          headers: upstreamHeaders(
            call.req.headers,
            profile.authHeaders(picked.key),
            body.kind === "buffered" ? body.bytes.length : body.kind === "streamed" ? body.length : undefined,
          ),
          body:
            body.kind === "buffered"
              ? body.bytes
              : body.kind === "streamed"
                ? Readable.from(body.take(call.scanner), { objectMode: false })
                : null,
          signal: call.abort.signal,
          headersTimeout: runtime.engine.config.proxy.timeoutMs,
          bodyTimeout: bodyTimeoutMs,
        });
      } catch (err) {
        call.upstreamMs += performance.now() - sentAt;
        if (call.abort.signal.aborted) {
          reportTo(call, runtime, picked, { kind: "requestError", reason: "client_aborted" });
          throw err;
        }
        const ownError = keyPoolErrorIn(err);
        if (ownError) {
          // The request body broke the limit while streaming: the request's fault, not the key's.
          reportTo(call, runtime, picked, { kind: "requestError", reason: "body_too_large" });
          throw ownError;
        }
        const outcome = classifyNetworkError(err);
        reportTo(call, runtime, picked, outcome);
        metrics?.attempts.inc({ ...labels(call.ref), result: outcome.kind });
        lastNetworkError = outcome;
        held = undefined;
        log.debug({ pool: refKey(call.ref), keyId: picked.keyId, reason: outcome.reason }, "attempt failed");
        if (replayable) continue;
        throw networkFailure(outcome);
      }
      const headersMs = performance.now() - sentAt;
      call.headersMs = headersMs;
      call.upstreamMs += headersMs;
      metrics?.upstreamSeconds.observe(labels(call.ref), headersMs / 1000);

      if (answer.statusCode < 400) return streamThrough(call, runtime, picked, answer);
      // An error: read it (bounded) to classify, then retry or pass it on.
      const errorBody = await readBounded(answer.body, MAX_ERROR_BODY);
      const classification = profile.classify(
        { status: answer.statusCode, headers: answer.headers, body: errorBody.bytes.toString("utf8") },
        options.clock.now(),
      );
      reportTo(call, runtime, picked, { ...outcomeOf(classification), latencyMs: headersMs });
      metrics?.attempts.inc({ ...labels(call.ref), result: classification.kind });
      lastNetworkError = undefined;
      held = { runtime, status: answer.statusCode, headers: answer.headers, body: errorBody.bytes };
      if (!errorBody.complete) {
        // Too large to hold: pass the start and the rest through as it comes.
        return streamThrough(call, runtime, picked, answer, errorBody.bytes, false);
      }
      log.debug(
        {
          pool: refKey(call.ref),
          keyId: picked.keyId,
          status: answer.statusCode,
          kind: classification.kind,
        },
        "attempt answered with an error",
      );
      if (!classification.retryable || !replayable) {
        return passThroughHeld(call, held, classification.retryable ? "exhausted" : "upstream_error");
      }
    }
    if (held) return passThroughHeld(call, held, "exhausted");
    if (lastNetworkError) throw networkFailure(lastNetworkError);
    throw new KeyPoolError("internal", "no attempt was made");
  }

  /** A success (or a non-retryable error too large to hold): headers now, body as it arrives. */
  async function streamThrough(
    call: Call,
    runtime: PoolRuntime,
    picked: DispenseResult,
    answer: UpstreamAnswer,
    prefix?: Buffer,
    success = true,
  ): Promise<void> {
    const { res } = call;
    const meter = new UsageMeter(headerText(answer.headers["content-type"]));
    const classification = getProvider(runtime.spec.provider).classify(
      { status: answer.statusCode, headers: answer.headers },
      options.clock.now(),
    );
    // The key's rate-limit headers count now, so this answer's capacity headers include them.
    if (classification.rateLimit) runtime.engine.noteRateLimit(picked.keyId, classification.rateLimit);
    res.writeHead(answer.statusCode, {
      ...downstreamHeaders(answer.headers),
      ...poolHeaders(call, runtime, picked),
    });
    // The headers leave now only when none of the body is here yet (a stream's next event may be
    // seconds away, and SDKs wait for the headers); otherwise with the first chunk, in one write:
    // a separate write of the headers cost a syscall and a wake-up of the caller on every call.
    if (!prefix && answer.body.readableLength === 0) res.flushHeaders();
    observeAdded(call);
    let last: Buffer | undefined;
    try {
      if (prefix) res.write(prefix);
      // An answer with a length is complete for the caller at its last byte: that byte waits for
      // the report below. A stream without one is complete at its end (res.end()).
      last = await copyBody(
        answer.body,
        res,
        (chunk) => meter.push(chunk),
        success && answer.headers["content-length"] !== undefined,
      );
    } catch (err) {
      // The caller left (abort) or the provider's stream broke: nothing can be retried now.
      answer.body.destroy();
      const aborted = call.abort.signal.aborted;
      const failure: Outcome = aborted
        ? { kind: "requestError", reason: "client_aborted" }
        : classifyNetworkError(err);
      // What the stream said before it broke off (Anthropic's input tokens, say) was billed.
      reportTo(call, runtime, picked, { ...failure, usage: usageOf(call, meter.usage(), true) });
      res.destroy();
      finish(call, aborted ? "client_aborted" : "upstream_unavailable", answer.statusCode);
      return;
    }
    const tokens = meter.tokens();
    if (tokens > 0) metrics?.tokens.inc(labels(call.ref), tokens);
    if (success) {
      const reported = reportTo(call, runtime, picked, {
        ...outcomeOf(classification),
        tokens,
        latencyMs: call.headersMs,
        usage: usageOf(call, meter.usage(), false),
      });
      // With a shared store the answer ends once its report (tokens, cost, a budget it spent) is
      // in the store: a caller's next call, on any replica, is counted after it. The memory
      // store's report is synchronous: nothing waits.
      if (reported) await reported;
      metrics?.attempts.inc({ ...labels(call.ref), result: "success" });
    }
    res.end(last);
    finish(call, success ? "success" : "upstream_error", answer.statusCode);
  }

  /** An error answer the proxy held (to retry it), passed on as the provider wrote it. */
  async function passThroughHeld(call: Call, held: HeldAnswer, outcome: string): Promise<void> {
    const headers = downstreamHeaders(held.headers);
    delete headers["content-length"];
    call.res.writeHead(held.status, {
      ...headers,
      ...poolHeaders(call, held.runtime, undefined),
      "content-length": held.body.length,
    });
    observeAdded(call);
    call.res.end(held.body);
    finish(call, outcome, held.status);
  }

  /** The keypool headers of an answer: which key and pool served, attempts, the pool's capacity. */
  function poolHeaders(
    call: Call,
    runtime: PoolRuntime,
    picked: DispenseResult | undefined,
  ): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = {
      "x-keypool-attempts": String(call.attempts),
      "x-keypool-pool": refKey(runtime.ref),
    };
    const keyId = picked?.keyId ?? call.keyIds.at(-1);
    if (keyId) headers["x-keypool-key-id"] = keyId;
    if (picked && picked.servedBy.name !== call.ref.name)
      headers["x-keypool-fallback-from"] = refKey(call.ref);
    const capacity = runtime.engine.capacity();
    const now = options.clock.now();
    headers["x-keypool-usable-keys"] = String(capacity.usableKeys);
    if (capacity.requests) {
      headers["x-ratelimit-limit-requests"] = String(capacity.requests.limit);
      headers["x-ratelimit-remaining-requests"] = String(capacity.requests.remaining);
      headers["x-ratelimit-reset-requests"] = resetDuration(capacity.requests.roomAtMs - now);
    }
    if (capacity.tokens) {
      headers["x-ratelimit-limit-tokens"] = String(capacity.tokens.limit);
      headers["x-ratelimit-remaining-tokens"] = String(capacity.tokens.remaining);
      headers["x-ratelimit-reset-tokens"] = resetDuration(capacity.tokens.roomAtMs - now);
    }
    return headers;
  }

  /** Reports an attempt's outcome; a failure without usage gets the model with no tokens, when known. */
  /** Reports a call's outcome; a promise (never rejecting) when the coordinator answers later. */
  function reportTo(
    call: Call,
    runtime: PoolRuntime,
    picked: DispenseResult,
    outcome: Outcome,
  ): Promise<void> | undefined {
    if (outcome.usage === undefined && outcome.kind !== "success") {
      const usage = usageOf(call, undefined, true);
      if (usage) outcome = { ...outcome, usage };
    }
    const coordinator = options.coordinator ?? localCoordinator;
    // A shared store's lease end is sent now, before the answer goes out: the caller's next call
    // is reserved after it on the same connection, so its tokens count.
    const reported = coordinator.report(runtime, { leaseId: picked.leaseId }, outcome);
    options.registry.touched(runtime.ref);
    if (!(reported instanceof Promise)) return undefined;
    return reported.then(
      () => undefined,
      (err: unknown) => log.warn({ pool: refKey(runtime.ref), err: (err as Error).message }, "report failed"),
    );
  }

  function observeAdded(call: Call): void {
    const added = performance.now() - call.startedAt - call.upstreamMs - call.waitedMs;
    metrics?.addedSeconds.observe(labels(call.ref), Math.max(0, added) / 1000);
  }

  /** The audit line and the request counter, once per call. */
  function finish(call: Call, outcome: string, status: number): void {
    // Pool labels only for pools that exist: callers choose the path, and must not choose series.
    const pool = call.pool ? labels(call.ref) : { namespace: "", pool: "" };
    metrics?.requests.inc({ ...pool, outcome, status: String(status) });
    log.info(
      {
        audit: "proxy",
        caller: call.caller || undefined,
        pool: refKey(call.ref),
        method: call.req.method,
        path: call.path.slice(0, 200),
        keyIds: call.keyIds,
        attempts: call.attempts,
        status,
        outcome,
        ms: Math.round(performance.now() - call.startedAt),
      },
      "proxied",
    );
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err: (err as Error).message, stack: (err as Error).stack }, "proxy failed");
      if (!res.headersSent) writeProxyError(res, undefined, new KeyPoolError("internal", "Internal error"));
      else res.destroy();
    });
  };
}

function parseProxyPath(url: string | undefined): { ref: PoolRef; path: string; query: URLSearchParams } {
  const match = PROXY_PATH_RE.exec(url ?? "");
  if (!match) {
    throw new KeyPoolError(
      "not_found",
      "Proxy paths are /proxy/{namespace}/{pool}/{provider path}, e.g. /proxy/team-a/openai/v1/chat/completions",
    );
  }
  const ref: PoolRef = { namespace: nameSegment(match[1], "namespace"), name: nameSegment(match[2], "pool") };
  const path = match[3] ?? "";
  if (path === "" || path === "/") {
    throw new KeyPoolError(
      "not_found",
      `Give the provider path after /proxy/${ref.namespace}/${ref.name}/, e.g. /proxy/${ref.namespace}/${ref.name}/v1/chat/completions`,
    );
  }
  return { ref, path: confinedPath(path), query: new URLSearchParams(match[4] ?? "") };
}

const labels = (ref: PoolRef) => ({ namespace: ref.namespace, pool: ref.name });

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function queryPath(call: Call): string {
  const q = call.query.toString();
  return q ? `${call.path}?${q}` : call.path;
}

/** spec.proxy.maxWait, or the caller's x-keypool-max-wait ("2.5" seconds or "500ms"), capped. */
function maxWaitMs(req: IncomingMessage, runtime: PoolRuntime, limitMs: number): number {
  const header = headerText(req.headers["x-keypool-max-wait"]);
  let ms = runtime.engine.config.proxy.maxWaitMs;
  if (header !== undefined) {
    const asSeconds = Number(header);
    const parsed = Number.isFinite(asSeconds) ? asSeconds * 1000 : parseDuration(header.trim());
    if (parsed === undefined || parsed < 0) {
      throw new KeyPoolError(
        "invalid_request",
        `x-keypool-max-wait must be seconds ("2.5") or a duration ("500ms", "10s"), got "${header.slice(0, 32)}"`,
      );
    }
    ms = parsed;
  }
  return Math.min(ms, limitMs);
}

/** A KeyPoolError thrown by our own request-body stream, as undici hands it back (maybe as a cause). */
function keyPoolErrorIn(err: unknown): KeyPoolError | undefined {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof KeyPoolError) return e;
  }
  return undefined;
}

/**
 * The request's model (model.ts), looked for once: in the path, or in the body when it was held
 * in memory; a streamed body's as far as it has been sent.
 */
function modelOf(call: Call): string | undefined {
  if (call.model === undefined) {
    const provider = call.pool?.spec.provider;
    const model = provider ? requestModel(provider, call.path, call.body) : undefined;
    if (model === undefined && call.scanner) return call.scanner.model;
    call.model = model ?? null;
  }
  return call.model ?? undefined;
}

/**
 * An outcome's usage: the model and the answer's tokens by kind. Without counts from the answer,
 * a failure cost no tokens (0 of each); a success's counts are unknown (left out: a stream
 * without include_usage, say). Undefined when nothing is known.
 */
function usageOf(
  call: Call,
  kinds: Omit<CallUsage, "model"> | undefined,
  failed: boolean,
): CallUsage | undefined {
  const model = modelOf(call);
  if (kinds) return model === undefined ? kinds : { model, ...kinds };
  if (model === undefined) return undefined;
  return failed ? { model, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 } : { model };
}

function outcomeOf(c: Classification): Outcome {
  const { retryable: _retryable, ...outcome } = c;
  return outcome;
}

function networkFailure(c: Classification): KeyPoolError {
  return c.reason === "timeout"
    ? new KeyPoolError("upstream_timeout", "The provider did not answer in time on any attempt")
    : new KeyPoolError(
        "upstream_unavailable",
        `The provider could not be reached (${c.reason ?? "network error"})`,
      );
}

function rejectedOutcome(error: KeyPoolError): string {
  if (
    error.code === "no_usable_key" ||
    error.code === "upstream_unavailable" ||
    error.code === "upstream_timeout"
  )
    return error.code;
  return "rejected";
}

function asError(err: unknown, log: Logger): KeyPoolError {
  if (err instanceof KeyPoolError) return err;
  log.error({ err: (err as Error).message, stack: (err as Error).stack }, "proxy request failed");
  return new KeyPoolError("internal", "Internal error; it has been logged");
}

/** Up to `max` bytes of a body; `complete` is false when there was more (the rest is unread). */
async function readBounded(body: Readable, max: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { bytes: Buffer.concat(chunks, size), complete: true };
    chunks.push(next.value);
    size += next.value.length;
    if (size > max) return { bytes: Buffer.concat(chunks, size), complete: false };
  }
}

/** A proxy error as the caller's SDK expects it: the provider's shape, status and Retry-After. */
export function writeProxyError(
  res: ServerResponse,
  provider: ProviderName | undefined,
  error: KeyPoolError,
): void {
  writeError(res, error, providerErrorBody(provider, error), {
    "x-keypool-error": error.code,
    ...(error.retryAfterSeconds !== undefined
      ? { "retry-after-ms": String(error.retryAfterSeconds * 1000) }
      : {}),
  });
}
