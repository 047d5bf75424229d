import { describe, expect, it } from "vitest";
import type { KeyState } from "../../../src/api/keypool.ts";
import { EngineSnapshot } from "../../../src/pool/snapshot.ts";
import { StandaloneState } from "../../../src/sources/files/state-file.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

type Outcome = Parameters<ReturnType<typeof makePool>["engine"]["report"]>[1];

/** Through JSON as `keypool serve`'s state file holds it (its schema, no file: unit tests do no I/O). */
function throughStateFile(snapshot: EngineSnapshot): EngineSnapshot {
  const text = JSON.stringify({ version: 1, pools: { "default/p": snapshot }, addedKeys: {} });
  return StandaloneState.parse(JSON.parse(text)).pools["default/p"] as EngineSnapshot;
}

/** Through JSON and the snapshot schema alone (what a status or any other store would parse). */
function throughJson(snapshot: EngineSnapshot): EngineSnapshot {
  return EngineSnapshot.parse(JSON.parse(JSON.stringify(snapshot)));
}

describe("a key saved while draining resumes its earlier state when it returns after a restart", () => {
  it.each<
    [
      string,
      Outcome,
      (s: EngineSnapshot) => EngineSnapshot,
      "restoreFirst" | "keysFirst",
      KeyState,
      number | undefined,
    ]
  >([
    [
      "a rate limit keeps its end through the state file (restore, then the keys arrive)",
      { kind: "rateLimited", untilMs: T0 + MINUTE },
      throughStateFile,
      "restoreFirst",
      "RateLimited",
      T0 + MINUTE,
    ],
    [
      "a rate limit keeps its end through the snapshot schema (the keys are there, then restore)",
      { kind: "rateLimited", untilMs: T0 + MINUTE },
      throughJson,
      "keysFirst",
      "RateLimited",
      T0 + MINUTE,
    ],
    [
      "an exhausted quota keeps its end",
      { kind: "quotaExhausted", untilMs: T0 + 30 * MINUTE },
      throughStateFile,
      "restoreFirst",
      "QuotaExhausted",
      T0 + 30 * MINUTE,
    ],
    [
      "an Invalid mark stays (it has no end by time)",
      { kind: "invalidKey", statusCode: 401 },
      throughStateFile,
      "restoreFirst",
      "Invalid",
      undefined,
    ],
  ])("%s", (_name, outcome, store, order, state, untilMs) => {
    const first = makePool({}, keys("a", "b"));
    first.engine.report({ keyId: idOf("a") }, outcome);
    first.engine.setKeys(keys("b")); // a leaves its Secret: Draining, its state kept for its return
    const saved = store(first.engine.snapshot());

    const second = makePool({}, order === "keysFirst" ? keys("b") : []);
    second.clock.set(T0 + 10 * SECOND);
    if (order === "keysFirst") second.engine.setKeys(keys("a", "b"));
    second.engine.restore(saved);
    second.engine.setKeys(keys("a", "b")); // a is back in its Secret
    expect(second.engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({ state, untilMs });
    expect(second.engine.pick()).toMatchObject({ ok: true, keyId: idOf("b") });
  });

  it("a cooldown that ended while the operator was down is over when the key returns", () => {
    const first = makePool({}, keys("a", "b"));
    first.engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 5 * SECOND });
    first.engine.setKeys(keys("b"));
    const second = makePool({}, []);
    second.clock.set(T0 + MINUTE);
    second.engine.restore(throughStateFile(first.engine.snapshot()));
    second.engine.setKeys(keys("a", "b"));
    expect(second.engine.keys().find((k) => k.id === idOf("a"))?.state).toBe("Healthy");
  });

  it("the view of a draining key says what it returns to, for stores built from views (the status)", () => {
    const { engine } = makePool({}, keys("a", "b"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + MINUTE });
    engine.setKeys(keys("b"));
    expect(engine.keys().find((k) => k.id === idOf("a"))).toMatchObject({
      state: "Draining",
      stateBeforeDrain: "RateLimited",
      stateBeforeDrainUntilMs: T0 + MINUTE,
    });
  });
});
