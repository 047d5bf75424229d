import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../../src/api/keypool.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import { poolConfigFromSpec } from "../../../src/pool/config.ts";
import { KeyPoolEngine } from "../../../src/pool/engine.ts";
import { keyId, maskKey } from "../../../src/pool/identity.ts";
import { PoolRegistry } from "../../../src/pool/registry.ts";
import { createStatusPage, PUSH_INTERVAL_MS, withStatusPage } from "../../../src/ui/status-page.ts";
import { eventually } from "../../support/eventually.ts";
import { ManualTimers } from "./manual-timers.ts";

const REF = { namespace: "ai", name: "gpt" };
const KEYS = ["sk-unit-status-page-aaaa0001", "sk-unit-status-page-bbbb0002"];
const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "keys" } }] });

/** A status page over one pool of two keys, served on a loopback port. */
async function servePage(maxStreams?: number) {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0, 0));
  const timers = new ManualTimers();
  const registry = new PoolRegistry();
  const engine = new KeyPoolEngine(poolConfigFromSpec(spec), {
    clock,
    newLeaseToken: () => 1,
    onTransition: (event) => registry.transitioned(REF, event),
  });
  engine.setKeys(KEYS.map((key, i) => ({ key, source: `secret/keys#${i}` })));
  registry.set({
    ref: REF,
    uid: "u1",
    engine,
    spec,
    generation: 1,
    secretNames: new Set(["keys"]),
    usesSelector: false,
  });
  const page = createStatusPage({ registry, clock, timers, ...(maxStreams ? { maxStreams } : {}) });
  const app = express();
  app.use(page.router);
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { page, engine, timers, url, server };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

/** An open event stream, read as text up to what a test waits for. */
async function openStream(url: string) {
  const res = await fetch(`${url}/ui/events`);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  return {
    res,
    /** Reads until `text` holds `count` events named `name` (or the stream ends). */
    async until(name: string, count: number): Promise<string> {
      while (text.split(`event: ${name}\n`).length - 1 < count) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      return text;
    },
    /** Whether the stream ended. */
    async ended(): Promise<boolean> {
      for (;;) {
        const { done } = await reader.read();
        if (done) return true;
      }
    },
    cancel: () => reader.cancel(),
  };
}

/** The data of every `name` event in `text`. */
function events(text: string, name: string): unknown[] {
  return [...text.matchAll(new RegExp(`event: ${name}\\ndata: (.*)\\n\\n`, "g"))].map((m) =>
    JSON.parse(m[1] as string),
  );
}

describe("the status page's event stream", () => {
  it("opens with a snapshot of the pools (ids and masked values, no keys) and their history", async () => {
    const { url } = await servePage();
    const stream = await openStream(url);
    expect(stream.res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const text = await stream.until("history", 1);
    expect(text.startsWith("retry: 3000\n\n")).toBe(true);
    const [snapshot] = events(text, "snapshot") as Array<{
      at: string;
      pools: Array<{ keyStatuses: Array<{ id: string; masked: string; state: string }> }>;
    }>;
    expect(snapshot?.at).toBe("2026-11-22T10:00:00.000Z");
    expect(snapshot?.pools[0]?.keyStatuses.map((k) => [k.id, k.masked, k.state])).toEqual(
      KEYS.map((k) => [keyId(k), maskKey(k), "Healthy"]),
    );
    expect(events(text, "history")).toEqual([
      {
        at: "2026-11-22T10:00:00.000Z",
        pools: { "ai/gpt": { t: [], requestsPerMin: [], errorsPerMin: [] } },
      },
    ]);
    for (const key of KEYS) expect(text).not.toContain(key);
    await stream.cancel();
  });

  it("pushes a snapshot when a key changes state, with the transition, and nothing when nothing changed", async () => {
    const { url, engine, timers } = await servePage();
    const stream = await openStream(url);
    await stream.until("snapshot", 1);
    timers.fire(PUSH_INTERVAL_MS); // nothing changed: nothing sent
    engine.report(
      { keyId: keyId(KEYS[0] as string) },
      { kind: "rateLimited", untilMs: Date.UTC(2026, 10, 22, 10, 5) },
    );
    timers.fire(PUSH_INTERVAL_MS);
    const text = await stream.until("snapshot", 2);
    const pushed = events(text, "snapshot")[1] as {
      pools: Array<{ keyStatuses: Array<{ state: string; until?: string }> }>;
      transitions: unknown[];
    };
    expect(events(text, "snapshot")).toHaveLength(2);
    expect(pushed.pools[0]?.keyStatuses[0]).toMatchObject({
      state: "RateLimited",
      until: "2026-11-22T10:05:00.000Z",
    });
    expect(pushed.transitions).toEqual([
      {
        pool: "ai/gpt",
        keyId: keyId(KEYS[0] as string),
        masked: maskKey(KEYS[0] as string),
        from: "Healthy",
        to: "RateLimited",
        reason: expect.any(String),
        at: "2026-11-22T10:00:00.000Z",
        until: "2026-11-22T10:05:00.000Z",
      },
    ]);
    await stream.cancel();
  });

  it("sends a heartbeat comment after 15 quiet pushes", async () => {
    const { url, timers } = await servePage();
    const stream = await openStream(url);
    await stream.until("history", 1);
    for (let i = 0; i < 15; i++) timers.fire(PUSH_INTERVAL_MS);
    timers.fire(10_000); // a history sample: the read below ends on it
    const text = await stream.until("history", 2);
    expect(text.match(/^: heartbeat$/gm)).toHaveLength(1);
    expect(events(text, "snapshot")).toHaveLength(1);
    await stream.cancel();
  });

  it("refuses streams past the cap with 503, and takes one again when one closes", async () => {
    const { url } = await servePage(1);
    const first = await openStream(url);
    await first.until("snapshot", 1);
    const refused = await fetch(`${url}/ui/events`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("3");
    await first.cancel();
    // The server hears the close when the socket's end arrives: ask until it has.
    const again = await eventually(async () => {
      const res = await fetch(`${url}/ui/events`);
      if (res.status === 200) return res;
      await res.body?.cancel();
      return undefined;
    });
    expect(again.status).toBe(200);
    await again.body?.cancel();
  });

  it("on close, ends every stream, refuses new ones and stops its timers", async () => {
    const { url, page, timers } = await servePage();
    const stream = await openStream(url);
    await stream.until("snapshot", 1);
    expect(timers.intervals.size).toBe(2); // the sampler and the pushes
    page.close();
    expect(await stream.ended()).toBe(true);
    expect(timers.intervals.size).toBe(0);
    expect((await fetch(`${url}/ui/events`)).status).toBe(503);
  });

  it("stops pushing when the last stream goes", async () => {
    const { url, timers } = await servePage();
    const stream = await openStream(url);
    await stream.until("snapshot", 1);
    await stream.cancel();
    await eventually(async () => timers.intervals.size === 1, 5_000, 10);
    expect([...timers.intervals.values()].map((i) => i.ms)).toEqual([10_000]);
  });
});

describe("the status page's files", () => {
  it.each([
    ["/ui/", 200, /^text\/html/],
    ["/ui/assets/page.js", 200, /javascript/],
    ["/ui/assets/page.css", 200, /^text\/css/],
    ["/ui/vendor/uplot.min.js", 200, /javascript/],
    ["/ui/vendor/uplot.min.css", 200, /^text\/css/],
    ["/ui/vendor/other.js", 404, /^text\/plain/],
    ["/ui/assets/missing.js", 404, /^text\/plain/],
  ])("GET %s answers %i", async (path, status, type) => {
    const { url } = await servePage();
    const res = await fetch(`${url}${path}`);
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toMatch(type);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    await res.body?.cancel();
  });

  it("sends /ui to /ui/, where the page's relative URLs resolve", async () => {
    const { url } = await servePage();
    const res = await fetch(`${url}/ui`, { redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe("/ui/");
  });

  it("in front of another handler, takes /ui paths only", async () => {
    const { page } = await servePage();
    const seen: string[] = [];
    const handler = withStatusPage((req, res) => {
      seen.push(req.url ?? "");
      res.end("dispenser");
    }, page);
    const server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const path of ["/health", "/uix", "/v1/pools/ai/gpt/key"])
      expect(await (await fetch(`${base}${path}`)).text()).toBe("dispenser");
    expect((await fetch(`${base}/ui/`)).headers.get("content-type")).toMatch(/^text\/html/);
    expect(seen).toEqual(["/health", "/uix", "/v1/pools/ai/gpt/key"]);
  });
});
