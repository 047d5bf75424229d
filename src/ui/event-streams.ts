/**
 * Server-sent event streams (text/event-stream): open ones up to a cap, each written the same
 * events, ended all at once when the server stops (an open stream would hold a graceful close
 * open for ever).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** How long an EventSource waits before it connects again after a stream ends (ms). */
export const RECONNECT_MS = 3_000;
/** A stream whose client reads slower than this much is written to is dropped (bytes). */
const MAX_BUFFERED_BYTES = 1 << 20;

/** One event's wire form: `event: <name>` and its JSON on one `data:` line. */
export function eventText(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class EventStreams {
  readonly #open = new Set<ServerResponse>();
  readonly #max: number;
  #closed = false;

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#open.size;
  }

  /**
   * Starts a stream on `res` with `first` as its first events, or answers 503 (too many open, or
   * stopping) and returns false. `onEmpty` runs when the last open stream goes.
   */
  open(req: IncomingMessage, res: ServerResponse, first: string, onEmpty: () => void): boolean {
    if (this.#closed || this.#open.size >= this.#max) {
      res.writeHead(503, {
        "content-type": "text/plain; charset=utf-8",
        "retry-after": String(RECONNECT_MS / 1000),
        "cache-control": "no-store",
      });
      res.end(this.#closed ? "The server is stopping.\n" : `At most ${this.#max} status streams are open.\n`);
      return false;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      // The socket goes with the stream: nothing waits on an idle keep-alive connection at close.
      connection: "close",
      "x-accel-buffering": "no",
    });
    res.write(`retry: ${RECONNECT_MS}\n\n${first}`);
    this.#open.add(res);
    const gone = () => {
      if (this.#open.delete(res) && this.#open.size === 0) onEmpty();
    };
    req.once("close", gone);
    res.once("close", gone);
    return true;
  }

  /** Writes `text` to every open stream. */
  broadcast(text: string): void {
    for (const res of this.#open) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        res.destroy();
        continue;
      }
      res.write(text);
    }
  }

  /** Ends every stream and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const res of this.#open) res.end();
    this.#open.clear();
  }
}
