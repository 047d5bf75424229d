import { describe, expect, it } from "vitest";
import type { Outcome, OutcomeKind } from "../../../src/pool/outcome.ts";
import { EngineSnapshot } from "../../../src/pool/snapshot.ts";
import { idOf, keys, makePool } from "./helpers.ts";

const latencyOf = (engine: ReturnType<typeof makePool>["engine"], name = "a") =>
  engine.keys().find((k) => k.id === idOf(name))?.latencyMs;

describe("a key's average latency (exponentially weighted, from the calls that report one)", () => {
  it.each<[string, Array<number | undefined>, number | undefined]>([
    ["no call reported a latency: there is none", [], undefined],
    ["the first call's latency is the average", [6000], 6000],
    ["each later call moves it a fifth of the way", [1000, 2000], 1200],
    ["one slow call among fast ones moves it a fifth, not all the way", [100, 100, 100, 5100], 1100],
    ["a key that turns slow shows it within ten calls", [100, ...Array<number>(10).fill(6000)], 5366],
    ["a call without a latency leaves the average as it was", [800, undefined, undefined], 800],
    ["a negative or non-finite latency is ignored", [800, -5, Number.NaN, Number.POSITIVE_INFINITY], 800],
    ["the view rounds it to whole milliseconds", [10.4, 10.9], 11],
  ])("%s", (_name, latencies, expected) => {
    const { engine } = makePool({}, keys("a"));
    for (const latencyMs of latencies) {
      const r = engine.pick();
      if (!r.ok) throw new Error("no key");
      engine.report(
        { leaseId: r.leaseId },
        { kind: "success", ...(latencyMs === undefined ? {} : { latencyMs }) },
      );
    }
    expect(latencyOf(engine)).toBe(expected);
  });

  it.each<[string, OutcomeKind, boolean]>([
    ["a success counts", "success", true],
    ["a server error counts (a slow 500 is a slow key to call)", "serverError", true],
    ["a network error counts (a timeout is the slowest answer)", "networkError", true],
    ["a rate-limit answer counts", "rateLimited", true],
    ["a provider overload counts", "providerOverloaded", true],
    ["a request error does not: it says nothing about the key", "requestError", false],
  ])("%s", (_name, kind, counts) => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind, latencyMs: 7000 } satisfies Outcome);
    expect(latencyOf(engine)).toBe(counts ? 7000 : undefined);
  });

  it("is per key: one key's slow calls do not show on another", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.report({ keyId: idOf("a") }, { kind: "success", latencyMs: 9000 });
    engine.report({ keyId: idOf("b") }, { kind: "success", latencyMs: 300 });
    expect([latencyOf(engine, "a"), latencyOf(engine, "b")]).toEqual([9000, 300]);
  });

  it("survives a snapshot and restore (the state file of keypool serve)", () => {
    const first = makePool({}, keys("a"));
    first.engine.report({ keyId: idOf("a") }, { kind: "success", latencyMs: 1000 });
    first.engine.report({ keyId: idOf("a") }, { kind: "success", latencyMs: 2000 });
    const second = makePool({}, []);
    second.engine.restore(EngineSnapshot.parse(JSON.parse(JSON.stringify(first.engine.snapshot()))));
    second.engine.setKeys(keys("a"));
    expect(latencyOf(second.engine)).toBe(1200);
    second.engine.report({ keyId: idOf("a") }, { kind: "success", latencyMs: 2200 });
    expect(latencyOf(second.engine)).toBe(1400);
  });
});
