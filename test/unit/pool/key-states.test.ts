/**
 * Every state transition, driven through the engine as a caller would: reports, probes,
 * operator actions and the passing of time.
 */
import { describe, expect, it } from "vitest";
import type { Outcome } from "../../../src/pool/outcome.ts";
import { idOf, keys, makePool, T0 } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function stateOf(engine: ReturnType<typeof makePool>["engine"], name = "a") {
  return engine.keys().find((k) => k.id === idOf(name));
}

const serverError: Outcome = { kind: "serverError", statusCode: 500, reason: "http_500" };

describe("outcome-driven transitions", () => {
  it.each<[string, Outcome, string, number | undefined]>([
    [
      "a 429 with retry-after makes the key RateLimited until then",
      { kind: "rateLimited", untilMs: T0 + 30 * SECOND },
      "RateLimited",
      T0 + 30 * SECOND,
    ],
    [
      "a 429 without a deadline rests the key for rateLimitCooldown",
      { kind: "rateLimited" },
      "RateLimited",
      T0 + MINUTE,
    ],
    [
      "an exhausted quota holds the key for quotaCooldown (1 h)",
      { kind: "quotaExhausted" },
      "QuotaExhausted",
      T0 + 60 * MINUTE,
    ],
    [
      "an exhausted daily quota holds until the provider's reset",
      { kind: "quotaExhausted", untilMs: T0 + 5 * 3600_000 },
      "QuotaExhausted",
      T0 + 5 * 3600_000,
    ],
    [
      "an auth failure makes the key Invalid with no end",
      { kind: "invalidKey", statusCode: 401 },
      "Invalid",
      undefined,
    ],
    ["one server error leaves it Healthy", serverError, "Healthy", undefined],
    [
      "an overloaded provider does not blame the key",
      { kind: "providerOverloaded", statusCode: 529 },
      "Healthy",
      undefined,
    ],
    [
      "a bad request says nothing about the key",
      { kind: "requestError", statusCode: 400 },
      "Healthy",
      undefined,
    ],
  ])("%s", (_name, outcome, state, until) => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, outcome);
    expect(stateOf(engine)?.state).toBe(state);
    expect(stateOf(engine)?.untilMs).toBe(until);
  });

  it("goes Degraded after failureThreshold consecutive errors, and a success brings it back", () => {
    const { engine, transitions } = makePool({ failureThreshold: 3 }, keys("a"));
    engine.report({ keyId: idOf("a") }, serverError);
    engine.report({ keyId: idOf("a") }, { kind: "networkError", reason: "timeout" });
    expect(stateOf(engine)?.state).toBe("Healthy");
    engine.report({ keyId: idOf("a") }, serverError);
    expect(stateOf(engine)?.state).toBe("Degraded");
    // Degraded keys are still handed out.
    expect(engine.pick().ok).toBe(true);
    engine.report({ keyId: idOf("a") }, { kind: "success" });
    expect(stateOf(engine)?.state).toBe("Healthy");
    expect(transitions.map((t) => `${t.from}->${t.to}`)).toEqual(["Healthy->Degraded", "Degraded->Healthy"]);
  });

  it("a caller's 'degraded' makes the key Degraded at once; it recovers after degradedCooldown quiet", () => {
    const { engine, clock, transitions } = makePool(
      { failureThreshold: 3, degradedCooldownMs: 5 * MINUTE },
      keys("a"),
    );
    engine.report({ keyId: idOf("a") }, { kind: "degraded", reason: "reported_degraded" });
    expect(stateOf(engine)?.state).toBe("Degraded");
    expect(engine.pick().ok).toBe(true);
    clock.advance(4 * MINUTE);
    // Another one during the quiet period starts it again.
    engine.report({ keyId: idOf("a") }, { kind: "degraded" });
    clock.advance(5 * MINUTE - 1);
    expect(stateOf(engine)?.state).toBe("Degraded");
    clock.advance(1);
    expect(stateOf(engine)?.state).toBe("Healthy");
    expect(transitions.map((t) => `${t.from}->${t.to}:${t.reason}`)).toEqual([
      "Healthy->Degraded:reported_degraded",
      "Degraded->Healthy:quiet_period_ended",
    ]);
  });

  it.each(["Invalid", "RateLimited", "Disabled"] as const)(
    "a caller's 'degraded' leaves a %s key as it is",
    (state) => {
      const { engine } = makePool({}, keys("a"));
      if (state === "Invalid") engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
      if (state === "RateLimited") engine.report({ keyId: idOf("a") }, { kind: "rateLimited" });
      if (state === "Disabled") engine.disable(idOf("a"));
      engine.report({ keyId: idOf("a") }, { kind: "degraded" });
      expect(stateOf(engine)?.state).toBe(state);
    },
  );

  it("a success between errors resets the consecutive count", () => {
    const { engine } = makePool({ failureThreshold: 2 }, keys("a"));
    engine.report({ keyId: idOf("a") }, serverError);
    engine.report({ keyId: idOf("a") }, { kind: "success" });
    engine.report({ keyId: idOf("a") }, serverError);
    expect(stateOf(engine)?.state).toBe("Healthy");
  });

  it("a Degraded key recovers after degradedCooldown without errors", () => {
    const { engine, clock } = makePool({ failureThreshold: 1, degradedCooldownMs: 5 * MINUTE }, keys("a"));
    engine.report({ keyId: idOf("a") }, serverError);
    clock.advance(5 * MINUTE - 1);
    expect(stateOf(engine)?.state).toBe("Degraded");
    clock.advance(1);
    expect(stateOf(engine)?.state).toBe("Healthy");
  });

  it("a second 429 during a cooldown extends it to the later deadline and never shortens it", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 30 * SECOND });
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 10 * SECOND });
    expect(stateOf(engine)?.untilMs).toBe(T0 + 30 * SECOND);
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 90 * SECOND });
    expect(stateOf(engine)?.untilMs).toBe(T0 + 90 * SECOND);
  });

  it("a rate limit does not override a longer quota hold", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "quotaExhausted" });
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited", untilMs: T0 + 30 * SECOND });
    expect(stateOf(engine)?.state).toBe("QuotaExhausted");
    expect(stateOf(engine)?.untilMs).toBe(T0 + 60 * MINUTE);
  });

  it("a success whose headers say nothing is left rests the key until the reset", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report(
      { keyId: idOf("a") },
      { kind: "success", rateLimit: { remainingRequests: 0, resetRequestsAtMs: T0 + 6 * SECOND } },
    );
    expect(stateOf(engine)?.state).toBe("RateLimited");
    expect(stateOf(engine)?.untilMs).toBe(T0 + 6 * SECOND);
  });
});

describe("time-driven transitions", () => {
  it.each([
    ["RateLimited", { kind: "rateLimited", untilMs: T0 + 30 * SECOND } as Outcome, 30 * SECOND],
    ["QuotaExhausted", { kind: "quotaExhausted" } as Outcome, 60 * MINUTE],
  ])("%s ends exactly at its deadline", (_state, outcome, afterMs) => {
    const { engine, clock, transitions } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, outcome);
    clock.advance(afterMs - 1);
    expect(engine.pick().ok).toBe(false);
    clock.advance(1);
    expect(engine.pick().ok).toBe(true);
    expect(transitions.at(-1)).toMatchObject({ to: "Healthy", reason: "cooldown_ended" });
  });

  it("Invalid never recovers by time", () => {
    const { engine, clock } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey", statusCode: 401 });
    clock.advance(365 * 24 * 60 * MINUTE);
    expect(stateOf(engine)?.state).toBe("Invalid");
    expect(engine.pick()).toEqual({ ok: false, retryAtMs: undefined });
  });
});

describe("recovery of Invalid and QuotaExhausted keys", () => {
  it("a successful probe brings an Invalid key back", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    engine.report({ keyId: idOf("a") }, { kind: "success" }, "probe");
    expect(stateOf(engine)?.state).toBe("Healthy");
  });

  it("a successful probe does not end a quota hold early (list-models works without credit)", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "quotaExhausted" });
    engine.report({ keyId: idOf("a") }, { kind: "success" }, "probe");
    expect(stateOf(engine)?.state).toBe("QuotaExhausted");
  });

  it("a late success report from an older call does not bring an Invalid key back", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    engine.report({ keyId: idOf("a") }, { kind: "success" }, "report");
    expect(stateOf(engine)?.state).toBe("Invalid");
  });

  it("an explicit reset brings an Invalid key back", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    expect(engine.reset(idOf("a"))).toBe(true);
    expect(stateOf(engine)?.state).toBe("Healthy");
  });

  it("a changed Secret value is a new, Healthy key while the old one drains", () => {
    const { engine } = makePool({}, keys("a"));
    engine.report({ keyId: idOf("a") }, { kind: "invalidKey" });
    engine.setKeys(keys("a2"));
    expect(stateOf(engine, "a2")?.state).toBe("Healthy");
    expect(stateOf(engine, "a")?.state).toBe("Draining");
  });
});

describe("operator actions", () => {
  it("a Disabled key is never handed out until enabled, and ignores rate limits meanwhile", () => {
    const { engine } = makePool({}, keys("a"));
    engine.disable(idOf("a"));
    engine.report({ keyId: idOf("a") }, { kind: "rateLimited" });
    expect(stateOf(engine)?.state).toBe("Disabled");
    expect(engine.pick().ok).toBe(false);
    engine.enable(idOf("a"));
    expect(engine.pick().ok).toBe(true);
  });
});

describe("health score", () => {
  it("decays with failures and recovers with successes", () => {
    const { engine } = makePool({ failureThreshold: 100 }, keys("a"));
    expect(stateOf(engine)?.healthScore).toBe(100);
    for (let i = 0; i < 10; i++) engine.report({ keyId: idOf("a") }, serverError);
    const low = stateOf(engine)?.healthScore ?? 100;
    expect(low).toBeLessThan(40);
    for (let i = 0; i < 10; i++) engine.report({ keyId: idOf("a") }, { kind: "success" });
    expect(stateOf(engine)?.healthScore).toBeGreaterThan(low);
  });
});
