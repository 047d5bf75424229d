/**
 * The copy of a provider's answer body to the caller. With events rather than `for await`: an
 * async iterator and a promise per chunk were a tenth of a proxied call's allocations
 * (bench/proxy, heap sampling), and this runs on every call.
 */
import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";

/**
 * Copies an upstream body to the caller as it arrives, `onChunk` seeing each chunk, the body
 * paused while the caller's socket is full. Settles at the body's end (the answer is not ended
 * here), or rejects when the body fails or the caller disconnects (the body is then destroyed,
 * which aborts the provider call).
 */
export function copyBody(
  body: Readable,
  res: ServerResponse,
  onChunk: (chunk: Buffer) => void,
  /**
   * Keep the last chunk back and settle with it: the caller of an answer with a content-length
   * has it all only when the caller of copyBody writes it (after the call's report, say).
   */
  holdLast = false,
): Promise<Buffer | undefined> {
  let held: Buffer | undefined;
  return new Promise<Buffer | undefined>((resolve, reject) => {
    let settled = false;
    const stop = (err?: Error) => {
      if (settled) return;
      settled = true;
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("close", onBodyClose);
      res.off("drain", onDrain);
      res.off("close", onCallerClose);
      if (err) {
        body.destroy();
        reject(err);
      } else {
        resolve(held);
      }
    };
    const onData = (chunk: Buffer) => {
      onChunk(chunk);
      const out = holdLast ? held : chunk;
      if (holdLast) held = chunk;
      if (out && !res.write(out)) body.pause();
    };
    const onDrain = () => body.resume();
    const onEnd = () => stop();
    const onBodyClose = () => stop(new Error("the upstream answer's body closed before its end"));
    const onCallerClose = () => stop(new Error("the caller disconnected"));
    if (res.destroyed) {
      onCallerClose();
      return;
    }
    body.on("data", onData);
    body.once("end", onEnd);
    // Kept after settling: the caller's hang-up also aborts the call, which fails the body a tick
    // later, and an error event nobody listens to would end the process.
    body.on("error", stop);
    body.once("close", onBodyClose);
    res.on("drain", onDrain);
    res.once("close", onCallerClose);
  });
}
