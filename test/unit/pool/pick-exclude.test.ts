import { describe, expect, it } from "vitest";
import type { Strategy } from "../../../src/api/keypool.ts";
import type { KeyPoolEngine } from "../../../src/pool/engine.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const STRATEGIES: Strategy[] = ["RoundRobin", "LeastRecentlyUsed", "LeastLoaded", "Weighted"];
const NAMES = ["a", "b", "c", "d"];

const nameOf = new Map(NAMES.map((n) => [idOf(n), n]));

/** The name of the key a pick hands out ("none" when it refuses), optionally closing its lease. */
function pickName(engine: KeyPoolEngine, exclude?: string[], close = true): string {
  const r = engine.pick(exclude ? new Set(exclude.map(idOf)) : undefined);
  if (!r.ok) return "none";
  if (close) engine.report({ leaseId: r.leaseId }, { kind: "success" });
  return nameOf.get(r.keyId) ?? r.keyId;
}

describe.each(STRATEGIES)("pick with exclude (%s)", (strategy) => {
  it("never hands out an excluded key", () => {
    const { engine } = makePool({ strategy }, keys(...NAMES));
    for (let i = 0; i < 40; i++) {
      const name = pickName(engine, ["a", "c"]);
      expect(["b", "d"]).toContain(name);
    }
  });

  it("passes over the key the strategy would have picked next", () => {
    const { engine } = makePool({ strategy }, keys(...NAMES));
    const probe = makePool({ strategy }, keys(...NAMES)).engine;
    const next = pickName(probe);
    const got = pickName(engine, [next]);
    expect(got).not.toBe(next);
    expect(got).not.toBe("none");
  });

  it("refuses when every usable key is excluded", () => {
    const { engine } = makePool({ strategy }, keys("a", "b"));
    const r = engine.pick(new Set([idOf("a"), idOf("b")]));
    expect(r.ok).toBe(false);
    expect(engine.openLeases).toBe(0);
  });

  it("refuses when the only usable key is excluded, saying when another comes back", () => {
    const { engine } = makePool({ strategy }, keys("a", "b"));
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: T0 + 30_000 });
    expect(engine.pick(new Set([idOf("a")]))).toEqual({ ok: false, retryAtMs: T0 + 30_000 });
  });

  it("leaves excluded keys usable: a later pick without exclude can have them", () => {
    const { engine } = makePool({ strategy }, keys("a", "b", "c"));
    expect(pickName(engine, ["a", "b"])).toBe("c");
    expect(engine.usableCount).toBe(3);
    expect(engine.isUsable(idOf("a"))).toBe(true);
    expect(engine.isUsable(idOf("b"))).toBe(true);
    expect(engine.usableKeyIds()).toEqual([idOf("a"), idOf("b"), idOf("c")]);
    const later = new Set(Array.from({ length: 6 }, () => pickName(engine)));
    expect(later).toEqual(new Set(["a", "b", "c"]));
  });

  it("a refused pick leaves every key usable", () => {
    const { engine } = makePool({ strategy }, keys("a", "b"));
    expect(pickName(engine, ["a", "b"])).toBe("none");
    expect(engine.usableCount).toBe(2);
    expect(new Set([pickName(engine), pickName(engine)])).toEqual(new Set(["a", "b"]));
  });

  it("ignores ids in exclude that the pool does not have or that are not usable", () => {
    const { engine } = makePool({ strategy }, keys("a", "b"));
    engine.report({ keyId: idOf("b") }, { kind: "invalidKey" });
    const r = engine.pick(new Set([idOf("zz"), idOf("b"), "not-a-key-id"]));
    expect(r.ok && r.keyId).toBe(idOf("a"));
    expect(engine.isUsable(idOf("b"))).toBe(false);
  });

  it("an empty exclude set changes nothing", () => {
    const plain = makePool({ strategy }, keys(...NAMES)).engine;
    const empty = makePool({ strategy }, keys(...NAMES)).engine;
    const a = Array.from({ length: 8 }, () => pickName(plain));
    const b = Array.from({ length: 8 }, () => pickName(empty, []));
    expect(b).toEqual(a);
  });

  it("a failover loop tries each usable key exactly once, then refuses", () => {
    const { engine } = makePool({ strategy }, keys(...NAMES));
    engine.report({ keyId: idOf("d") }, { kind: "invalidKey" });
    const tried = new Set<string>();
    for (;;) {
      const r = engine.pick(tried);
      if (!r.ok) break;
      expect(tried.has(r.keyId)).toBe(false);
      tried.add(r.keyId);
      engine.report({ leaseId: r.leaseId }, { kind: "serverError", statusCode: 502 });
    }
    expect(tried).toEqual(new Set([idOf("a"), idOf("b"), idOf("c")]));
  });

  it("opens a lease on the key it hands out, and only on it", () => {
    const { engine } = makePool({ strategy }, keys("a", "b"));
    const r = engine.pick(new Set([idOf("a")]));
    if (!r.ok) throw new Error("no key");
    expect(r.keyId).toBe(idOf("b"));
    expect(r.key).toBe("sk-test-b-0123456789abcdef");
    expect(r.strategy).toBe(strategy);
    expect(engine.openLeases).toBe(1);
    expect(engine.leaseKeyId(r.leaseId)).toBe(idOf("b"));
    const views = new Map(engine.keys().map((k) => [k.id, k]));
    expect(views.get(idOf("a"))).toMatchObject({ requests: 0, inFlight: 0 });
    expect(views.get(idOf("b"))).toMatchObject({ requests: 1, inFlight: 1 });
  });

  it("passes over a key at its request limit as well as the excluded ones", () => {
    const entries: KeyEntry[] = keys("a", "b", "c").map((e, i) =>
      i === 0 ? { ...e, limits: { requestsPerMinute: 1 } } : e,
    );
    const { engine } = makePool({ strategy }, entries);
    expect(pickName(engine, ["b", "c"])).toBe("a");
    expect(pickName(engine, ["b", "c"])).toBe("none");
    expect(pickName(engine, ["b"])).toBe("c");
  });
});

describe("pick with exclude: each strategy's order", () => {
  it("RoundRobin: the excluded key goes to the end of the round", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, keys("a", "b", "c"));
    expect([pickName(engine, ["a"]), pickName(engine), pickName(engine), pickName(engine)]).toEqual([
      "b",
      "c",
      "a",
      "b",
    ]);
  });

  it("RoundRobin: a key not next in turn can be excluded without disturbing the round", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, keys("a", "b", "c"));
    expect([pickName(engine, ["b"]), pickName(engine), pickName(engine), pickName(engine)]).toEqual([
      "a",
      "b",
      "c",
      "a",
    ]);
  });

  it("RoundRobin: over many picks excluding one key, the others alternate evenly", () => {
    const { engine } = makePool({ strategy: "RoundRobin" }, keys("a", "b", "c"));
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 100; i++) {
      const name = pickName(engine, ["b"]);
      counts[name] = (counts[name] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 50, b: 0, c: 50 });
  });

  it("LeastRecentlyUsed: the excluded key keeps its place as the least recently used", () => {
    const { engine } = makePool({ strategy: "LeastRecentlyUsed" }, keys("a", "b", "c"));
    expect(pickName(engine, ["a"])).toBe("b");
    expect(pickName(engine)).toBe("a");
    expect(pickName(engine)).toBe("c");
    expect(pickName(engine)).toBe("b");
  });

  it("LeastLoaded: the least loaded key not excluded", () => {
    const { engine } = makePool({ strategy: "LeastLoaded" }, keys("a", "b", "c"));
    expect(pickName(engine, undefined, false)).toBe("a"); // a now has an open lease
    expect(pickName(engine, ["b"], false)).toBe("c");
    expect(pickName(engine, undefined, false)).toBe("b"); // b is still the least loaded
  });

  it("Weighted: the excluded key is not charged a turn", () => {
    const entries: KeyEntry[] = keys("a", "b", "c").map((e, i) => ({
      ...e,
      weight: [10, 1, 1][i] as number,
    }));
    const { engine } = makePool({ strategy: "Weighted" }, entries);
    expect(pickName(engine, ["a"])).toBe("b");
    const next = Array.from({ length: 10 }, () => pickName(engine));
    // a is picked first again and takes most of the turns; b, just used, waits longest.
    expect(next[0]).toBe("a");
    expect(next.filter((n) => n === "a").length).toBeGreaterThanOrEqual(8);
  });
});
