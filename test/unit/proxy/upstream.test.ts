import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callUpstream, type UpstreamRequest } from "../../../src/proxy/upstream.ts";

let server: Server;
let origin: string;
let agent: Agent;
/** How each test's upstream answers. */
let answer: (req: IncomingMessage, res: ServerResponse) => void;

beforeAll(async () => {
  server = createServer((req, res) => answer(req, res));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ connections: 4 });
});
afterAll(async () => {
  await agent.close();
  server.closeAllConnections();
  server.close();
});

const request = (over: Partial<UpstreamRequest> = {}): UpstreamRequest => ({
  origin,
  path: "/v1/things?x=1",
  method: "POST",
  headers: { "content-type": "application/json" },
  body: Buffer.from('{"a":1}'),
  signal: new AbortController().signal,
  headersTimeout: 5_000,
  bodyTimeout: 5_000,
  ...over,
});

async function text(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

describe("callUpstream", () => {
  it("sends the request as given and answers status, headers and the whole body", async () => {
    answer = (req, res) => {
      let got = "";
      req.on("data", (c: Buffer) => (got += c.toString()));
      req.on("end", () => {
        res.writeHead(201, { "x-seen": `${req.method} ${req.url} ${got}` });
        res.end("created");
      });
    };
    const up = await callUpstream(agent, request());
    expect(up.statusCode).toBe(201);
    expect(up.headers["x-seen"]).toBe('POST /v1/things?x=1 {"a":1}');
    expect(await text(up.body)).toBe("created");
  });

  it("delivers a body far larger than its buffer intact to a slow reader (backpressure)", async () => {
    const chunk = Buffer.alloc(64 * 1024, "z");
    answer = (_req, res) => {
      res.writeHead(200);
      let sent = 0;
      const more = () => {
        while (sent < 64) {
          sent++;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    };
    const up = await callUpstream(agent, request());
    let size = 0;
    for await (const part of up.body as AsyncIterable<Buffer>) {
      size += part.length;
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(size).toBe(64 * chunk.length);
  });

  it("rejects at once, without calling, when the signal is already aborted", async () => {
    let called = false;
    answer = (_req, res) => {
      called = true;
      res.end();
    };
    const abort = new AbortController();
    abort.abort(new Error("caller left"));
    await expect(callUpstream(agent, request({ signal: abort.signal }))).rejects.toThrow("caller left");
    expect(called).toBe(false);
  });

  it("aborting before the answer's headers rejects and closes the upstream request", async () => {
    const closed = Promise.withResolvers<undefined>();
    answer = (req) => req.socket.once("close", () => closed.resolve(undefined));
    const abort = new AbortController();
    const pending = callUpstream(agent, request({ signal: abort.signal }));
    setTimeout(() => abort.abort(new Error("caller left")), 50);
    await expect(pending).rejects.toThrow("caller left");
    await closed.promise;
  });

  it("aborting or closing the body mid-stream stops the upstream side too", async () => {
    for (const how of ["abort", "destroy"] as const) {
      const closed = Promise.withResolvers<undefined>();
      answer = (req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: 1\n\n");
        req.socket.once("close", () => closed.resolve(undefined));
      };
      const abort = new AbortController();
      const up = await callUpstream(agent, request({ signal: abort.signal }));
      const iterator = (up.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      expect((await iterator.next()).value.toString()).toBe("data: 1\n\n");
      if (how === "abort") {
        abort.abort(new Error("caller left"));
        await expect(iterator.next()).rejects.toThrow("caller left");
      } else {
        up.body.destroy();
      }
      await closed.promise;
    }
  });

  it("rejects with undici's error when the provider cannot be reached", async () => {
    const unused = createServer();
    unused.listen(0, "127.0.0.1");
    await once(unused, "listening");
    const port = (unused.address() as AddressInfo).port;
    unused.close();
    await expect(callUpstream(agent, request({ origin: `http://127.0.0.1:${port}` }))).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });

  it("a headers timeout rejects with undici's timeout error", async () => {
    answer = () => {};
    await expect(callUpstream(agent, request({ headersTimeout: 100 }))).rejects.toMatchObject({
      code: "UND_ERR_HEADERS_TIMEOUT",
    });
  });
});
