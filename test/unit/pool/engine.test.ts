import { describe, expect, it } from "vitest";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { EngineSnapshot } from "../../../src/pool/snapshot.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function withLimits(name: string, limits: KeyEntry["limits"], extra: Partial<KeyEntry> = {}): KeyEntry {
  return { ...(keys(name)[0] as KeyEntry), limits, ...extra };
}

describe("client-side limits", () => {
  it("hands a 60 rpm key out at most 60 times in any minute", () => {
    const { engine, clock } = makePool({ strategy: "RoundRobin" }, [
      withLimits("a", { requestsPerMinute: 60 }),
    ]);
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const r = engine.pick();
      if (r.ok) {
        times.push(clock.now());
        engine.report({ leaseId: r.leaseId }, { kind: "success" });
      }
      clock.advance(100 + (i % 7) * 50);
    }
    for (const start of times) {
      expect(times.filter((t) => t >= start && t < start + MINUTE).length).toBeLessThanOrEqual(60);
    }
    expect(times.length).toBeGreaterThan(60);
  });

  it("skips a key at its limit in favour of one with room, so the pool avoids a 429", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, [
      withLimits("a", { requestsPerMinute: 2 }),
      withLimits("b", undefined),
    ]);
    const ids = Array.from({ length: 6 }, () => {
      const r = engine.pick();
      return r.ok ? r.keyId : "none";
    });
    expect(ids.filter((id) => id === idOf("a"))).toHaveLength(2);
    expect(ids.filter((id) => id === idOf("b"))).toHaveLength(4);
  });

  it("counts reported tokens against tokensPerMinute", () => {
    const { engine, clock } = makePool({}, [withLimits("a", { tokensPerMinute: 1000 })]);
    const r = engine.pick();
    if (!r.ok) throw new Error("no key");
    engine.report({ leaseId: r.leaseId }, { kind: "success", tokens: 1000 });
    const refused = engine.pick();
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.retryAtMs).toBeGreaterThan(clock.now());
    clock.advance(MINUTE + SECOND);
    expect(engine.pick().ok).toBe(true);
  });

  it("says when the earliest key becomes usable when none is", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 1 }), ...keys("b")]);
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: T0 + 30 * SECOND });
    expect(engine.pick().ok).toBe(true); // a's one request
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 30 * SECOND });
  });

  it("says nothing will become usable when every key is Invalid or Disabled", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    engine.disable(idOf("b"));
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: undefined });
  });
});

describe("leases", () => {
  it("a report closes the lease; a second report on it is refused", () => {
    const { engine } = makePool({}, keys("a"));
    const r = engine.pick();
    if (!r.ok) throw new Error("no key");
    expect(engine.openLeases).toBe(1);
    expect(engine.report({ leaseId: r.leaseId }, { kind: "success" })).toMatchObject({
      ok: true,
      keyId: idOf("a"),
    });
    expect(engine.openLeases).toBe(0);
    expect(engine.report({ leaseId: r.leaseId }, { kind: "success" })).toEqual({
      ok: false,
      code: "unknown_lease",
    });
  });

  it("an expired lease stops counting as in flight", () => {
    const { engine, clock } = makePool(
      { strategy: "LeastLoaded", leaseDurationMs: 30 * SECOND },
      keys("a", "b"),
    );
    const first = engine.pick();
    expect(first.ok && first.expiresAtMs).toBe(T0 + 30 * SECOND);
    expect(engine.keys().find((k) => k.id === idOf("a"))?.inFlight).toBe(1);
    clock.advance(30 * SECOND);
    expect(engine.keys().find((k) => k.id === idOf("a"))?.inFlight).toBe(0);
    expect(engine.openLeases).toBe(0);
    if (first.ok) expect(engine.report({ leaseId: first.leaseId }, { kind: "success" }).ok).toBe(false);
  });

  it("refuses a report for a key the pool does not have", () => {
    const { engine } = makePool({}, keys("a"));
    expect(engine.report({ keyId: "000000000000" }, { kind: "success" })).toEqual({
      ok: false,
      code: "unknown_key",
    });
  });
});

describe("key-set changes", () => {
  it("keeps the state and counters of unchanged keys", () => {
    const { engine } = makePool({}, keys("a", "b"));
    for (let i = 0; i < 5; i++) engine.pick();
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + MINUTE });
    const before = engine.keys().find((k) => k.id === idOf("a"));
    engine.setKeys(keys("a", "b", "c"));
    const after = engine.keys().find((k) => k.id === idOf("a"));
    expect(after).toEqual(before);
    expect(engine.keys().map((k) => k.id)).toEqual([idOf("a"), idOf("b"), idOf("c")]);
  });

  it("a removed key drains: not handed out, reports still accepted, gone after drainPeriod", () => {
    const { engine, clock, transitions } = makePool({ drainPeriodMs: 10 * MINUTE }, keys("a", "b"));
    const lease = engine.pick();
    if (!lease.ok || lease.keyId !== idOf("a")) throw new Error("expected a");
    const { removed } = engine.setKeys(keys("b"));
    expect(removed).toEqual([idOf("a")]);
    expect(engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({
      state: "Draining",
      untilMs: T0 + 10 * MINUTE,
    });
    for (let i = 0; i < 10; i++) {
      const r = engine.pick();
      expect(r.ok && r.keyId).toBe(idOf("b"));
    }
    expect(engine.report({ leaseId: lease.leaseId }, { kind: "success" }).ok).toBe(true);
    clock.advance(10 * MINUTE);
    expect(engine.keys().map((k) => k.id)).toEqual([idOf("b")]);
    expect(transitions.find((t) => t.keyId === idOf("a"))).toMatchObject({ to: "Draining" });
  });

  it("a key that returns during its drain resumes its earlier state", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + MINUTE });
    engine.setKeys(keys("b"));
    engine.setKeys(keys("a", "b"));
    expect(engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({
      state: "RateLimited",
      untilMs: T0 + MINUTE,
    });
  });

  it("an operator reset of a draining key keeps it draining", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.setKeys(keys("b"));
    engine.reset(idOf("a"));
    expect(engine.keys().find((k) => k.id === idOf("a"))?.state).toBe("Draining");
  });

  it("the same key listed twice (two Secrets) is one key", () => {
    const { engine } = makePool({}, [
      ...keys("a"),
      { ...(keys("a")[0] as KeyEntry), source: "secret/other#a" },
    ]);
    expect(engine.size).toBe(1);
  });
});

describe("quota groups", () => {
  const grouped = (names: string[], group: string) =>
    names.map((n) => withLimits(n, undefined, { quotaGroup: group }));

  it("a rate limit on one key cools down every key of its group, not other keys", () => {
    const { engine } = makePool({}, [...grouped(["a", "b"], "org-1"), ...keys("c")]);
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 20 * SECOND });
    const states = Object.fromEntries(engine.keys().map((k) => [k.id, [k.state, k.untilMs]]));
    expect(states[idOf("a")]).toEqual(["RateLimited", T0 + 20 * SECOND]);
    expect(states[idOf("b")]).toEqual(["RateLimited", T0 + 20 * SECOND]);
    expect(states[idOf("c")]).toEqual(["Healthy", undefined]);
    const r = engine.pick();
    expect(r.ok && r.keyId).toBe(idOf("c"));
  });

  it("an Invalid key stays per key: its group siblings keep working", () => {
    const { engine } = makePool({}, grouped(["a", "b"], "org-1"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    expect(engine.keys().map((k) => k.state)).toEqual(["Invalid", "Healthy"]);
  });

  it("shares the group's limits across its keys", () => {
    const { engine } = makePool(
      { strategy: "RoundRobin", quotaGroupLimits: new Map([["org-1", { requestsPerMinute: 3 }]]) },
      [...grouped(["a", "b"], "org-1"), ...keys("c")],
    );
    const ids = Array.from({ length: 9 }, () => {
      const r = engine.pick();
      return r.ok ? r.keyId : "none";
    });
    const fromGroup = ids.filter((id) => id === idOf("a") || id === idOf("b"));
    expect(fromGroup).toHaveLength(3);
    expect(ids.filter((id) => id === idOf("c"))).toHaveLength(6);
  });
});

describe("snapshot and restore", () => {
  it("round-trips through JSON and resumes cooldowns, Invalid marks and counters", () => {
    const first = makePool({}, keys("a", "b", "c"));
    for (let i = 0; i < 7; i++) first.engine.pick();
    first.engine.report(
      { keyId: idOf("a") },
      { kind: "rateLimited", untilMs: T0 + 45 * SECOND, statusCode: 429 },
    );
    first.engine.report(
      { keyId: idOf("b") },
      { kind: "invalidKey", statusCode: 401, reason: "invalid_api_key" },
    );
    const json = JSON.stringify(first.engine.snapshot());
    expect(json).not.toContain("sk-test");

    // A new engine (a restarted operator): restore first, then the keys arrive from the Secret.
    const second = makePool({}, []);
    second.clock.set(T0 + 10 * SECOND);
    second.engine.restore(EngineSnapshot.parse(JSON.parse(json)));
    second.engine.setKeys(keys("a", "b", "c"));
    expect(second.engine.keys()).toEqual(first.engine.keys().map((k) => ({ ...k, inFlight: 0 })));
    const picks = Array.from({ length: 5 }, () => {
      const r = second.engine.pick();
      return r.ok ? r.keyId : "none";
    });
    expect(new Set(picks)).toEqual(new Set([idOf("c")]));
    second.clock.set(T0 + 45 * SECOND);
    expect(second.engine.keys().find((k) => k.id === idOf("a"))?.state).toBe("Healthy");
    expect(second.engine.keys().find((k) => k.id === idOf("b"))?.state).toBe("Invalid");
  });

  it("a cooldown that ended while the operator was down is over on restore", () => {
    const first = makePool({}, keys("a"));
    first.engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 5 * SECOND });
    const second = makePool({}, keys("a"));
    second.clock.set(T0 + MINUTE);
    second.engine.restore(first.engine.snapshot());
    expect(second.engine.pick().ok).toBe(true);
  });
});
