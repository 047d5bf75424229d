import { createServer, type Server } from "node:http";
import { fakeApiKubeConfig } from "./fake-review-api.ts";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/log.ts";
import { KubernetesAuth, tokenExpiry } from "../../../src/server/auth.ts";
import { bearerToken } from "../../../src/server/authorizer.ts";
import { TtlCache } from "../../../src/server/ttl-cache.ts";

describe("bearerToken", () => {
  it.each([
    { name: "a Bearer header gives its token", header: "Bearer abc.def", token: "abc.def" },
    { name: "the scheme is case-insensitive", header: "bearer abc", token: "abc" },
    { name: "surrounding blanks are ignored", header: "  Bearer \t abc  ", token: "abc" },
    { name: "no header is no token", header: undefined, token: undefined },
    { name: "an empty header is no token", header: "", token: undefined },
    { name: "a scheme without a token is no token", header: "Bearer ", token: undefined },
    { name: "another scheme is no token", header: "Basic dXNlcjpwYXNz", token: undefined },
    { name: "two words after Bearer are malformed", header: "Bearer a b", token: undefined },
    { name: "a bare token without the scheme is malformed", header: "abc", token: undefined },
  ])("$name", ({ header, token }) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe("tokenExpiry", () => {
  const jwt = (payload: unknown) =>
    `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;
  it.each([
    { name: "a JWT's exp in milliseconds", token: jwt({ exp: 1_800_000_000 }), expiry: 1_800_000_000_000 },
    { name: "nothing for a JWT without exp", token: jwt({ sub: "x" }), expiry: undefined },
    { name: "nothing for a non-numeric exp", token: jwt({ exp: "soon" }), expiry: undefined },
    { name: "nothing for an opaque token", token: "not-a-jwt", expiry: undefined },
    { name: "nothing for a payload that is not JSON", token: "a.b.c", expiry: undefined },
  ])("reads $name", ({ token, expiry }) => {
    expect(tokenExpiry(token)).toBe(expiry);
  });
});

describe("TtlCache", () => {
  it("serves an entry until it expires, never after", () => {
    const cache = new TtlCache<string>(10);
    cache.set("a", "A", 1000);
    expect(cache.get("a", 999)).toBe("A");
    expect(cache.get("a", 1000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("evicts the least recently used entry when full (recency kept to the second)", () => {
    const cache = new TtlCache<string>(2);
    cache.set("a", "A", 10_000, 0);
    cache.set("b", "B", 10_000, 0);
    expect(cache.get("a", 1_000)).toBe("A"); // a is now the most recent
    cache.set("c", "C", 10_000, 1_000);
    expect(cache.get("b", 1_000)).toBeUndefined();
    expect(cache.get("a", 1_000)).toBe("A");
    expect(cache.get("c", 1_000)).toBe("C");
    expect(cache.size).toBe(2);
  });

  it("keeps an entry past its expiry until keepUntil, for stale() only", () => {
    const cache = new TtlCache<string>(10);
    cache.set("a", "A", 1000, 0, 5000);
    expect(cache.get("a", 1000)).toBeUndefined();
    expect(cache.stale("a", 1000)).toBe("A");
    expect(cache.stale("a", 4999)).toBe("A");
    expect(cache.stale("a", 5000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("never keeps an entry for stale() before its expiry", () => {
    const cache = new TtlCache<string>(10);
    cache.set("a", "A", 1000, 0, 500);
    expect(cache.stale("a", 999)).toBe("A");
  });

  it("replaces an entry set again without growing", () => {
    const cache = new TtlCache<string>(2);
    cache.set("a", "A", 1000);
    cache.set("a", "A2", 2000);
    expect(cache.size).toBe(1);
    expect(cache.get("a", 1500)).toBe("A2");
  });
});

describe("KubernetesAuth when the API server does not answer", () => {
  let server: Server | undefined;
  afterEach(async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  });

  async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server?.address() as AddressInfo).port}`;
  }

  it.each([
    {
      name: "a 500 from the API server",
      start: () =>
        listen((_req, res) => {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ kind: "Status", message: "etcdserver: request timed out" }));
        }),
    },
    { name: "a request that hangs past requestTimeoutMs", start: () => listen(() => {}) },
    { name: "a refused connection", start: async () => "http://127.0.0.1:1" },
  ])("answers auth_unavailable for $name, and does not cache it", async ({ start }) => {
    const url = await start();
    let now = 0;
    const auth = new KubernetesAuth({
      kc: fakeApiKubeConfig(url),
      audiences: ["keypool"],
      logger: createLogger({ level: "silent" }),
      requestTimeoutMs: 200,
      breakerOpenMs: 1_000,
      clock: { now: () => now },
    });
    for (let i = 0; i < 2; i++) {
      expect(await auth.check("some-token", "use", "ai", "openai-prod")).toMatchObject({
        ok: false,
        code: "auth_unavailable",
      });
      now += 1_000; // a timeout opens the circuit breaker: the next try is its probe
    }
    expect(auth.stats.tokenReviews).toBe(2);
  });
});
