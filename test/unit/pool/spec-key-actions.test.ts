/**
 * spec.disabledKeys and spec.drainedKeys: one key switched off, or taken out of the pool while its
 * Secret still holds it, by the spec alone (what `kubectl keypool disable|enable|drain` edit).
 * Level-triggered: the engine's state follows the lists, also after a restart (the status keeps
 * which Disabled keys the spec disabled) and whatever other replicas' views say.
 */
import { describe, expect, it } from "vitest";
import { KeyPoolSpec, type KeyPoolSpecInput } from "../../../src/api/keypool.ts";
import type { KeyPoolStatus } from "../../../src/api/status.ts";
import { snapshotFromStatus, toKeyStatus } from "../../../src/controller/status.ts";
import { applyPool } from "../../../src/pool/apply.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import type { KeyTransitionEvent } from "../../../src/pool/engine.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";
import { PoolRegistry } from "../../../src/pool/registry.ts";
import type { EngineSnapshot } from "../../../src/pool/snapshot.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const REF = { namespace: "ai", name: "openai-prod" };

const stateOf = (engine: ReturnType<typeof makePool>["engine"], name: string) =>
  engine.keys().find((k) => k.id === idOf(name));

function picks(engine: ReturnType<typeof makePool>["engine"], n: number): Set<string> {
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = engine.pick();
    if (r.ok) {
      ids.add(r.keyId);
      engine.report({ leaseId: r.leaseId }, { kind: "success" });
    }
  }
  return ids;
}

describe("spec.disabledKeys in the engine", () => {
  it("a listed key is Disabled and never handed out; off the list it is Healthy again", () => {
    const { engine, transitions } = makePool({}, keys("a", "b"));
    engine.setDisabledKeys(new Set([idOf("a")]));
    expect(stateOf(engine, "a")).toMatchObject({ state: "Disabled", disabledBySpec: true });
    expect(picks(engine, 10)).toEqual(new Set([idOf("b")]));

    engine.setDisabledKeys(new Set());
    expect(stateOf(engine, "a")?.state).toBe("Healthy");
    expect(stateOf(engine, "a")?.disabledBySpec).toBeUndefined();
    expect(transitions.map((t) => [t.from, t.to, t.reason])).toEqual([
      ["Healthy", "Disabled", "disabled_in_spec"],
      ["Disabled", "Healthy", "enabled_in_spec"],
    ]);
    expect(picks(engine, 10)).toEqual(new Set([idOf("a"), idOf("b")]));
  });

  it("neither reports nor the admin enable and reset actions turn a listed key on", () => {
    const { engine } = makePool({}, keys("a"));
    engine.setDisabledKeys(new Set([idOf("a")]));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + MINUTE });
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    engine.report({ keyId: idOf("a") }, { kind: "success" });
    expect(engine.enable(idOf("a"))).toBe(true);
    expect(engine.reset(idOf("a"))).toBe(true);
    expect(stateOf(engine, "a")?.state).toBe("Disabled");
    expect(engine.pick().ok).toBe(false);
  });

  it("leaves a key the admin action disabled alone when the list changes", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.disable(idOf("a"));
    engine.setDisabledKeys(new Set([idOf("b")]));
    engine.setDisabledKeys(new Set());
    expect(stateOf(engine, "a")?.state).toBe("Disabled");
    expect(stateOf(engine, "b")?.state).toBe("Healthy");
    expect(engine.enable(idOf("a"))).toBe(true);
    expect(stateOf(engine, "a")?.state).toBe("Healthy");
  });

  it("a listed key that joins later joins Disabled", () => {
    const { engine } = makePool({}, keys("a"));
    engine.setDisabledKeys(new Set([idOf("b")]));
    engine.setKeys(keys("a", "b"));
    expect(stateOf(engine, "b")).toMatchObject({ state: "Disabled", disabledBySpec: true });
  });

  it("a listed key back from Draining comes back Disabled, without a moment of being usable", () => {
    const { engine, transitions } = makePool({}, keys("a", "b"));
    engine.setKeys(keys("b"));
    expect(stateOf(engine, "a")?.state).toBe("Draining");
    engine.setDisabledKeys(new Set([idOf("a")]));
    engine.setKeys(keys("a", "b"));
    expect(stateOf(engine, "a")?.state).toBe("Disabled");
    expect(transitions.filter((t) => t.keyId === idOf("a")).map((t) => t.to)).toEqual([
      "Draining",
      "Disabled",
    ]);
  });

  it("another replica's newer view does not turn a listed key on", () => {
    const { engine, clock } = makePool({}, keys("a"));
    engine.setDisabledKeys(new Set([idOf("a")]));
    clock.advance(10 * SECOND);
    const newer: EngineSnapshot = {
      version: 1,
      takenAtMs: clock.now(),
      keys: [
        {
          id: idOf("a"),
          state: "Healthy",
          sinceMs: clock.now(),
          healthScore: 100,
          requests: 7,
          errors: 0,
          consecutiveErrors: 0,
        },
      ],
    };
    engine.merge(newer, { authoritative: true });
    expect(stateOf(engine, "a")).toMatchObject({ state: "Disabled", requests: 7 });
  });
});

describe("the status keeps which Disabled keys the spec disabled", () => {
  it.each<[string, string[], string]>([
    ["still listed after a restart: Disabled", [idOf("a")], "Disabled"],
    ["taken off the list while no operator ran: Healthy", [], "Healthy"],
  ])("a key the spec disabled, %s", (_name, listed, expected) => {
    const before = makePool({}, keys("a"));
    before.engine.setDisabledKeys(new Set([idOf("a")]));
    const status: KeyPoolStatus = { keyStatuses: before.engine.keys().map(toKeyStatus) };
    expect(status.keyStatuses?.[0]).toMatchObject({ state: "Disabled", disabledBySpec: true });

    const after = makePool({}, []);
    after.engine.restore(snapshotFromStatus(status, T0));
    after.engine.setDisabledKeys(new Set(listed));
    after.engine.setKeys(keys("a"));
    expect(stateOf(after.engine, "a")?.state).toBe(expected);
  });

  it("a key the admin action disabled stays Disabled after a restart", () => {
    const before = makePool({}, keys("a"));
    before.engine.disable(idOf("a"));
    const status: KeyPoolStatus = { keyStatuses: before.engine.keys().map(toKeyStatus) };
    expect(status.keyStatuses?.[0]?.disabledBySpec).toBeUndefined();

    const after = makePool({}, []);
    after.engine.restore(snapshotFromStatus(status, T0));
    after.engine.setDisabledKeys(new Set());
    after.engine.setKeys(keys("a"));
    expect(stateOf(after.engine, "a")?.state).toBe("Disabled");
  });
});

describe("applyPool with spec.disabledKeys and spec.drainedKeys", () => {
  function pool() {
    const clock = new ManualClock(T0);
    const registry = new PoolRegistry();
    const transitions: KeyTransitionEvent[] = [];
    const apply = (spec: Partial<KeyPoolSpecInput>, entries: KeyEntry[] = keys("a", "b")) =>
      applyPool(registry, {
        ref: REF,
        uid: "u1",
        generation: 1,
        spec: KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "s" } }], ...spec }),
        entries,
        engine: { clock, newLeaseToken: () => 1, onTransition: (e) => transitions.push(e) },
      });
    return { clock, apply, transitions };
  }

  it("a drained key leaves the pool as if it left its Secret: Draining for drainPeriod, then gone", () => {
    const { clock, apply } = pool();
    apply({});
    const drained = apply({ drainedKeys: [idOf("a")], rotation: { drainPeriod: "2m" } });
    expect(drained.removed).toEqual([idOf("a")]);
    const engine = drained.runtime.engine;
    expect(engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({
      state: "Draining",
      untilMs: T0 + 2 * MINUTE,
    });
    expect(picks(engine, 10)).toEqual(new Set([idOf("b")]));
    // Calls still in flight on it may report.
    expect(engine.report({ keyId: idOf("a") }, { kind: "success" })).toMatchObject({ ok: true });
    clock.advance(2 * MINUTE);
    expect(engine.keys().map((k) => k.id)).toEqual([idOf("b")]);
  });

  it("a key taken off drainedKeys before its drain ends resumes the state it had", () => {
    const { apply } = pool();
    const engine = apply({}).runtime.engine;
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 5 * MINUTE });
    apply({ drainedKeys: [idOf("a")] });
    const back = apply({});
    expect(back.added).toEqual([]);
    expect(engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({
      state: "RateLimited",
      untilMs: T0 + 5 * MINUTE,
    });
  });

  it("disabledKeys follows every apply, also when the Secrets did not change", () => {
    const { apply, transitions } = pool();
    const engine = apply({}).runtime.engine;
    apply({ disabledKeys: [idOf("b")] });
    expect(engine.keys().map((k) => k.state)).toEqual(["Healthy", "Disabled"]);
    apply({});
    expect(engine.keys().map((k) => k.state)).toEqual(["Healthy", "Healthy"]);
    expect(transitions.map((t) => t.reason)).toEqual(["disabled_in_spec", "enabled_in_spec"]);
  });

  it("refuses ids that are not key ids, in the CRD and at run time alike", () => {
    const parsed = KeyPoolSpec.safeParse({
      provider: "openai",
      keys: [{ secretRef: { name: "s" } }],
      disabledKeys: ["sk-live-not-an-id"],
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.message).toContain("12 lower-case hex");
  });
});
