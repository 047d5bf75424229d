import { describe, expect, it } from "vitest";
import type { Strategy } from "../../../src/api/keypool.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { distribution, idOf, keys, makePool } from "./helpers.ts";

const STRATEGIES: Strategy[] = ["RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted"];

describe("RoundRobin", () => {
  it("hands 3 keys out exactly evenly: 300 picks give each 100", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, keys("a", "b", "c"));
    expect(distribution(engine, 300, ["a", "b", "c"])).toEqual({ a: 100, b: 100, c: 100 });
  });

  it("goes in turn, and a key back from a cooldown rejoins the rotation", () => {
    const { engine, clock } = makePool({ strategy: "RoundRobin" }, keys("a", "b", "c"));
    const order = () => {
      const r = engine.pick();
      return r.ok ? r.keyId : "none";
    };
    expect([order(), order(), order(), order()]).toEqual([idOf("a"), idOf("b"), idOf("c"), idOf("a")]);
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: clock.now() + 1000 });
    expect([order(), order(), order()]).toEqual([idOf("c"), idOf("a"), idOf("c")]);
    clock.advance(1000);
    const next = new Set([order(), order(), order()]);
    expect(next).toEqual(new Set([idOf("a"), idOf("b"), idOf("c")]));
  });
});

describe("the next key (nextKeyId)", () => {
  it.each(STRATEGIES)("%s: is the key the next pick hands out, and peeking changes nothing", (strategy) => {
    const { engine } = makePool({ strategy }, keys("a", "b", "c"));
    for (let i = 0; i < 7; i++) {
      const next = engine.nextKeyId();
      expect(engine.nextKeyId()).toBe(next);
      const picked = engine.pick();
      expect(picked.ok && picked.keyId).toBe(next);
    }
  });

  it("is undefined when no key is usable", () => {
    const { engine, clock } = makePool({ strategy: "RoundRobin" }, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: clock.now() + 1000 });
    expect(engine.nextKeyId()).toBeUndefined();
  });
});

describe("Weighted", () => {
  it("splits 10,000 picks of weights 10:5:5 within 1% of 50/25/25", () => {
    const entries: KeyEntry[] = keys("a", "b", "c").map((e, i) => ({
      ...e,
      weight: [10, 5, 5][i] as number,
    }));
    const { engine } = makePool({ strategy: "Weighted" }, entries);
    const counts = distribution(engine, 10_000, ["a", "b", "c"]);
    expect(Math.abs((counts.a as number) / 10_000 - 0.5)).toBeLessThan(0.01);
    expect(Math.abs((counts.b as number) / 10_000 - 0.25)).toBeLessThan(0.01);
    expect(Math.abs((counts.c as number) / 10_000 - 0.25)).toBeLessThan(0.01);
  });

  it("interleaves smoothly instead of handing out a burst of the heavy key", () => {
    const entries: KeyEntry[] = keys("a", "b", "c").map((e, i) => ({
      ...e,
      weight: [10, 5, 5][i] as number,
    }));
    const { engine } = makePool({ strategy: "Weighted" }, entries);
    const seq: string[] = [];
    const names = new Map(["a", "b", "c"].map((n) => [idOf(n), n]));
    for (let i = 0; i < 8; i++) {
      const r = engine.pick();
      if (r.ok) seq.push(names.get(r.keyId) as string);
    }
    // Never three of the same in a row, and the heavy key takes every other turn.
    expect(seq.join("")).not.toMatch(/(.)\1\1/);
    expect(seq.filter((s) => s === "a")).toHaveLength(4);
  });

  it("is deterministic: two pools with the same keys pick the same sequence", () => {
    const entries: KeyEntry[] = keys("a", "b", "c", "d").map((e, i) => ({ ...e, weight: i + 1 }));
    const one = makePool({ strategy: "Weighted" }, entries).engine;
    const two = makePool({ strategy: "Weighted" }, entries).engine;
    for (let i = 0; i < 100; i++) {
      const a = one.pick();
      const b = two.pick();
      expect(a.ok && b.ok && a.keyId === b.keyId).toBe(true);
    }
  });

  it("gives an unhealthy key a smaller share", () => {
    const { engine } = makePool({ strategy: "Weighted", failureThreshold: 100 }, keys("a", "b"));
    for (let i = 0; i < 20; i++) engine.report({ keyId: idOf("b") }, { kind: "serverError" });
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 1000; i++) {
      const r = engine.pick();
      if (r.ok) counts[r.keyId === idOf("a") ? "a" : "b"]++;
    }
    expect(counts.a).toBeGreaterThan(3 * counts.b);
  });
});

describe("LeastLoaded", () => {
  it("prefers the idle key while the others hold open leases", () => {
    const { engine } = makePool({ strategy: "LeastLoaded" }, keys("a", "b", "c"));
    const first = engine.pick();
    const second = engine.pick();
    expect(first.ok && second.ok).toBe(true);
    const third = engine.pick();
    expect(third.ok && third.keyId).toBe(idOf("c"));
    // Closing b's lease makes b the least loaded, although a was used longer ago.
    if (second.ok) engine.report({ leaseId: second.leaseId }, { kind: "success" });
    const fourth = engine.pick();
    expect(fourth.ok && fourth.keyId).toBe(idOf("b"));
  });

  it("weighs use against each key's own limits: a key with 10x the limit takes most of the load", () => {
    const entries: KeyEntry[] = [
      { ...(keys("small")[0] as KeyEntry), limits: { requestsPerMinute: 10 } },
      { ...(keys("big")[0] as KeyEntry), limits: { requestsPerMinute: 100 } },
    ];
    const { engine } = makePool({ strategy: "LeastLoaded" }, entries);
    const counts = distribution(engine, 110, ["small", "big"]);
    expect(counts).toEqual({ small: 10, big: 100 });
    expect(engine.pick().ok).toBe(false);
  });
});

describe("LeastRecentlyUsed", () => {
  it("hands out the key idle longest", () => {
    const { engine } = makePool({ strategy: "LeastRecentlyUsed" }, keys("a", "b", "c"));
    const ids = [engine.pick(), engine.pick(), engine.pick(), engine.pick()].map((r) =>
      r.ok ? r.keyId : "",
    );
    expect(ids).toEqual([idOf("a"), idOf("b"), idOf("c"), idOf("a")]);
  });
});

/** A small deterministic PRNG so the property test below is repeatable. */
function prng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) % 4294967296;
    return seed / 4294967296;
  };
}

describe.each(STRATEGIES)("%s never returns an unusable key", (strategy) => {
  it("across 5,000 random picks, reports, limits, cooldowns and key-set changes, and never refuses while one is", () => {
    const random = prng(42);
    const names = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const entries = (subset: string[]): KeyEntry[] =>
      subset
        .map((name) => ({ name, i: names.indexOf(name) }))
        .map(({ name, i }) => ({
          ...(keys(name)[0] as KeyEntry),
          weight: 1 + (i % 4),
          limits: i % 3 === 0 ? { requestsPerMinute: 5 } : undefined,
          quotaGroup: i % 4 === 0 ? "org-a" : undefined,
        }));
    const { engine, clock } = makePool({ strategy }, entries(names));
    const outcomes = [
      "success",
      "success",
      "success",
      "success",
      "rateLimited",
      "serverError",
      "quotaExhausted",
    ] as const;
    let served = 0;
    for (let step = 0; step < 5000; step++) {
      clock.advance(Math.floor(random() * 2000));
      if (random() < 0.01) engine.setKeys(entries(names.filter(() => random() < 0.8)));
      if (random() < 0.002)
        engine.report(
          { keyId: idOf(names[Math.floor(random() * names.length)] as string) },
          { kind: "invalidKey" },
        );
      if (random() < 0.02) engine.reset(idOf(names[Math.floor(random() * names.length)] as string));
      const r = engine.pick();
      if (!r.ok) {
        // ...and never refuses while a key without limits is usable.
        const limited = new Set(names.filter((_, i) => i % 3 === 0).map(idOf));
        const idle = engine
          .keys()
          .filter((k) => ["Healthy", "Degraded"].includes(k.state) && !limited.has(k.id));
        expect(idle).toEqual([]);
        continue;
      }
      served++;
      const view = engine.keys().find((k) => k.id === r.keyId);
      expect(["Healthy", "Degraded"]).toContain(view?.state);
      const kind = outcomes[Math.floor(random() * outcomes.length)] as (typeof outcomes)[number];
      engine.report({ leaseId: r.leaseId }, { kind });
    }
    expect(served).toBeGreaterThan(300);
  });
});
