/**
 * One call to the provider: undici's dispatch() with a handler of our own, answering with the
 * status, the headers and the body as a Readable fed with backpressure (the upstream socket is
 * paused while the body's buffer is full and resumed as it is read).
 *
 * Why not dispatcher.request(), which answers the same shape: measured with --trace-gc on a
 * node:http server that forwards each call with undici at 500 calls/s, request() (and stream())
 * kept about 5 KB per call alive through young-generation GCs (its per-call handler is an
 * AsyncResource, the likely reason; dispatch() with a plain handler keeps nothing), so each
 * scavenge copied megabytes and paused the process for 10-20 ms, and the
 * old generation grew until a Mark-Compact took it back: a p99 of 9 ms for the bare forwarder.
 * The same forwarder with this handler: scavenges of 0.3-0.5 ms, no growth, p99 4 ms.
 */
import type { IncomingHttpHeaders } from "node:http";
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";

export interface UpstreamRequest {
  origin: string;
  path: string;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string | string[]>;
  body: Buffer | Readable | null;
  /** Aborting it aborts the call, before or after the answer's headers. */
  signal: AbortSignal;
  headersTimeout: number;
  bodyTimeout: number;
}

export interface UpstreamAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Destroying it before its end aborts the call. */
  body: Readable;
}

const BODY_HIGH_WATER_MARK = 64 * 1024;

/** Calls the provider; rejects when the call fails before the answer's headers. */
export function callUpstream(dispatcher: Dispatcher, request: UpstreamRequest): Promise<UpstreamAnswer> {
  const { signal } = request;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<UpstreamAnswer>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let body: Readable | undefined;
    let settled = false;
    const onAbort = () => controller?.abort(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      settled = true;
      signal.removeEventListener("abort", onAbort);
    };

    dispatcher.dispatch(
      {
        origin: request.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: request.body,
        headersTimeout: request.headersTimeout,
        bodyTimeout: request.bodyTimeout,
      },
      {
        onRequestStart(c) {
          controller = c;
          if (signal.aborted) c.abort(abortReason(signal));
        },
        onResponseStart(c, statusCode, headers) {
          body = new Readable({
            highWaterMark: BODY_HIGH_WATER_MARK,
            read() {
              if (c.paused) c.resume();
            },
            destroy(error, callback) {
              // The reader gave up before the end: stop the provider's side too.
              if (!settled) {
                done();
                c.abort(error ?? new Error("the upstream answer's body was closed before its end"));
              }
              callback(error);
            },
          });
          resolve({ statusCode, headers, body });
        },
        onResponseData(c, chunk) {
          if (body && !body.push(chunk)) c.pause();
        },
        onResponseEnd() {
          done();
          body?.push(null);
        },
        onResponseError(_c, error) {
          const first = !settled;
          done();
          if (body) {
            if (first) body.destroy(error);
          } else {
            reject(error);
          }
        },
      },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("the call was aborted");
}
