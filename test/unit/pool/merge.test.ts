/**
 * Merging another replica's view of the keys (the leader's status) into an engine: the newer
 * fact wins per key, so followers follow the leader and a new leader loses nothing either knew.
 */
import { describe, expect, it } from "vitest";
import type { KeyState } from "../../../src/api/keypool.ts";
import type { EngineSnapshot, KeySnapshot } from "../../../src/pool/snapshot.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;

function remote(name: string, state: KeyState, extra: Partial<KeySnapshot> = {}): EngineSnapshot {
  return {
    version: 1,
    takenAtMs: T0,
    keys: [
      {
        id: idOf(name),
        state,
        healthScore: 100,
        requests: 0,
        errors: 0,
        consecutiveErrors: 0,
        ...extra,
      },
    ],
  };
}

const stateOf = (engine: ReturnType<typeof makePool>["engine"], name = "a") =>
  engine.keys().find((k) => k.id === idOf(name));

describe("merging the leader's view", () => {
  it("a key the leader saw rate-limited later than this replica's last change stops being handed out here", () => {
    const { engine, clock, transitions } = makePool({}, keys("a", "b"));
    clock.advance(10 * SECOND);
    engine.merge(remote("a", "RateLimited", { sinceMs: clock.now(), untilMs: clock.now() + 300 * SECOND }));
    expect(stateOf(engine)).toMatchObject({ state: "RateLimited", untilMs: clock.now() + 300 * SECOND });
    for (let i = 0; i < 5; i++) {
      const picked = engine.pick();
      expect(picked.ok && picked.keyId).toBe(idOf("b"));
    }
    expect(transitions).toEqual([
      expect.objectContaining({ to: "RateLimited", merged: true, keyId: idOf("a") }),
    ]);
    clock.advance(300 * SECOND);
    expect(stateOf(engine)?.state).toBe("Healthy");
  });

  it.each<[string, KeyState, number, KeyState, number, KeyState]>([
    ["a newer Invalid mark wins over Healthy", "Healthy", 1, "Invalid", 2, "Invalid"],
    ["an older Invalid mark loses to a newer recovery here", "Healthy", 3, "Invalid", 2, "Healthy"],
    [
      "a newer recovery there (a probe, a reset) ends an Invalid mark here",
      "Invalid",
      2,
      "Healthy",
      3,
      "Healthy",
    ],
    ["Disabled there, later, wins", "Degraded", 1, "Disabled", 2, "Disabled"],
    ["on a tie the more restrictive state wins", "Healthy", 2, "Invalid", 2, "Invalid"],
    ["on a tie the more restrictive local state stays", "Invalid", 2, "Healthy", 2, "Invalid"],
  ])("%s", (_name, localState, localSince, remoteState, remoteSince, expected) => {
    const { engine, clock } = makePool({}, keys("a"));
    const base = clock.now();
    engine.restore(remote("a", localState, { sinceMs: base + localSince * SECOND }));
    clock.advance(10 * SECOND);
    engine.merge(remote("a", remoteState, { sinceMs: base + remoteSince * SECOND }));
    expect(stateOf(engine)?.state).toBe(expected);
  });

  it("two cooldowns keep the later deadline, whichever side has it", () => {
    const { engine, clock } = makePool({}, keys("a", "b"));
    const now = clock.now();
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: now + 60 * SECOND });
    engine.merge(remote("a", "RateLimited", { sinceMs: now - SECOND, untilMs: now + 300 * SECOND }));
    expect(stateOf(engine)?.untilMs).toBe(now + 300 * SECOND);
    engine.report({ keyId: idOf("b") }, { kind: "rateLimited", untilMs: now + 300 * SECOND });
    engine.merge(remote("b", "RateLimited", { sinceMs: now + SECOND, untilMs: now + 60 * SECOND }));
    expect(stateOf(engine, "b")?.untilMs).toBe(now + 300 * SECOND);
  });

  it("a cooldown that is already over is not taken", () => {
    const { engine, clock, transitions } = makePool({}, keys("a"));
    clock.advance(100 * SECOND);
    engine.merge(remote("a", "RateLimited", { sinceMs: clock.now() - SECOND, untilMs: clock.now() - 1 }));
    expect(stateOf(engine)?.state).toBe("Healthy");
    expect(transitions).toEqual([]);
  });

  it("a key this replica learned was rate-limited after the leader's last word stays rate-limited", () => {
    const { engine, clock } = makePool({}, keys("a"));
    const leaderSaid = clock.now() + SECOND;
    clock.advance(5 * SECOND);
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: clock.now() + 60 * SECOND });
    engine.merge(remote("a", "Healthy", { sinceMs: leaderSaid }));
    expect(stateOf(engine)?.state).toBe("RateLimited");
  });

  it("keeps the larger counters, and the later last error", () => {
    const { engine, clock } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "serverError", statusCode: 500, reason: "http_500" });
    engine.merge(
      remote("a", "Healthy", {
        requests: 40,
        errors: 0,
        lastError: { code: 429, reason: "rate_limit_exceeded", atMs: clock.now() + 1 },
      }),
    );
    expect(stateOf(engine)).toMatchObject({ requests: 40, errors: 1, lastError: { code: 429 } });
  });

  it("Draining is this replica's own knowledge: neither taken nor overridden", () => {
    const { engine, clock } = makePool({}, keys("a", "b"));
    engine.setKeys(keys("b"));
    clock.advance(SECOND);
    engine.merge(remote("a", "Invalid", { sinceMs: clock.now() }));
    expect(stateOf(engine)?.state).toBe("Draining");
    engine.merge(remote("b", "Draining", { sinceMs: clock.now(), untilMs: clock.now() + 600 * SECOND }));
    expect(stateOf(engine, "b")?.state).toBe("Healthy");
  });

  it("a key not here yet takes the view when it arrives (its Secret is late)", () => {
    const { engine, clock } = makePool({}, keys("b"));
    engine.merge(remote("a", "Invalid", { sinceMs: clock.now() }));
    clock.advance(SECOND);
    engine.setKeys(keys("a", "b"));
    expect(stateOf(engine)?.state).toBe("Invalid");
  });

  it("a snapshot keeps when each key entered its state, so a restart merges as well as it serves", () => {
    const { engine, clock } = makePool({}, keys("a"));
    clock.advance(7 * SECOND);
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey", statusCode: 401 });
    const saved = engine.snapshot().keys[0];
    expect(saved?.sinceMs).toBe(clock.now());
    expect(stateOf(engine)?.sinceMs).toBe(clock.now());
  });
});
