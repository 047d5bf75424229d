import { once } from "node:events";
import { buffer } from "node:stream/consumers";
import { type IncomingMessage, type Server, type ServerResponse, createServer, get } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { bytes } from "../../support/bytes.ts";
import { copyBody } from "../../../src/proxy/copy-body.ts";
import { eventually } from "../../support/eventually.ts";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  if (server) await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

/** A server answering each request with `body()` copied by copyBody; `settled` holds each outcome. */
async function serve(body: (res: ServerResponse) => Readable, holdLast = false) {
  const settled: Array<Promise<Buffer | undefined>> = [];
  const sources: Readable[] = [];
  const seen: Buffer[] = [];
  server = createServer((_req, res) => {
    const source = body(res);
    sources.push(source);
    res.writeHead(200, { "content-type": "application/octet-stream" });
    const copied = copyBody(source, res, (chunk) => seen.push(chunk), holdLast);
    settled.push(copied);
    copied.then(
      (last) => res.end(last),
      () => res.destroy(),
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, settled, sources, seen };
}

function getResponse(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, resolve).on("error", reject));
}

describe("copyBody", () => {
  it("copies every chunk in order, and the meter sees each", async () => {
    const data = bytes(100_000);
    const chunks = Array.from({ length: 10 }, (_, i) => data.subarray(i * 10_000, (i + 1) * 10_000));
    const s = await serve(() => Readable.from(chunks));
    const received = await buffer(await getResponse(s.url));
    expect(received.equals(data)).toBe(true);
    await expect(s.settled[0]).resolves.toBeUndefined();
    expect(Buffer.concat(s.seen).equals(data)).toBe(true);
  });

  it("with holdLast, keeps the last chunk back for its caller to write, and loses nothing", async () => {
    const data = bytes(30_000);
    const chunks = Array.from({ length: 3 }, (_, i) => data.subarray(i * 10_000, (i + 1) * 10_000));
    const s = await serve(() => Readable.from(chunks), true);
    const received = await buffer(await getResponse(s.url));
    expect(received.equals(data)).toBe(true);
    const last = await s.settled[0];
    expect(last?.equals(chunks[2] as Buffer)).toBe(true);
  });

  it("pauses the body while the caller does not read (backpressure), then delivers all of it intact", async () => {
    const total = 32 * 1024 * 1024;
    let produced = 0;
    const s = await serve(
      () =>
        new Readable({
          highWaterMark: 64 * 1024,
          read() {
            if (produced >= total) {
              this.push(null);
              return;
            }
            const chunk = bytes(64 * 1024, produced);
            produced += chunk.length;
            this.push(chunk);
          },
        }),
    );
    const res = await getResponse(s.url);
    res.pause();
    // Reading nothing: the copy stops once the sockets' buffers are full, far short of the body.
    await eventually(async () => {
      const before = produced;
      await sleep(100);
      return produced === before && produced > 0;
    }, 5_000);
    expect(produced).toBeLessThan(total / 2);
    let received = 0;
    let intact = true;
    res.on("data", (chunk: Buffer) => {
      // Byte i of the body is i mod 256.
      if (chunk[0] !== received % 256) intact = false;
      received += chunk.length;
    });
    res.resume();
    await once(res, "end");
    expect(received).toBe(total);
    expect(intact).toBe(true);
    await expect(s.settled[0]).resolves.toBeUndefined();
  }, 30_000); // 32 MiB through two sockets: seconds on a loaded 2-core machine

  it("a body that fails mid-way rejects with its error", async () => {
    const s = await serve(
      () =>
        new Readable({
          read() {
            this.push(bytes(1000));
            setImmediate(() => this.destroy(new Error("the provider's stream broke")));
          },
        }),
    );
    const res = await getResponse(s.url);
    res.on("error", () => {});
    res.resume();
    await expect(s.settled[0]).rejects.toThrow("the provider's stream broke");
  });

  it("a caller hanging up rejects, destroys the body, and a failure of the body after that is harmless", async () => {
    const s = await serve((res) => {
      const source = new Readable({
        read() {
          setTimeout(() => this.push(bytes(100)), 10);
        },
      });
      // As the proxy does: the caller's hang-up aborts the provider call, which fails the body
      // (before copyBody's own close listener runs).
      res.once("close", () => source.destroy(new Error("the call was aborted")));
      return source;
    });
    const res = await getResponse(s.url);
    await once(res, "data");
    res.destroy();
    await expect(s.settled[0]).rejects.toThrow(/caller disconnected|call was aborted/);
    expect(s.sources[0]?.destroyed).toBe(true);
    // An unhandled error event would fail the run; give it the ticks it needs to show.
    await sleep(50);
  });

  it("an answer already closed rejects at once", async () => {
    const s = await serve((res) => {
      res.destroy();
      return Readable.from([bytes(10)]);
    });
    await getResponse(s.url).catch(() => undefined);
    await eventually(async () => s.settled.length === 1, 5_000);
    await expect(s.settled[0]).rejects.toThrow("the caller disconnected");
  });
});
