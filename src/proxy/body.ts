/**
 * The caller's request body, read so that a failed attempt can be retried on another key:
 * bodies up to `retryLimit` are held in memory and sent again as often as needed; larger ones
 * are streamed to the provider once, without retry. Nothing over `maxBytes` is forwarded.
 */
import type { IncomingMessage } from "node:http";
import { KeyPoolError } from "../server/errors.ts";

export type ProxyBody =
  /** No body (GET, HEAD, or an empty POST). */
  | { kind: "none" }
  /** The whole body: every attempt sends it. */
  | { kind: "buffered"; bytes: Buffer }
  /**
   * Too large to hold: one attempt streams it. `take()` gives the stream once; `observer` sees
   * each chunk as it is sent (the proxy reads the model from it: model.ts).
   */
  | { kind: "streamed"; length: number | undefined; take(observer?: ChunkObserver): AsyncIterable<Buffer> };

/** Sees a streamed body's chunks as they go by. */
export interface ChunkObserver {
  push(chunk: Buffer): void;
}

export interface BodyLimits {
  maxBytes: number;
  retryLimit: number;
}

const tooLarge = (max: number) =>
  new KeyPoolError("payload_too_large", `The request body is larger than the proxy forwards (${max} bytes)`);

export async function readProxyBody(req: IncomingMessage, limits: BodyLimits): Promise<ProxyBody> {
  const lengthHeader = req.headers["content-length"];
  const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
  const chunked = req.headers["transfer-encoding"] !== undefined;
  if (!chunked && (length === undefined || length === 0)) return { kind: "none" };
  if (length !== undefined && length > limits.maxBytes) throw tooLarge(limits.maxBytes);

  // Hold what fits the retry limit (all of it, usually).
  const held: Buffer[] = [];
  if (length === undefined || length <= limits.retryLimit) {
    const ended = await holdUpTo(req, held, limits);
    if (ended) return { kind: "buffered", bytes: Buffer.concat(held) };
  }
  const source = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  // Larger: what was held, then the rest as it arrives, once.
  let taken = false;
  return {
    kind: "streamed",
    length,
    take(observer) {
      if (taken) throw new Error("a streamed request body can be sent once");
      taken = true;
      return (async function* stream() {
        let sent = 0;
        for (const chunk of held) {
          sent += chunk.length;
          observer?.push(chunk);
          yield chunk;
        }
        for (;;) {
          const next = await source.next();
          if (next.done) return;
          sent += next.value.length;
          if (sent > limits.maxBytes) throw tooLarge(limits.maxBytes);
          observer?.push(next.value);
          yield next.value;
        }
      })();
    },
  };
}

/**
 * Reads `req` into `held` with events until it ends (true) or more than `retryLimit` bytes came
 * (false: `req` is left paused, the rest unread); rejects with payload_too_large past `maxBytes`.
 * Events rather than an async iterator: this runs on every proxied call, and the iterator's
 * promises and end-of-stream bookkeeping were a good part of its allocations (bench/proxy, heap
 * sampling).
 */
function holdUpTo(req: IncomingMessage, held: Buffer[], limits: BodyLimits): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    let bytes = 0;
    let settled = false;
    const settle = (outcome: boolean | Error) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      held.push(chunk);
      bytes += chunk.length;
      if (bytes > limits.maxBytes || bytes > limits.retryLimit) {
        req.pause();
        settle(bytes > limits.maxBytes ? tooLarge(limits.maxBytes) : false);
      }
    };
    const onEnd = () => settle(true);
    const onClose = () => settle(new Error("the request was aborted before its body ended"));
    // Already over (nothing reads a request before this, but a stream past its end emits no
    // more events): settle now rather than wait for events that will not come.
    if (req.readableEnded) {
      resolve(true);
      return;
    }
    if (req.destroyed) {
      reject(new Error("the request was aborted before its body ended"));
      return;
    }
    req.on("data", onData);
    req.once("end", onEnd);
    // Kept after settling: a request that fails later (the caller hangs up) must not end the
    // process with an error event nobody listens to.
    req.on("error", settle);
    req.once("close", onClose);
  });
}
