/**
 * The Redis state store (src/state/redis-store.ts and its Lua scripts) against a real
 * redis-server: several store clients stand for several replicas (each with its own clock, some
 * of them wrong), so what is tested is what replicas share: atomic reservations that never let
 * more through than a limit, cooldowns that keep the later deadline, entries that expire with
 * their windows, leases any replica can end, and a store that goes away and comes back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/log.ts";
import type { Clock } from "../../src/pool/clock.ts";
import { RedisStateStore } from "../../src/state/redis-store.ts";
import type { ReservationRequest, SharedKeyState, StoreMessage } from "../../src/state/store.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const logger = createLogger({ level: "silent" });
const POOL = "team-a/openai";
const BASE = `kp:{${POOL}}`;

/** A clock `skewMs` off the real one: a replica whose clock is wrong. */
const skewed = (skewMs: number): Clock => ({
  now: () => performance.timeOrigin + performance.now() + skewMs,
});

describe("the Redis state store", () => {
  let redis: RedisServer;
  const stores: RedisStateStore[] = [];

  const open = async (options: { skewMs?: number; prefix?: string; password?: string } = {}) => {
    const store = new RedisStateStore({
      url: redis.url,
      prefix: options.prefix ?? "kp:",
      logger,
      clock: skewed(options.skewMs ?? 0),
      ...(options.password ? { password: options.password } : {}),
      maxReconnectDelayMs: 200,
    });
    stores.push(store);
    await store.connect();
    expect(store.up).toBe(true);
    return store;
  };

  let seq = 0;
  const request = (
    store: RedisStateStore,
    overrides: Partial<ReservationRequest> = {},
  ): ReservationRequest => ({
    pool: POOL,
    keyId: "aaaaaaaaaaaa",
    keyLimits: undefined,
    group: undefined,
    leaseId: `${seq++}.x.${store.replicaTag}`,
    leaseMs: 60_000,
    ...overrides,
  });

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await redis.command("FLUSHALL");
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it("never lets more requests through than a key's limit, whatever the number of replicas and their clocks", async () => {
    const replicas = await Promise.all([open(), open({ skewMs: 45_000 }), open({ skewMs: -30_000 })]);
    const attempts = Array.from({ length: 300 }, (_, i) => {
      const store = replicas[i % 3] as RedisStateStore;
      return store.reserve(request(store, { keyLimits: { requestsPerMinute: 20 } }));
    });
    const results = await Promise.all(attempts);
    expect(results.filter((r) => r.ok)).toHaveLength(20);
    const refused = results.filter((r) => !r.ok);
    expect(refused.every((r) => !r.ok && r.reason === "window" && r.scope === "key")).toBe(true);
    // Each replica hears the retry time on its own clock: about a minute from its own now.
    for (const [i, skew] of [0, 45_000, -30_000].entries()) {
      const store = replicas[i] as RedisStateStore;
      const r = await store.reserve(request(store, { keyLimits: { requestsPerMinute: 20 } }));
      expect(r.ok).toBe(false);
      const inMs = (r as { retryAtMs: number }).retryAtMs - (Date.now() + skew);
      expect(inMs).toBeGreaterThan(55_000);
      expect(inMs).toBeLessThanOrEqual(61_000);
    }
  });

  it("counts a quota group's limit over its keys, and says the group is full", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const group = { name: "org-1", limits: { requestsPerMinute: 10 } };
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const store = i % 2 ? (b as RedisStateStore) : (a as RedisStateStore);
        return store.reserve(request(store, { keyId: i % 4 < 2 ? "aaaaaaaaaaaa" : "bbbbbbbbbbbb", group }));
      }),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(
      results.filter((r) => !r.ok).every((r) => !r.ok && r.reason === "window" && r.scope === "group"),
    ).toBe(true);
  });

  it("counts tokens reported by any replica against tokensPerMinute", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const keyLimits = { tokensPerMinute: 100 };
    let admitted = 0;
    for (let i = 0; i < 8; i++) {
      const store = i % 2 ? (b as RedisStateStore) : (a as RedisStateStore);
      const other = i % 2 ? (a as RedisStateStore) : (b as RedisStateStore);
      const req = request(store, { keyLimits });
      const r = await store.reserve(req);
      if (!r.ok) continue;
      admitted++;
      // The answer is reported on the other replica.
      expect(
        await other.endLease({ pool: POOL, leaseId: req.leaseId, tokens: 30, keyLimits, error: false }),
      ).toEqual({
        keyId: "aaaaaaaaaaaa",
        origin: store.replicaTag,
      });
    }
    expect(admitted).toBe(4); // 0, 30, 60, 90 < 100; at 120 the window is full
  });

  it("keeps window entries exactly as long as their windows", async () => {
    const store = await open();
    const r = await store.reserve(
      request(store, {
        keyLimits: { requestsPerMinute: 5, requestsPerDay: 100, tokensPerMinute: 1000 },
        group: { name: "org-1", limits: { requestsPerMinute: 50 } },
      }),
    );
    expect(r.ok).toBe(true);
    const ttl = async (key: string) => Number(await redis.command("PTTL", key));
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:rpm`)).toBeGreaterThan(59_000);
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:rpm`)).toBeLessThanOrEqual(60_000);
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:rpd`)).toBeGreaterThan(86_399_000);
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:rpd`)).toBeLessThanOrEqual(86_400_000);
    expect(await ttl(`${BASE}:w:g:org-1:rpm`)).toBeLessThanOrEqual(60_000);
    await store.endLease({
      pool: POOL,
      keyId: "aaaaaaaaaaaa",
      tokens: 10,
      keyLimits: { tokensPerMinute: 1000 },
      error: false,
    });
    // Bucketed: one window plus the bucket it may straddle.
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:tpm`)).toBeGreaterThan(59_000);
    expect(await ttl(`${BASE}:w:k:aaaaaaaaaaaa:tpm`)).toBeLessThanOrEqual(61_000);
  });

  const state = (s: Partial<SharedKeyState> & Pick<SharedKeyState, "state">): SharedKeyState => ({
    sinceMs: Date.now(),
    untilMs: 0,
    consecutiveErrors: 0,
    lastErrorAtMs: 0,
    ...s,
  });

  it("keeps the later deadline of two cooldowns, and expires the entry at it", async () => {
    const [a, b] = await Promise.all([open(), open({ skewMs: 20_000 })]);
    const now = Date.now();
    await a.setState(POOL, "aaaaaaaaaaaa", state({ state: "RateLimited", untilMs: now + 60_000 }));
    // B's clock is 20 s ahead: its "30 s from now" is 50 s from now on the server.
    const stored = await b.setState(
      POOL,
      "aaaaaaaaaaaa",
      state({ state: "RateLimited", sinceMs: now + 20_000, untilMs: now + 20_000 + 30_000 }),
    );
    expect(stored?.state).toBe("RateLimited");
    const onA = (await a.states(POOL, ["aaaaaaaaaaaa"])).get("aaaaaaaaaaaa");
    expect(Math.abs((onA?.untilMs ?? 0) - (now + 60_000))).toBeLessThan(50);
    const ttl = Number(await redis.command("PTTL", `${BASE}:s:aaaaaaaaaaaa`));
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // QuotaExhausted outranks RateLimited, and a shorter one does not shorten the cooldown.
    await a.setState(POOL, "aaaaaaaaaaaa", state({ state: "QuotaExhausted", untilMs: now + 10_000 }));
    const after = (await a.states(POOL, ["aaaaaaaaaaaa"])).get("aaaaaaaaaaaa");
    expect(after?.state).toBe("QuotaExhausted");
    expect(Math.abs((after?.untilMs ?? 0) - (now + 60_000))).toBeLessThan(50);
  });

  it("lets neither a cooldown replace Invalid nor a stale recovery end a cooldown; an operator reset does", async () => {
    const store = await open();
    const now = Date.now();
    await store.setState(POOL, "aaaaaaaaaaaa", state({ state: "Invalid", sinceMs: now - 1000 }));
    await store.setState(POOL, "aaaaaaaaaaaa", state({ state: "RateLimited", untilMs: now + 60_000 }));
    expect((await store.states(POOL, ["aaaaaaaaaaaa"])).get("aaaaaaaaaaaa")?.state).toBe("Invalid");

    await store.setState(
      POOL,
      "bbbbbbbbbbbb",
      state({ state: "RateLimited", sinceMs: now - 1000, untilMs: now + 60_000 }),
    );
    // A replica whose own (shorter) cooldown ended says Healthy: the longer one stands.
    await store.setState(POOL, "bbbbbbbbbbbb", state({ state: "Healthy", reason: "cooldown_ended" }));
    expect((await store.states(POOL, ["bbbbbbbbbbbb"])).get("bbbbbbbbbbbb")?.state).toBe("RateLimited");
    await store.setState(
      POOL,
      "bbbbbbbbbbbb",
      state({ state: "Healthy", sinceMs: now + 1, reason: "reset" }),
    );
    expect((await store.states(POOL, ["bbbbbbbbbbbb"])).get("bbbbbbbbbbbb")?.state).toBe("Healthy");
  });

  it("refuses a key another replica found unusable, at the reservation itself", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    await a.setState(POOL, "aaaaaaaaaaaa", state({ state: "RateLimited", untilMs: Date.now() + 60_000 }));
    const r = await b.reserve(request(b));
    expect(r).toMatchObject({ ok: false, reason: "state", state: { state: "RateLimited" } });
    await a.setState(POOL, "cccccccccccc", state({ state: "Invalid" }));
    expect(await b.reserve(request(b, { keyId: "cccccccccccc" }))).toMatchObject({
      ok: false,
      reason: "state",
      state: { state: "Invalid" },
    });
    // A cooldown that ended is no refusal.
    await a.setState(POOL, "dddddddddddd", state({ state: "RateLimited", untilMs: Date.now() + 150 }));
    await new Promise((r) => setTimeout(r, 250));
    expect((await b.reserve(request(b, { keyId: "dddddddddddd" }))).ok).toBe(true);
  });

  it("tells every replica what the store holds, and the issuing replica when another ended its lease", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const heardByB: StoreMessage[] = [];
    const heardByA: StoreMessage[] = [];
    b.onMessage((m) => heardByB.push(m));
    a.onMessage((m) => heardByA.push(m));
    await a.setState(POOL, "aaaaaaaaaaaa", state({ state: "Invalid", reason: "invalid_key" }));
    await vi.waitFor(() =>
      expect(heardByB).toContainEqual(
        expect.objectContaining({
          kind: "state",
          pool: POOL,
          keyId: "aaaaaaaaaaaa",
          state: expect.objectContaining({ state: "Invalid" }),
        }),
      ),
    );
    const req = request(a, { keyId: "bbbbbbbbbbbb" });
    expect((await a.reserve(req)).ok).toBe(true);
    expect(await a.inFlight(POOL)).toEqual(new Map([["bbbbbbbbbbbb", 1]]));
    expect(await b.endLease({ pool: POOL, leaseId: req.leaseId, error: true })).toEqual({
      keyId: "bbbbbbbbbbbb",
      origin: a.replicaTag,
    });
    expect(await b.inFlight(POOL)).toEqual(new Map());
    await vi.waitFor(() =>
      expect(heardByA).toContainEqual({
        kind: "leaseClosed",
        pool: POOL,
        leaseId: req.leaseId,
        origin: a.replicaTag,
      }),
    );
    // Ended once: a second report finds no lease.
    expect(await b.endLease({ pool: POOL, leaseId: req.leaseId, error: false })).toBeUndefined();
    expect((await a.usage(POOL, ["bbbbbbbbbbbb"])).get("bbbbbbbbbbbb")).toMatchObject({
      requests: 1,
      errors: 1,
    });
  });

  it("converts times right after every kind of command (each reply ends with the server's time)", async () => {
    const store = await open({ skewMs: 10_000 });
    expect((await store.reserve(request(store))).ok).toBe(true);
    await store.inFlight(POOL);
    await store.states(POOL, ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]);
    await store.usage(POOL, ["aaaaaaaaaaaa"]);
    const now = Date.now() + 10_000;
    const stored = await store.setState(
      POOL,
      "aaaaaaaaaaaa",
      state({ state: "RateLimited", sinceMs: now, untilMs: now + 60_000 }),
    );
    expect(Math.abs((stored?.untilMs ?? 0) - (now + 60_000))).toBeLessThan(50);
    const ttl = Number(await redis.command("PTTL", `${BASE}:s:aaaaaaaaaaaa`));
    expect(ttl).toBeGreaterThan(59_000);
    expect(store.toLocal(store.toServer(now))).toBe(now);
  });

  it("stops counting a lease in flight when it expires unreported", async () => {
    const store = await open();
    expect((await store.reserve(request(store, { leaseMs: 100 }))).ok).toBe(true);
    expect(await store.inFlight(POOL)).toEqual(new Map([["aaaaaaaaaaaa", 1]]));
    await new Promise((r) => setTimeout(r, 200));
    expect(await store.inFlight(POOL)).toEqual(new Map());
  });

  it("keeps installations with different prefixes apart", async () => {
    const [a, b] = await Promise.all([open({ prefix: "one:" }), open({ prefix: "two:" })]);
    for (let i = 0; i < 3; i++)
      expect((await a.reserve(request(a, { keyLimits: { requestsPerMinute: 3 } }))).ok).toBe(true);
    expect((await a.reserve(request(a, { keyLimits: { requestsPerMinute: 3 } }))).ok).toBe(false);
    expect((await b.reserve(request(b, { keyLimits: { requestsPerMinute: 3 } }))).ok).toBe(true);
  });

  it("says when the server is gone, fails at once instead of queueing, and is back by itself after a restart", async () => {
    const store = await open();
    const changes: boolean[] = [];
    store.onAvailability((up) => changes.push(up));
    await redis.kill();
    await vi.waitFor(() => expect(store.up).toBe(false));
    const started = performance.now();
    await expect(store.reserve(request(store))).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(1000);
    await redis.restart();
    await vi.waitFor(() => expect(store.up).toBe(true), { timeout: 5000, interval: 50 });
    // The restarted server has no scripts loaded: they are loaded again on first use.
    expect((await store.reserve(request(store))).ok).toBe(true);
    expect(changes).toEqual([false, true]);
  });

  it("fails the commands a hung server does not answer, and is back by itself once it answers again", async () => {
    const store = await open();
    const changes: boolean[] = [];
    store.onAvailability((up) => changes.push(up));
    redis.pause();
    try {
      // Sent to a server that takes them and says nothing: each fails after the command timeout
      // instead of hanging the dispense that waits for it.
      const waiting = Array.from({ length: 5 }, () => store.reserve(request(store)));
      for (const result of await Promise.allSettled(waiting)) expect(result.status).toBe("rejected");
      expect(store.up).toBe(false);
    } finally {
      redis.resume();
    }
    // Nothing is asked of the store while it is down (callers serve alone); it finds out alone
    // that the server answers again.
    await vi.waitFor(() => expect(store.up).toBe(true), { timeout: 5000, interval: 50 });
    expect((await store.reserve(request(store))).ok).toBe(true);
    expect(changes).toEqual([false, true]);
  });

  it("authenticates with a password", async () => {
    const secured = await startRedis({ password: "s3cret-pass" });
    try {
      const store = new RedisStateStore({
        url: secured.url,
        password: "s3cret-pass",
        prefix: "kp:",
        logger,
        clock: skewed(0),
      });
      stores.push(store);
      await store.connect();
      expect(store.up).toBe(true);
      expect((await store.reserve(request(store))).ok).toBe(true);
    } finally {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await secured.stop();
    }
  });
});
