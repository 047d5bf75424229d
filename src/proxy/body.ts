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
  /** Too large to hold: one attempt streams it. `take()` gives the stream once. */
  | { kind: "streamed"; length: number | undefined; take(): AsyncIterable<Buffer> };

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

  const source = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let heldBytes = 0;
  // Hold what fits the retry limit (all of it, usually).
  if (length === undefined || length <= limits.retryLimit) {
    for (;;) {
      const next = await source.next();
      if (next.done) return { kind: "buffered", bytes: Buffer.concat(held, heldBytes) };
      held.push(next.value);
      heldBytes += next.value.length;
      if (heldBytes > limits.maxBytes) throw tooLarge(limits.maxBytes);
      if (heldBytes > limits.retryLimit) break;
    }
  }
  // Larger: what was held, then the rest as it arrives, once.
  let taken = false;
  return {
    kind: "streamed",
    length,
    take() {
      if (taken) throw new Error("a streamed request body can be sent once");
      taken = true;
      return (async function* stream() {
        let sent = 0;
        for (const chunk of held) {
          sent += chunk.length;
          yield chunk;
        }
        for (;;) {
          const next = await source.next();
          if (next.done) return;
          sent += next.value.length;
          if (sent > limits.maxBytes) throw tooLarge(limits.maxBytes);
          yield next.value;
        }
      })();
    },
  };
}
