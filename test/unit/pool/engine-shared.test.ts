/**
 * Shared mode: a store shared by replicas enforces the limit windows, holds what it refused, and
 * tells the engine the calls in flight everywhere (see the header of src/pool/engine.ts).
 */
import { describe, expect, it } from "vitest";
import type { KeyPoolEngine } from "../../../src/pool/engine.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function withLimits(name: string, limits: KeyEntry["limits"], extra: Partial<KeyEntry> = {}): KeyEntry {
  return { ...(keys(name)[0] as KeyEntry), limits, ...extra };
}

function inGroup(group: string, ...names: string[]): KeyEntry[] {
  return keys(...names).map((entry) => ({ ...entry, quotaGroup: group }));
}

function pickOk(engine: KeyPoolEngine) {
  const r = engine.pick();
  if (!r.ok) throw new Error("no usable key");
  return r;
}

function view(engine: KeyPoolEngine, name: string) {
  const v = engine.keys().find((k) => k.id === idOf(name));
  if (!v) throw new Error(`no key ${name}`);
  return v;
}

/** Which keys `n` picks hand out (each lease reported right away). */
function picked(engine: KeyPoolEngine, n: number): string[] {
  return Array.from({ length: n }, () => {
    const r = engine.pick();
    if (!r.ok) return "none";
    engine.report({ leaseId: r.leaseId }, { kind: "success" });
    return r.keyId;
  });
}

describe("shared limits", () => {
  it("leave the limit windows to the store: a 2 rpm key is handed out 5 times in a minute", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 2 })]);
    engine.setSharedLimits(true);
    expect(engine.sharedLimits).toBe(true);
    for (let i = 0; i < 5; i++) expect(engine.pick().ok).toBe(true);
    expect(engine.isUsable(idOf("a"))).toBe(true);
    // Dispenses left the local windows alone (countUse is what fills them).
    engine.setSharedLimits(false);
    expect(engine.isUsable(idOf("a"))).toBe(true);
  });

  it("off (the default), the local window refuses the 3rd request in the minute", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 2 })]);
    expect(engine.sharedLimits).toBe(false);
    expect(engine.pick().ok).toBe(true);
    expect(engine.pick().ok).toBe(true);
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + MINUTE });
  });

  it("leave quota group windows to the store too", () => {
    const { engine } = makePool({ quotaGroupLimits: new Map([["g", { requestsPerMinute: 1 }]]) }, [
      ...inGroup("g", "a", "b"),
    ]);
    engine.setSharedLimits(true);
    for (let i = 0; i < 4; i++) expect(engine.pick().ok).toBe(true);
  });

  it("keep counting reported tokens locally, but a full token window keeps no key out", () => {
    const { engine } = makePool({}, [withLimits("a", { tokensPerMinute: 1000 })]);
    engine.setSharedLimits(true);
    const r = pickOk(engine);
    engine.report({ leaseId: r.leaseId }, { kind: "success", tokens: 1000 });
    expect(engine.pick().ok).toBe(true);
    engine.setSharedLimits(false);
    expect(engine.pick().ok).toBe(false);
  });

  it("switching re-places every key: out by a full local window, in when shared, out again when not", () => {
    const { engine, clock } = makePool({ strategy: "RoundRobin" }, [
      withLimits("a", { requestsPerMinute: 2 }),
      ...keys("b"),
    ]);
    engine.pickKey(idOf("a"));
    engine.pickKey(idOf("a"));
    expect(engine.isUsable(idOf("a"))).toBe(false);

    engine.setSharedLimits(true);
    expect(engine.isUsable(idOf("a"))).toBe(true);
    expect(engine.usableKeyIds()).toEqual([idOf("a"), idOf("b")]);

    engine.setSharedLimits(false);
    expect(engine.isUsable(idOf("a"))).toBe(false);
    expect(picked(engine, 3)).toEqual([idOf("b"), idOf("b"), idOf("b")]);
    clock.advance(MINUTE);
    engine.tick();
    expect(engine.isUsable(idOf("a"))).toBe(true);
  });
});

describe("countUse", () => {
  it("warms the local windows without taking the key out while shared", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 2 })]);
    engine.setSharedLimits(true);
    for (let i = 0; i < 2; i++) {
      pickOk(engine);
      engine.countUse(idOf("a"));
    }
    expect(engine.isUsable(idOf("a"))).toBe(true);

    // The store went down: the engine counts alone, and knows the minute's two requests.
    engine.setSharedLimits(false);
    expect(engine.isUsable(idOf("a"))).toBe(false);
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + MINUTE });
  });

  it("warms the quota group's windows too", () => {
    const { engine } = makePool({ quotaGroupLimits: new Map([["g", { requestsPerMinute: 1 }]]) }, [
      ...inGroup("g", "a", "b"),
    ]);
    engine.setSharedLimits(true);
    pickOk(engine);
    engine.countUse(idOf("a"));
    engine.setSharedLimits(false);
    expect(engine.usableKeyIds()).toEqual([]);
  });

  it("without shared limits, takes a key whose window it fills out, as a dispense does", () => {
    const { engine } = makePool({}, [withLimits("a", { requestsPerMinute: 1 })]);
    engine.countUse(idOf("a"));
    expect(engine.isUsable(idOf("a"))).toBe(false);
    engine.countUse("unknown"); // ignored
  });
});

describe("holdUntil", () => {
  it("keeps a key out until the time, then tick brings it back, with no transition", () => {
    const { engine, clock, transitions } = makePool({ strategy: "RoundRobin" }, keys("a", "b"));
    engine.holdUntil(idOf("a"), T0 + 10 * SECOND, "key");
    expect(engine.isUsable(idOf("a"))).toBe(false);
    expect(picked(engine, 4)).toEqual([idOf("b"), idOf("b"), idOf("b"), idOf("b")]);
    expect(view(engine, "a").state).toBe("Healthy");

    clock.advance(10 * SECOND - 1);
    engine.tick();
    expect(engine.isUsable(idOf("a"))).toBe(false);
    clock.advance(1);
    engine.tick();
    expect(engine.isUsable(idOf("a"))).toBe(true);
    expect(picked(engine, 2)).toContain(idOf("a"));
    expect(transitions).toEqual([]);
  });

  it("scope group holds every key of the quota group", () => {
    const { engine, clock } = makePool({}, [...inGroup("g", "a", "b"), ...keys("c")]);
    engine.holdUntil(idOf("a"), T0 + 5 * SECOND, "group");
    expect(engine.usableKeyIds()).toEqual([idOf("c")]);
    clock.advance(5 * SECOND);
    engine.tick();
    expect(engine.usableKeyIds()).toEqual([idOf("a"), idOf("b"), idOf("c")]);
  });

  it("scope key holds only the key, even in a group", () => {
    const { engine } = makePool({}, inGroup("g", "a", "b"));
    engine.holdUntil(idOf("a"), T0 + 5 * SECOND, "key");
    expect(engine.usableKeyIds()).toEqual([idOf("b")]);
  });

  it("keeps the later deadline", () => {
    const { engine, clock } = makePool({}, keys("a"));
    engine.holdUntil(idOf("a"), T0 + 20 * SECOND, "key");
    engine.holdUntil(idOf("a"), T0 + 10 * SECOND, "key");
    clock.advance(15 * SECOND);
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 20 * SECOND });
    engine.holdUntil(idOf("a"), T0 + 30 * SECOND, "key");
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 30 * SECOND });
    clock.advance(15 * SECOND);
    expect(engine.pick().ok).toBe(true);
  });

  it("is what no_usable_key's retry time says when the held key is the only one", () => {
    const { engine } = makePool({}, keys("a"));
    engine.holdUntil(idOf("a"), T0 + 7 * SECOND, "key");
    expect(engine.nextUsableAt()).toBe(T0 + 7 * SECOND);
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 7 * SECOND });
  });

  it("past a cooldown: the cooldown still ends on time, the key comes back at the hold's end", () => {
    const { engine, clock, transitions } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 10 * SECOND });
    engine.holdUntil(idOf("a"), T0 + 30 * SECOND, "key");
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 30 * SECOND });

    clock.advance(10 * SECOND);
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: T0 + 30 * SECOND });
    expect(transitions.map((t) => t.to)).toEqual(["RateLimited", "Healthy"]);
    expect(view(engine, "a").state).toBe("Healthy");

    clock.advance(20 * SECOND);
    expect(engine.pick().ok).toBe(true);
  });

  it("applies with shared limits on too, and a hold already over changes nothing", () => {
    const { engine } = makePool({}, keys("a"));
    engine.setSharedLimits(true);
    engine.holdUntil(idOf("a"), T0, "key");
    expect(engine.isUsable(idOf("a"))).toBe(true);
    engine.holdUntil(idOf("a"), T0 + SECOND, "key");
    expect(engine.isUsable(idOf("a"))).toBe(false);
    engine.holdUntil("unknown", T0 + SECOND, "group"); // ignored
  });
});

describe("cancel", () => {
  it("takes back the dispense: lease closed, requests and in-flight restored, no transition", () => {
    const { engine, transitions } = makePool({}, keys("a"));
    engine.setSharedLimits(true);
    const r = pickOk(engine);
    expect(view(engine, "a")).toMatchObject({ requests: 1, inFlight: 1 });
    expect(engine.cancel(r.leaseId)).toBe(true);
    expect(view(engine, "a")).toMatchObject({ requests: 0, inFlight: 0 });
    expect(engine.openLeases).toBe(0);
    expect(engine.leaseKeyId(r.leaseId)).toBeUndefined();
    expect(transitions).toEqual([]);
  });

  it("returns false for a lease that is not open here", () => {
    const { engine } = makePool({}, keys("a"));
    const r = pickOk(engine);
    expect(engine.cancel("zz.zz")).toBe(false);
    expect(engine.cancel(r.leaseId)).toBe(true);
    expect(engine.cancel(r.leaseId)).toBe(false);
    expect(engine.report({ leaseId: r.leaseId }, { kind: "success" })).toEqual({
      ok: false,
      code: "unknown_lease",
    });
  });

  it("re-ranks the key for LeastLoaded", () => {
    const { engine } = makePool({ strategy: "LeastLoaded" }, keys("a", "b"));
    engine.setSharedLimits(true);
    const first = pickOk(engine);
    expect(first.keyId).toBe(idOf("a"));
    expect(engine.nextKeyId()).toBe(idOf("b"));
    engine.cancel(first.leaseId);
    // Equal load again; b was never used, so it is the one idle longest.
    pickOk(engine); // b
    expect(engine.nextKeyId()).toBe(idOf("a"));
  });
});

describe("closeLease", () => {
  it("ends a lease reported elsewhere: in-flight down, LeastLoaded re-ranks, no outcome", () => {
    const { engine, transitions } = makePool({ strategy: "LeastLoaded" }, keys("a", "b"));
    const a = pickOk(engine);
    const b = pickOk(engine);
    expect([a.keyId, b.keyId]).toEqual([idOf("a"), idOf("b")]);
    pickOk(engine); // a again: equal load, a idle longer
    expect(engine.nextKeyId()).toBe(idOf("b"));

    expect(engine.closeLease(a.leaseId)).toBe(idOf("a"));
    expect(view(engine, "a")).toMatchObject({ inFlight: 1, requests: 2, errors: 0 });
    expect(engine.closeLease(b.leaseId)).toBe(idOf("b"));
    expect(view(engine, "b")).toMatchObject({ inFlight: 0, requests: 1 });
    expect(engine.nextKeyId()).toBe(idOf("b"));
    expect(engine.openLeases).toBe(1);
    expect(transitions).toEqual([]);
  });

  it("returns undefined for a lease that is not open here", () => {
    const { engine } = makePool({}, keys("a"));
    const r = pickOk(engine);
    expect(engine.closeLease("nope")).toBeUndefined();
    expect(engine.closeLease(r.leaseId)).toBe(idOf("a"));
    expect(engine.closeLease(r.leaseId)).toBeUndefined();
  });
});

describe("setSharedInFlight", () => {
  it("makes LeastLoaded prefer the key with fewer calls in flight over all replicas", () => {
    const { engine } = makePool({ strategy: "LeastLoaded" }, keys("a", "b"));
    expect(engine.nextKeyId()).toBe(idOf("a"));
    engine.setSharedInFlight(
      new Map([
        [idOf("a"), 3],
        [idOf("b"), 1],
      ]),
    );
    expect(engine.nextKeyId()).toBe(idOf("b"));
    expect(view(engine, "a").inFlight).toBe(3);
    expect(view(engine, "b").inFlight).toBe(1);

    // Keys missing from the map: none in flight elsewhere.
    engine.setSharedInFlight(new Map([[idOf("b"), 2]]));
    expect(engine.nextKeyId()).toBe(idOf("a"));
    expect(view(engine, "a").inFlight).toBe(0);
  });

  it("counts the larger of the shared count and this replica's own leases", () => {
    const { engine } = makePool({ strategy: "LeastLoaded" }, keys("a", "b"));
    engine.pickKey(idOf("a"));
    engine.pickKey(idOf("a"));
    engine.setSharedInFlight(new Map([[idOf("a"), 1]]));
    expect(view(engine, "a").inFlight).toBe(2);
    engine.setSharedInFlight(new Map([[idOf("b"), 3]]));
    expect(view(engine, "b").inFlight).toBe(3);
    expect(engine.nextKeyId()).toBe(idOf("a"));
  });
});

describe("limitsOf", () => {
  it("gives a key's limits and its quota group's", () => {
    const { engine } = makePool({ quotaGroupLimits: new Map([["g", { requestsPerMinute: 100 }]]) }, [
      withLimits("a", { requestsPerMinute: 2, tokensPerMinute: 500 }, { quotaGroup: "g" }),
      withLimits("b", undefined),
      withLimits("c", undefined, { quotaGroup: "h" }),
    ]);
    expect(engine.limitsOf(idOf("a"))).toEqual({
      keyLimits: { requestsPerMinute: 2, tokensPerMinute: 500 },
      group: { name: "g", limits: { requestsPerMinute: 100 } },
    });
    expect(engine.limitsOf(idOf("b"))).toEqual({ keyLimits: undefined, group: undefined });
    expect(engine.limitsOf(idOf("c"))).toEqual({
      keyLimits: undefined,
      group: { name: "h", limits: undefined },
    });
    expect(engine.limitsOf("unknown")).toBeUndefined();
  });

  it("takes the pool's default limits for a key without its own", () => {
    const { engine } = makePool({ defaultLimits: { requestsPerDay: 1000 } }, keys("a"));
    expect(engine.limitsOf(idOf("a"))).toEqual({ keyLimits: { requestsPerDay: 1000 }, group: undefined });
  });
});

/** A small deterministic PRNG so the property test below is repeatable. */
function prng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) % 4294967296;
    return seed / 4294967296;
  };
}

const STRATEGIES = ["RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted"] as const;

describe.each(STRATEGIES)("%s with a coordinator in front", (strategy) => {
  it("never hands out a held key, and a refusal's retry time is when a key is usable again", () => {
    const random = prng(7);
    const names = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const groupOf = (i: number) => (i % 3 === 0 ? "org-a" : i % 3 === 1 ? "org-b" : undefined);
    const entries = names.map((name, i): KeyEntry => ({
      ...(keys(name)[0] as KeyEntry),
      weight: 1 + (i % 4),
      limits: i % 2 === 0 ? { requestsPerMinute: 4 } : undefined,
      quotaGroup: groupOf(i),
    }));
    const { engine, clock } = makePool(
      { strategy, quotaGroupLimits: new Map([["org-a", { requestsPerMinute: 6 }]]) },
      entries,
    );
    const held = new Map<string, number>();
    const hold = (i: number, until: number, scope: "key" | "group") => {
      const group = groupOf(i);
      names.forEach((name, j) => {
        if (j === i || (scope === "group" && group !== undefined && groupOf(j) === group)) {
          held.set(idOf(name), Math.max(held.get(idOf(name)) ?? 0, until));
        }
      });
      engine.holdUntil(idOf(names[i] as string), until, scope);
    };
    const open: string[] = [];
    let served = 0;
    let refused = 0;
    for (let step = 0; step < 4000; step++) {
      clock.advance(Math.floor(random() * 1500));
      if (random() < 0.01) engine.setSharedLimits(!engine.sharedLimits);
      if (random() < 0.05) {
        engine.setSharedInFlight(new Map(names.map((name) => [idOf(name), Math.floor(random() * 4)])));
      }
      if (random() < 0.01)
        engine.report({ keyId: idOf(names[Math.floor(random() * 8)] as string) }, { kind: "rateLimited" });
      if (open.length > 0 && random() < 0.3) {
        const lease = open.splice(Math.floor(random() * open.length), 1)[0] as string;
        if (random() < 0.5) engine.closeLease(lease);
        else engine.report({ leaseId: lease }, { kind: "success" });
      }

      const r = engine.pick();
      if (!r.ok) {
        refused++;
        if (r.retryAtMs === undefined) throw new Error("every key has a time-bound reason to wait");
        expect(r.retryAtMs).toBeGreaterThan(clock.now());
        clock.set(r.retryAtMs);
        expect(engine.pick().ok).toBe(true);
        continue;
      }
      served++;
      expect(held.get(r.keyId) ?? 0).toBeLessThanOrEqual(clock.now());
      expect(["Healthy", "Degraded"]).toContain(engine.keys().find((k) => k.id === r.keyId)?.state);
      if (engine.sharedLimits && random() < 0.2) {
        // The store refused: undo the dispense and hold the key or its group.
        expect(engine.cancel(r.leaseId)).toBe(true);
        const i = names.findIndex((name) => idOf(name) === r.keyId);
        hold(i, clock.now() + 1 + Math.floor(random() * 20_000), random() < 0.5 ? "key" : "group");
      } else {
        if (engine.sharedLimits) engine.countUse(r.keyId);
        open.push(r.leaseId);
      }
    }
    expect(served).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(0);
  });
});
