/**
 * The shared core of the fake providers: a node:http server that records every request, finds the
 * route, applies the key's scripted behaviour and hands the exchange to the provider's dialect.
 * Streams are written piece by piece with a pause between pieces, wait for `drain` when the socket
 * is full, and stop as soon as the client goes away.
 */
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { PromptCache } from "./cache.ts";
import { type Failure, KeyBook, type Usage } from "./keys.ts";
import type { FakeOptions, FakeProvider, FakeProviderName, KeyBehaviour, RecordedRequest } from "./types.ts";

/** A complete (non-streamed) answer: status, extra headers and a JSON body. */
export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

/** What a dialect may look at to find the key. */
export interface RequestHead {
  method: string;
  pathname: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

/** What a dialect may look at to shape an answer. */
export interface RequestInfo extends RequestHead {
  /** The parsed JSON body; undefined when there was none or it did not parse. */
  body: unknown;
}

export interface RouteContext extends RequestInfo {
  key: string;
  /** The route's path pattern matched against the pathname (groups are path parameters). */
  match: RegExpExecArray;
  /** Counts this answer's request and tokens against the key's one-minute window. */
  consume(inputTokens: number, outputTokens: number): Usage;
  exchange: Exchange;
  /** This server's prompt cache (cache.ts): which long prompts were sent before. */
  promptCache: PromptCache;
}

export interface Route {
  method: "GET" | "POST";
  path: RegExp;
  /** The route needs a JSON body; one that does not parse gets the provider's malformed-JSON answer. */
  jsonBody: boolean;
  handle(ctx: RouteContext): Promise<void> | void;
}

/** Everything provider-specific: routes, where the key is, and the provider's error answers. */
export interface Dialect {
  name: FakeProviderName;
  routes: readonly Route[];
  /** Content type of the provider's JSON answers. */
  jsonContentType: string;
  /** The key a request authenticates with, from the provider's own auth header (undefined if none). */
  keyOf(head: RequestHead): string | undefined;
  /** Headers every answer carries (request ids, server names). */
  baseHeaders(): Record<string, string>;
  missingKey(info: RequestInfo): Answer;
  /** A check made once the key is known, before its behaviour applies (Anthropic's anthropic-version). */
  precheck?(info: RequestInfo): Answer | undefined;
  failure(failure: Failure, info: RequestInfo): Answer;
  notFound(info: RequestInfo): Answer;
  malformedJson(info: RequestInfo, raw: string): Answer;
  /** A last touch on every error answer (Gemini wraps the errors of JSON-array streams in an array). */
  shapeError?(info: RequestInfo, answer: Answer): Answer;
}

/** One request's response side: JSON answers, waits and streams that all stop once the client is gone. */
export class Exchange {
  readonly #res: ServerResponse;
  readonly #signal: AbortSignal;
  readonly #baseHeaders: Record<string, string>;
  readonly #jsonContentType: string;
  /** The key's scripted pause between stream pieces, when it has one (behaviour "slow"). */
  chunkGapMs: number | undefined;

  constructor(
    res: ServerResponse,
    signal: AbortSignal,
    baseHeaders: Record<string, string>,
    jsonType: string,
  ) {
    this.#res = res;
    this.#signal = signal;
    this.#baseHeaders = baseHeaders;
    this.#jsonContentType = jsonType;
  }

  /** True once the client went away (or the fake is closing). */
  get gone(): boolean {
    return this.#signal.aborted;
  }

  json(answer: Answer): void {
    if (this.gone || this.#res.headersSent) return;
    const text = JSON.stringify(answer.body);
    this.#res.writeHead(answer.status, {
      ...this.#baseHeaders,
      "content-type": this.#jsonContentType,
      ...answer.headers,
      "content-length": String(Buffer.byteLength(text)),
    });
    this.#res.end(text);
  }

  /** Waits `ms`; false when the client went away meanwhile. */
  async wait(ms: number): Promise<boolean> {
    if (ms <= 0) return !this.gone;
    try {
      await sleep(ms, undefined, { signal: this.#signal });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Streams `frames` `gapMs` apart: headers first (flushed at once, as providers do), then each
   * frame in its own write, waiting for `drain` when the socket buffer is full. Frame i is due
   * i * gapMs after the first, not gapMs after the one before: a timer that fires late delays
   * its own frame only, so a stream's length does not drift with the machine's load (bench/proxy
   * compares the ends of streams, direct and proxied, to a fraction of a millisecond).
   */
  async stream(status: number, headers: Record<string, string>, frames: Iterable<string>, gapMs: number) {
    if (this.gone) return;
    this.#res.writeHead(status, { ...this.#baseHeaders, ...headers });
    this.#res.flushHeaders();
    const gap = this.chunkGapMs ?? gapMs;
    const start = performance.now();
    let index = 0;
    for (const frame of frames) {
      if (index > 0 && !(await this.wait(start + index * gap - performance.now()))) return;
      index++;
      if (this.gone) return;
      if (!this.#res.write(frame)) {
        try {
          await once(this.#res, "drain", { signal: this.#signal });
        } catch {
          return;
        }
      }
    }
    if (!this.gone) this.#res.end();
  }
}

async function readBody(req: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch {
    return { ok: false };
  }
}

/** The path as received, minus a `key` query parameter (the key is recorded on its own). */
function recordedPath(rawUrl: string, url: URL): string {
  if (!url.searchParams.has("key")) return rawUrl;
  const query = new URLSearchParams(url.searchParams);
  query.delete("key");
  return query.size > 0 ? `${url.pathname}?${query.toString()}` : url.pathname;
}

/** The route for this method and path (an unknown path or a wrong method gets the provider's 404). */
function findRoute(
  routes: readonly Route[],
  info: RequestHead,
): { route: Route; match: RegExpExecArray } | undefined {
  for (const route of routes) {
    if (route.method !== info.method) continue;
    const match = route.path.exec(info.pathname);
    if (match) return { route, match };
  }
  return undefined;
}

/** One request, once recorded: read the body, route, check the key, apply its behaviour, answer. */
async function serve(ctx: {
  dialect: Dialect;
  book: KeyBook;
  promptCache: PromptCache;
  head: RequestHead;
  key: string | undefined;
  req: AsyncIterable<Buffer>;
  record: RecordedRequest;
  exchange: Exchange;
}): Promise<void> {
  const { dialect, book, promptCache, head, key, record, exchange } = ctx;
  let raw: string;
  try {
    raw = await readBody(ctx.req);
  } catch {
    return; // the client went away while sending its body
  }
  const parsed = raw === "" ? undefined : parseJson(raw);
  record.body = parsed === undefined ? undefined : parsed.ok ? parsed.value : raw;
  const body = parsed?.ok === true ? parsed.value : undefined;
  const info: RequestInfo = { ...head, body };
  const fail = (answer: Answer) => exchange.json(dialect.shapeError?.(info, answer) ?? answer);

  const found = findRoute(dialect.routes, info);
  if (!found) return fail(dialect.notFound(info));
  if (key === undefined) return fail(dialect.missingKey(info));
  const refused = dialect.precheck?.(info);
  if (refused) return fail(refused);
  const decision = book.decide(key);
  if (decision.kind !== "valid") return fail(dialect.failure(decision, info));
  if (found.route.jsonBody && (typeof body !== "object" || body === null))
    return fail(dialect.malformedJson(info, raw));
  exchange.chunkGapMs = decision.chunkGapMs;
  if (!(await exchange.wait(decision.delayMs))) return;
  await found.route.handle({
    ...info,
    key,
    match: found.match,
    consume: (input, output) => book.consume(key, input, output),
    exchange,
    promptCache,
  });
}

/** The path routes see: below `basePath` when there is one; outside it, a path no route has. */
function routedPath(pathname: string, basePath: string | undefined): string {
  if (!basePath) return pathname;
  return pathname.startsWith(`${basePath}/`) ? pathname.slice(basePath.length) : `/outside-base${pathname}`;
}

/** The host part of the fake's URL: loopback for the wildcard addresses, brackets around IPv6. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** Starts a fake speaking `dialect` on 127.0.0.1 and a free port (or `options.host` and `options.port`). */
export async function startServer(
  dialect: Dialect,
  keys: Record<string, KeyBehaviour> = {},
  options: FakeOptions = {},
): Promise<FakeProvider> {
  const book = new KeyBook(Date.now, options.limitScale ?? 1);
  for (const [key, behaviour] of Object.entries(keys)) book.set(key, behaviour);
  const promptCache = new PromptCache();
  const requests: RecordedRequest[] = [];
  const closing = new AbortController();

  const server = createServer((req, res) => {
    const rawUrl = req.url ?? "/";
    const url = new URL(rawUrl, "http://127.0.0.1");
    const head: RequestHead = {
      method: req.method ?? "GET",
      pathname: routedPath(url.pathname, options.basePath),
      query: url.searchParams,
      headers: req.headers,
    };
    const key = dialect.keyOf(head);
    const record: RecordedRequest = {
      method: head.method,
      path: recordedPath(rawUrl, url),
      key,
      headers: { ...req.headers },
      body: undefined,
      aborted: false,
      at: Date.now(),
    };
    if (options.record !== false) requests.push(record);
    const clientGone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) record.aborted = true;
      clientGone.abort();
    });
    const signal = AbortSignal.any([closing.signal, clientGone.signal]);
    const exchange = new Exchange(res, signal, dialect.baseHeaders(), dialect.jsonContentType);

    void serve({ dialect, book, promptCache, head, key, req, record, exchange }).catch((err: unknown) => {
      // A bug in the fake itself: answer 500 so the test sees it rather than hanging.
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`fake ${dialect.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  });

  const host = options.host ?? "127.0.0.1";
  server.listen(options.port ?? 0, host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    name: dialect.name,
    url: `http://${urlHost(host)}:${port}${options.basePath ?? ""}`,
    setKey: (key, behaviour) => book.set(key, behaviour),
    requests,
    reset: () => {
      requests.length = 0;
    },
    close: async () => {
      closing.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
