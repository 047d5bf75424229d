import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { buffer } from "node:stream/consumers";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { bytes } from "../../support/bytes.ts";
import { type ProxyBody, readProxyBody } from "../../../src/proxy/body.ts";
import { KeyPoolError } from "../../../src/server/errors.ts";

/** A request as readProxyBody sees it: headers and a stream of buffers. */
function request(headers: IncomingHttpHeaders, chunks: Buffer[]): IncomingMessage & { reads: () => number } {
  let reads = 0;
  const stream = Readable.from(
    (function* source() {
      for (const c of chunks) {
        reads++;
        yield c;
      }
    })(),
  );
  return Object.assign(stream, { headers, reads: () => reads }) as unknown as IncomingMessage & {
    reads: () => number;
  };
}

function split(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** A request whose body sends one chunk of 10 bytes of its claimed 50, then `fail`s. */
function cutRequest(fail: (stream: Readable) => void): IncomingMessage {
  let sent = false;
  const stream = new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(bytes(10));
      setImmediate(() => fail(this));
    },
  });
  return Object.assign(stream, { headers: { "content-length": "50" } }) as unknown as IncomingMessage;
}

function streamed(body: ProxyBody): Extract<ProxyBody, { kind: "streamed" }> {
  if (body.kind !== "streamed") throw new Error(`expected a streamed body, got ${body.kind}`);
  return body;
}

const LIMITS = { maxBytes: 1000, retryLimit: 100 };
const chunked = { "transfer-encoding": "chunked" };

describe("readProxyBody", () => {
  it("no content-length and no transfer-encoding is no body", async () => {
    const req = request({}, []);
    expect(await readProxyBody(req, LIMITS)).toEqual({ kind: "none" });
  });

  it("content-length 0 is no body", async () => {
    const req = request({ "content-length": "0" }, []);
    expect(await readProxyBody(req, LIMITS)).toEqual({ kind: "none" });
  });

  it("holds a body within retryLimit, exactly as sent", async () => {
    const data = bytes(100);
    const req = request({ "content-length": "100" }, split(data, 7));
    const body = await readProxyBody(req, LIMITS);
    expect(body.kind).toBe("buffered");
    expect(body.kind === "buffered" && body.bytes.equals(data)).toBe(true);
  });

  it("holds a small body sent in one chunk", async () => {
    const data = Buffer.from('{"model":"gpt-4o","messages":[{"role":"user","content":"héllo"}]}');
    const req = request({ "content-length": String(data.length) }, [data]);
    const body = await readProxyBody(req, LIMITS);
    expect(body).toEqual({ kind: "buffered", bytes: data });
  });

  it("holds a small chunked body (no content-length)", async () => {
    const data = bytes(60);
    const req = request(chunked, split(data, 16));
    const body = await readProxyBody(req, LIMITS);
    expect(body.kind).toBe("buffered");
    expect(body.kind === "buffered" && body.bytes.equals(data)).toBe(true);
  });

  it("refuses a content-length over maxBytes before reading anything", async () => {
    const req = request({ "content-length": "1001" }, [bytes(1001)]);
    const error = await readProxyBody(req, LIMITS).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(KeyPoolError);
    expect(error).toMatchObject({ code: "payload_too_large", status: 413 });
    expect((error as Error).message).toContain("1000");
    expect(req.reads()).toBe(0);
  });

  it("accepts a content-length of exactly maxBytes", async () => {
    const data = bytes(1000);
    const req = request({ "content-length": "1000" }, split(data, 300));
    const body = streamed(await readProxyBody(req, LIMITS));
    expect(body.length).toBe(1000);
    expect((await buffer(body.take())).equals(data)).toBe(true);
  });

  it("streams a body whose content-length is over retryLimit, without reading it first", async () => {
    const data = bytes(500);
    const req = request({ "content-length": "500" }, split(data, 64));
    const body = streamed(await readProxyBody(req, LIMITS));
    expect(body.length).toBe(500);
    expect(req.reads()).toBe(0);
    expect((await buffer(body.take())).equals(data)).toBe(true);
  });

  it("streams a chunked body over retryLimit: take() yields every byte in order", async () => {
    const data = bytes(700, 3);
    const chunks = split(data, 30);
    const req = request(chunked, chunks);
    const body = streamed(await readProxyBody(req, LIMITS));
    expect(body.length).toBeUndefined();
    const seen: Buffer[] = [];
    for await (const chunk of body.take()) seen.push(chunk);
    expect(Buffer.concat(seen).equals(data)).toBe(true);
    // The chunks held while deciding come first, then the rest, none lost or repeated.
    expect(seen).toHaveLength(chunks.length);
  });

  it("streams a chunked body of exactly maxBytes", async () => {
    const data = bytes(1000);
    const req = request(chunked, split(data, 250));
    const body = streamed(await readProxyBody(req, LIMITS));
    expect((await buffer(body.take())).equals(data)).toBe(true);
  });

  it("take() gives the stream once", async () => {
    const req = request(chunked, split(bytes(300), 50));
    const body = streamed(await readProxyBody(req, LIMITS));
    body.take();
    expect(() => body.take()).toThrow(/once/);
  });

  it("a chunked body that grows over maxBytes while streaming fails the iteration with payload_too_large", async () => {
    const data = bytes(1500);
    const req = request(chunked, split(data, 40));
    const body = streamed(await readProxyBody(req, LIMITS));
    const seen: Buffer[] = [];
    const error = await (async () => {
      for await (const chunk of body.take()) seen.push(chunk);
    })().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(KeyPoolError);
    expect(error).toMatchObject({ code: "payload_too_large", status: 413 });
    // Nothing beyond maxBytes was handed on, and what was is the start of the body.
    const sent = Buffer.concat(seen);
    expect(sent.length).toBeLessThanOrEqual(LIMITS.maxBytes);
    expect(sent.equals(data.subarray(0, sent.length))).toBe(true);
  });

  it("a single chunk that jumps over maxBytes while holding fails at once", async () => {
    const req = request(chunked, [bytes(50), bytes(2000)]);
    await expect(readProxyBody(req, LIMITS)).rejects.toMatchObject({ code: "payload_too_large" });
  });

  it("a body longer than its content-length claimed is streamed once it passes retryLimit", async () => {
    const data = bytes(300);
    const req = request({ "content-length": "50" }, split(data, 60));
    const body = streamed(await readProxyBody(req, LIMITS));
    expect((await buffer(body.take())).equals(data)).toBe(true);
  });

  it("a caller that hangs up while its body is read: the read fails, and a later error is harmless", async () => {
    const req = cutRequest((stream) => stream.destroy(new Error("aborted")));
    await expect(readProxyBody(req, LIMITS)).rejects.toThrow(/aborted/);
    // An error event nobody listens to would fail the run.
    req.emit("error", new Error("late"));
  });

  it("a body that stops before its content-length: the read fails rather than forward a cut body", async () => {
    const req = cutRequest((stream) => stream.destroy());
    await expect(readProxyBody(req, LIMITS)).rejects.toThrow(/aborted before its body ended/);
  });

  it("a request already read to its end, or already gone, settles at once", async () => {
    const ended = request({ "content-length": "10" }, [bytes(10)]);
    for await (const _chunk of ended) {
      // read it all
    }
    const body = await readProxyBody(ended, LIMITS);
    expect(body).toMatchObject({ kind: "buffered" });
    const gone = request({ "content-length": "10" }, [bytes(10)]);
    gone.destroy();
    await expect(readProxyBody(gone, LIMITS)).rejects.toThrow(/aborted before its body ended/);
  });

  it("with retryLimit 0 every chunked body is streamed", async () => {
    const data = bytes(10);
    const req = request(chunked, [data]);
    const body = streamed(await readProxyBody(req, { maxBytes: 1000, retryLimit: 0 }));
    expect((await buffer(body.take())).equals(data)).toBe(true);
  });
});
