import { describe, expect, it } from "vitest";
import { poolCapacity } from "../../../src/pool/capacity.ts";
import { DEFAULT_POOL_CONFIG } from "../../../src/pool/config.ts";
import { type KeyEntry, KeyRecord } from "../../../src/pool/key.ts";
import type { RateLimitInfo } from "../../../src/pool/outcome.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function withLimits(name: string, limits: KeyEntry["limits"], extra: Partial<KeyEntry> = {}): KeyEntry {
  return { ...(keys(name)[0] as KeyEntry), limits, ...extra };
}

/** Picks and reports success right away, `n` times; fails the test if no key is handed out. */
function use(engine: ReturnType<typeof makePool>["engine"], n: number, tokens?: number): void {
  for (let i = 0; i < n; i++) {
    const r = engine.pick();
    if (!r.ok) throw new Error(`no key at pick ${i}`);
    engine.report({ leaseId: r.leaseId }, { kind: "success", ...(tokens !== undefined ? { tokens } : {}) });
  }
}

describe("engine.capacity: configured limits", () => {
  it("says nothing about requests or tokens when no key has a known limit", () => {
    const { engine } = makePool({}, keys("a", "b"));
    expect(engine.capacity()).toEqual({ usableKeys: 2, requests: undefined, tokens: undefined });
  });

  it("gives a key's requestsPerMinute as limit and remaining, with room now", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 })]);
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 60, remaining: 60, roomAtMs: T0 },
      tokens: undefined,
    });
  });

  it("counts down as the key is handed out", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 })]);
    use(engine, 3);
    expect(engine.capacity().requests).toEqual({ limit: 60, remaining: 57, roomAtMs: T0 });
  });

  it("sums limits and what is left over the keys", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, [
      withLimits("a", { requestsPerMinute: 60, tokensPerMinute: 10_000 }),
      withLimits("b", { requestsPerMinute: 30, tokensPerMinute: 5_000 }),
    ]);
    use(engine, 2, 1_000); // one on each key
    expect(engine.capacity()).toEqual({
      usableKeys: 2,
      requests: { limit: 90, remaining: 88, roomAtMs: T0 },
      tokens: { limit: 15_000, remaining: 13_000, roomAtMs: T0 },
    });
  });

  it("gives tokensPerMinute less the reported tokens", () => {
    const { engine } = makePool({}, [withLimits("a", { tokensPerMinute: 1000 })]);
    use(engine, 1, 300);
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: undefined,
      tokens: { limit: 1000, remaining: 700, roomAtMs: T0 },
    });
  });

  it("a key at its request limit counts with nothing left and says when room comes back", () => {
    const { engine, clock } = makePool({}, [withLimits("a", { requestsPerMinute: 2 })]);
    use(engine, 2);
    clock.advance(10 * SECOND);
    // Still a Healthy key, so still counted, though no pick can have it now.
    expect(engine.pick().ok).toBe(false);
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 2, remaining: 0, roomAtMs: T0 + MINUTE },
      tokens: undefined,
    });
    clock.set(T0 + MINUTE);
    expect(engine.capacity().requests).toEqual({ limit: 2, remaining: 2, roomAtMs: T0 + MINUTE });
  });

  it("a key at its token limit says when room comes back, within the minute", () => {
    const { engine, clock } = makePool({}, [withLimits("a", { tokensPerMinute: 1000 })]);
    use(engine, 1, 1000);
    const tokens = engine.capacity().tokens;
    expect(tokens).toMatchObject({ limit: 1000, remaining: 0 });
    expect(tokens?.roomAtMs).toBeGreaterThan(clock.now());
    expect(tokens?.roomAtMs).toBeLessThanOrEqual(clock.now() + MINUTE + SECOND);
  });

  it("reports room now when any key has some left, else the earliest key's room", () => {
    const { engine, clock } = makePool({ strategy: "RoundRobin" }, [
      withLimits("a", { requestsPerMinute: 1 }),
      withLimits("b", { requestsPerMinute: 1 }),
    ]);
    use(engine, 1); // a, at T0
    clock.advance(10 * SECOND);
    expect(engine.capacity().requests).toEqual({ limit: 2, remaining: 1, roomAtMs: T0 + 10 * SECOND });
    use(engine, 1); // b, at T0 + 10 s
    clock.advance(5 * SECOND);
    expect(engine.capacity().requests).toEqual({ limit: 2, remaining: 0, roomAtMs: T0 + MINUTE });
  });

  it("uses the per-minute request limit, not requestsPerDay", () => {
    const { engine } = makePool({}, [
      withLimits("a", { requestsPerDay: 1000 }),
      withLimits("b", { requestsPerMinute: 10, requestsPerDay: 1000 }),
    ]);
    expect(engine.capacity().requests).toEqual({ limit: 10, remaining: 10, roomAtMs: T0 });
  });

  it("applies the pool's default limits to keys without their own", () => {
    const { engine } = makePool({ defaultLimits: { requestsPerMinute: 100 } }, [
      ...keys("a"),
      withLimits("b", { requestsPerMinute: 5 }),
    ]);
    expect(engine.capacity().requests).toEqual({ limit: 105, remaining: 105, roomAtMs: T0 });
  });

  it("leaves keys with unknown limits out of the sums but counts them as usable", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 }), ...keys("b", "c")]);
    expect(engine.capacity()).toEqual({
      usableKeys: 3,
      requests: { limit: 60, remaining: 60, roomAtMs: T0 },
      tokens: undefined,
    });
  });
});

describe("engine.capacity: the provider's rate-limit headers", () => {
  const reading: RateLimitInfo = {
    limitRequests: 500,
    remainingRequests: 499,
    resetRequestsAtMs: T0 + 120,
    limitTokens: 30_000,
    remainingTokens: 29_000,
    resetTokensAtMs: T0 + 2 * SECOND,
  };

  it("uses the headers of a reported outcome", () => {
    const { engine } = makePool({}, keys("a"));
    const r = engine.pick();
    if (!r.ok) throw new Error("no key");
    engine.report({ leaseId: r.leaseId }, { kind: "success", rateLimit: reading });
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 500, remaining: 499, roomAtMs: T0 },
      tokens: { limit: 30_000, remaining: 29_000, roomAtMs: T0 },
    });
  });

  it("uses headers noted ahead of the report (noteRateLimit)", () => {
    const { engine } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), reading);
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 500, remaining: 499, roomAtMs: T0 },
      tokens: { limit: 30_000, remaining: 29_000, roomAtMs: T0 },
    });
  });

  it("the latest reading replaces the one before", () => {
    const { engine } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), reading);
    engine.noteRateLimit(idOf("a"), { limitRequests: 500, remainingRequests: 100 });
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 500, remaining: 100, roomAtMs: T0 },
      tokens: undefined,
    });
  });

  it("noteRateLimit for a key the pool does not have changes nothing", () => {
    const { engine } = makePool({}, keys("a"));
    expect(() => engine.noteRateLimit(idOf("zz"), reading)).not.toThrow();
    expect(engine.capacity()).toEqual({ usableKeys: 1, requests: undefined, tokens: undefined });
  });

  it("noteRateLimit does not change the key's state, even with nothing left", () => {
    const { engine } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), {
      limitRequests: 100,
      remainingRequests: 0,
      resetRequestsAtMs: T0 + 5000,
    });
    expect(engine.isUsable(idOf("a"))).toBe(true);
    expect(engine.capacity().requests).toEqual({ limit: 100, remaining: 0, roomAtMs: T0 + 5000 });
  });

  it("a reading whose reset time has passed counts as full", () => {
    const { engine, clock } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), {
      limitRequests: 100,
      remainingRequests: 0,
      resetRequestsAtMs: T0 + 5 * SECOND,
      limitTokens: 10_000,
      remainingTokens: 10,
      resetTokensAtMs: T0 + 30 * SECOND,
    });
    clock.advance(5 * SECOND);
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 100, remaining: 100, roomAtMs: T0 + 5 * SECOND },
      tokens: { limit: 10_000, remaining: 10, roomAtMs: T0 + 5 * SECOND },
    });
    clock.advance(25 * SECOND);
    expect(engine.capacity().tokens).toEqual({
      limit: 10_000,
      remaining: 10_000,
      roomAtMs: T0 + 30 * SECOND,
    });
  });

  it("a reading without a limit header takes what is left as the limit", () => {
    const { engine } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), { remainingRequests: 40 });
    expect(engine.capacity().requests).toEqual({ limit: 40, remaining: 40, roomAtMs: T0 });
  });

  it("a reading with a limit but no remaining says nothing", () => {
    const { engine } = makePool({}, keys("a"));
    engine.noteRateLimit(idOf("a"), { limitRequests: 500, limitTokens: 30_000 });
    expect(engine.capacity()).toEqual({ usableKeys: 1, requests: undefined, tokens: undefined });
  });

  it("sums keys known from configuration and keys known from headers", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 }), ...keys("b", "c")]);
    engine.noteRateLimit(idOf("b"), { limitRequests: 500, remainingRequests: 250 });
    expect(engine.capacity()).toEqual({
      usableKeys: 3,
      requests: { limit: 560, remaining: 310, roomAtMs: T0 },
      tokens: undefined,
    });
  });
});

describe("engine.capacity: the tighter of configuration and provider wins", () => {
  it("the provider says less is left than configuration allows", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 })]);
    engine.noteRateLimit(idOf("a"), {
      limitRequests: 500,
      remainingRequests: 10,
      resetRequestsAtMs: T0 + SECOND,
    });
    expect(engine.capacity().requests).toEqual({ limit: 60, remaining: 10, roomAtMs: T0 });
  });

  it("configuration says less is left than the provider allows", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60, tokensPerMinute: 1000 })]);
    use(engine, 1, 800);
    engine.noteRateLimit(idOf("a"), {
      limitRequests: 500,
      remainingRequests: 400,
      limitTokens: 30_000,
      remainingTokens: 25_000,
    });
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 60, remaining: 59, roomAtMs: T0 },
      tokens: { limit: 1000, remaining: 200, roomAtMs: T0 },
    });
  });

  it("a provider limit below the configured one wins", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 60 })]);
    engine.noteRateLimit(idOf("a"), { limitRequests: 20, remainingRequests: 20 });
    expect(engine.capacity().requests).toEqual({ limit: 20, remaining: 20, roomAtMs: T0 });
  });

  it("the later of the two room times wins when the key has nothing left", () => {
    const { engine, clock } = makePool({}, [withLimits("a", { requestsPerMinute: 1 })]);
    use(engine, 1);
    engine.noteRateLimit(idOf("a"), {
      limitRequests: 10,
      remainingRequests: 0,
      resetRequestsAtMs: T0 + 90 * SECOND,
    });
    clock.advance(SECOND);
    expect(engine.capacity().requests).toEqual({ limit: 1, remaining: 0, roomAtMs: T0 + 90 * SECOND });
  });
});

describe("engine.capacity: only usable keys count", () => {
  it("leaves out RateLimited and Invalid keys, and says undefined when no known key is left", () => {
    const { engine } = makePool({}, [
      withLimits("a", { requestsPerMinute: 60 }),
      withLimits("b", { requestsPerMinute: 30 }),
    ]);
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: T0 + 30 * SECOND });
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 60, remaining: 60, roomAtMs: T0 },
      tokens: undefined,
    });
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    expect(engine.capacity()).toEqual({ usableKeys: 0, requests: undefined, tokens: undefined });
  });

  it("a key whose cooldown ends counts again", () => {
    const { engine, clock } = makePool({}, [
      withLimits("a", { requestsPerMinute: 60 }),
      withLimits("b", { requestsPerMinute: 30 }),
    ]);
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: T0 + 30 * SECOND });
    clock.advance(30 * SECOND);
    expect(engine.capacity()).toMatchObject({ usableKeys: 2, requests: { limit: 90, remaining: 90 } });
  });

  it("a success whose headers say nothing is left rests the key, which then no longer counts", () => {
    const { engine } = makePool({}, [...keys("a"), withLimits("b", { requestsPerMinute: 10 })]);
    engine.report(
      { keyId: idOf("a") },
      {
        kind: "success",
        rateLimit: { limitRequests: 100, remainingRequests: 0, resetRequestsAtMs: T0 + 5000 },
      },
    );
    expect(engine.capacity()).toEqual({
      usableKeys: 1,
      requests: { limit: 10, remaining: 10, roomAtMs: T0 },
      tokens: undefined,
    });
  });

  it("counts Degraded keys, leaves out Disabled and Draining ones", () => {
    const { engine } = makePool({ failureThreshold: 1 }, [
      withLimits("a", { requestsPerMinute: 1 }),
      withLimits("b", { requestsPerMinute: 10 }),
      withLimits("c", { requestsPerMinute: 100 }),
      withLimits("d", { requestsPerMinute: 1000 }),
    ]);
    engine.report({ keyId: idOf("a") }, { kind: "serverError", statusCode: 500 });
    expect(engine.keys().find((k) => k.id === idOf("a"))?.state).toBe("Degraded");
    engine.disable(idOf("b"));
    engine.setKeys([
      withLimits("a", { requestsPerMinute: 1 }),
      withLimits("b", { requestsPerMinute: 10 }),
      withLimits("c", { requestsPerMinute: 100 }),
    ]);
    expect(engine.keys().find((k) => k.id === idOf("d"))?.state).toBe("Draining");
    expect(engine.capacity()).toEqual({
      usableKeys: 2,
      requests: { limit: 101, remaining: 101, roomAtMs: T0 },
      tokens: undefined,
    });
  });

  it("an empty pool has no usable keys and no figures", () => {
    const { engine } = makePool({}, []);
    expect(engine.capacity()).toEqual({ usableKeys: 0, requests: undefined, tokens: undefined });
  });
});

describe("poolCapacity", () => {
  const record = (name: string, order: number, limits?: KeyEntry["limits"]) =>
    new KeyRecord(withLimits(name, limits), order, DEFAULT_POOL_CONFIG);

  it("counts every record it is given and sums what is known", () => {
    const a = record("a", 0, { requestsPerMinute: 10, tokensPerMinute: 100 });
    const b = record("b", 1);
    b.rateLimit = { limitTokens: 50, remainingTokens: 20, resetTokensAtMs: T0 + SECOND };
    expect(poolCapacity([a, b], T0)).toEqual({
      usableKeys: 2,
      requests: { limit: 10, remaining: 10, roomAtMs: T0 },
      tokens: { limit: 150, remaining: 120, roomAtMs: T0 },
    });
  });

  it("takes any iterable, including an empty one", () => {
    expect(poolCapacity(new Set<KeyRecord>(), T0)).toEqual({
      usableKeys: 0,
      requests: undefined,
      tokens: undefined,
    });
    const a = record("a", 0, { requestsPerMinute: 3 });
    expect(poolCapacity(new Set([a]), T0).requests).toEqual({ limit: 3, remaining: 3, roomAtMs: T0 });
  });

  it("the earliest room among keys with nothing left, when no key has room", () => {
    const a = record("a", 0);
    const b = record("b", 1);
    a.rateLimit = { limitRequests: 10, remainingRequests: 0, resetRequestsAtMs: T0 + 7 * SECOND };
    b.rateLimit = { limitRequests: 10, remainingRequests: 0, resetRequestsAtMs: T0 + 3 * SECOND };
    expect(poolCapacity([a, b], T0).requests).toEqual({ limit: 20, remaining: 0, roomAtMs: T0 + 3 * SECOND });
    expect(poolCapacity([a, b], T0 + 3 * SECOND).requests).toEqual({
      limit: 20,
      remaining: 10,
      roomAtMs: T0 + 3 * SECOND,
    });
  });
});
