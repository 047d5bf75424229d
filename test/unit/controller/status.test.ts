import { describe, expect, it } from "vitest";
import type { KeyView } from "../../../src/pool/engine.ts";
import { setCondition } from "../../../src/controller/conditions.ts";
import { desiredStatus, type Evaluation, snapshotFromStatus } from "../../../src/controller/status.ts";
import type { SourceProblem } from "../../../src/sources/kubernetes/secrets.ts";

const T = new Date("2026-11-22T10:00:00Z");
const later = new Date("2026-11-22T10:05:00Z");

function view(id: string, state: KeyView["state"], extra: Partial<KeyView> = {}): KeyView {
  return {
    id,
    masked: "sk-...abcd",
    source: `secret/s#${id}`,
    quotaGroup: undefined,
    state,
    untilMs: undefined,
    healthScore: 100,
    requests: 0,
    errors: 0,
    consecutiveErrors: 0,
    inFlight: 0,
    lastUsedMs: undefined,
    lastError: undefined,
    weight: 10,
    sinceMs: undefined,
    ...extra,
  };
}

describe("conditions", () => {
  it("keep lastTransitionTime unless the status flips", () => {
    const first = setCondition([], { type: "Ready", status: "True", reason: "A", message: "a" }, 1, T);
    const same = setCondition(first, { type: "Ready", status: "True", reason: "B", message: "b" }, 2, later);
    expect(same[0]).toMatchObject({
      reason: "B",
      observedGeneration: 2,
      lastTransitionTime: "2026-11-22T10:00:00Z",
    });
    const flipped = setCondition(
      same,
      { type: "Ready", status: "False", reason: "C", message: "c" },
      2,
      later,
    );
    expect(flipped[0]?.lastTransitionTime).toBe("2026-11-22T10:05:00Z");
  });
});

describe("the status a pool should have", () => {
  it("starts with Ready=Unknown and Reconciling=True, so kstatus never sees a status without Ready", () => {
    const status = desiredStatus(undefined, { kind: "reconciling" }, 1, T);
    expect(status.conditions?.map((c) => [c.type, c.status])).toEqual([
      ["Ready", "Unknown"],
      ["Reconciling", "True"],
    ]);
  });

  it("is Ready and Degraded when some keys are usable and some are not", () => {
    const views = [
      view("a", "Healthy"),
      view("b", "RateLimited", { untilMs: T.getTime() + 30_000 }),
      view("c", "Invalid"),
    ];
    const status = desiredStatus(undefined, { kind: "evaluated", views, problems: [], emptyValues: 0 }, 3, T);
    const byType = Object.fromEntries(status.conditions?.map((c) => [c.type, c]) ?? []);
    expect(byType.Ready).toMatchObject({ status: "True", reason: "KeysAvailable", observedGeneration: 3 });
    expect(byType.Degraded).toMatchObject({ status: "True", reason: "KeysUnusable" });
    expect(byType.Degraded?.message).toContain("1 RateLimited");
    expect(byType.Stalled?.status).toBe("False");
    expect(status.keys).toMatchObject({ total: 3, usable: 1 });
    expect(status.keys?.byState).toMatchObject({ Healthy: 1, RateLimited: 1, Invalid: 1, Draining: 0 });
    expect(status.keyStatuses?.[1]?.until).toBe("2026-11-22T10:00:30Z");
  });

  it("is not Ready, with the reason, when no key is usable", () => {
    const status = desiredStatus(
      undefined,
      { kind: "evaluated", views: [view("a", "Invalid")], problems: [], emptyValues: 0 },
      1,
      T,
    );
    expect(status.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "False",
      reason: "NoUsableKeys",
    });
  });

  it("keeps the probe request last handled, whatever the evaluation", () => {
    const previous = { lastProbeRequest: "2026-11-22T09:00:00Z" };
    const evaluations: Evaluation[] = [
      { kind: "reconciling" },
      { kind: "invalidSpec", message: "spec.keys: bad" },
      { kind: "evaluated", views: [view("a", "Healthy")], problems: [], emptyValues: 0 },
    ];
    for (const evaluation of evaluations) {
      expect(desiredStatus(previous, evaluation, 2, T).lastProbeRequest).toBe("2026-11-22T09:00:00Z");
    }
    const fresh = desiredStatus(
      undefined,
      { kind: "evaluated", views: [view("a", "Healthy")], problems: [], emptyValues: 0 },
      1,
      T,
    );
    expect(fresh).not.toHaveProperty("lastProbeRequest");
  });

  it("round-trips engine state through keyStatuses", () => {
    const views = [
      view("aaaaaaaaaaaa", "RateLimited", {
        sinceMs: T.getTime() - 1234,
        untilMs: T.getTime() + 30_000,
        requests: 7,
        errors: 2,
        lastError: { code: 429, reason: "rate_limit_exceeded", atMs: T.getTime() },
      }),
    ];
    const status = desiredStatus(undefined, { kind: "evaluated", views, problems: [], emptyValues: 0 }, 1, T);
    const snapshot = snapshotFromStatus(status, T.getTime());
    expect(status.keyStatuses?.[0]?.since).toBe("2026-11-22T09:59:58.766Z");
    expect(snapshot.keys[0]).toMatchObject({
      id: "aaaaaaaaaaaa",
      state: "RateLimited",
      sinceMs: T.getTime() - 1234,
      untilMs: T.getTime() + 30_000,
      requests: 7,
      errors: 2,
      lastError: { code: 429, reason: "rate_limit_exceeded", atMs: T.getTime() },
    });
  });
});

describe("a Draining key in the status", () => {
  it("keeps the state it returns to, so a restart does not bring it back Healthy early", () => {
    const until = T.getTime() + 90_500;
    const views = [
      view("aaaaaaaaaaaa", "Draining", {
        untilMs: T.getTime() + 600_000,
        stateBeforeDrain: "RateLimited",
        stateBeforeDrainUntilMs: until,
      }),
    ];
    const status = desiredStatus(undefined, { kind: "evaluated", views, problems: [], emptyValues: 0 }, 1, T);
    expect(status.keyStatuses?.[0]).toMatchObject({
      state: "Draining",
      stateBeforeDrain: "RateLimited",
      stateBeforeDrainUntil: "2026-11-22T10:01:31Z",
    });
    expect(snapshotFromStatus(status, T.getTime()).keys[0]).toMatchObject({
      stateBeforeDrain: "RateLimited",
      stateBeforeDrainUntilMs: T.getTime() + 91_000,
    });
  });
});

describe("honest conditions: Stalled only when nothing is served and the user must act", () => {
  const problem = (reason: SourceProblem["reason"], message = `${reason} here`): SourceProblem => ({
    reason,
    secret: "s",
    message,
  });
  const healthy = [view("a", "Healthy"), view("b", "Healthy")];
  it.each<[string, KeyView[], SourceProblem[], [string, string], [string, string], [string, string]]>([
    [
      "all keys usable",
      healthy,
      [],
      ["True", "KeysAvailable"],
      ["False", "AllKeysUsable"],
      ["False", "NoProblem"],
    ],
    [
      "a missing Secret among two",
      healthy,
      [problem("SecretNotFound")],
      ["True", "KeysAvailable"],
      ["True", "SecretNotFound"],
      ["False", "NoProblem"],
    ],
    [
      "a fallback cycle",
      healthy,
      [problem("FallbackCycle")],
      ["True", "KeysAvailable"],
      ["True", "FallbackCycle"],
      ["False", "NoProblem"],
    ],
    [
      "a missing fallback pool",
      healthy,
      [problem("FallbackPoolNotFound")],
      ["True", "KeysAvailable"],
      ["True", "FallbackPoolNotFound"],
      ["False", "NoProblem"],
    ],
    [
      "duplicate keys",
      healthy,
      [problem("DuplicateKeys")],
      ["True", "KeysAvailable"],
      ["True", "DuplicateKeys"],
      ["False", "NoProblem"],
    ],
    [
      "whitespace in a key",
      healthy,
      [problem("KeyHasWhitespace")],
      ["True", "KeysAvailable"],
      ["True", "KeyHasWhitespace"],
      ["False", "NoProblem"],
    ],
    [
      "every key rate-limited (it recovers by itself)",
      [
        view("a", "RateLimited", { untilMs: T.getTime() + 60_000 }),
        view("b", "RateLimited", { untilMs: T.getTime() + 60_000 }),
      ],
      [],
      ["False", "NoUsableKeys"],
      ["True", "KeysUnusable"],
      ["False", "NoProblem"],
    ],
    [
      "no Secret at all",
      [],
      [problem("SecretNotFound")],
      ["False", "SecretNotFound"],
      ["True", "SecretNotFound"],
      ["True", "SecretNotFound"],
    ],
    ["Secrets with no keys", [], [], ["False", "NoKeys"], ["False", "AllKeysUsable"], ["True", "NoKeys"]],
  ])("%s", (_name, views, problems, ready, degraded, stalled) => {
    const status = desiredStatus(undefined, { kind: "evaluated", views, problems, emptyValues: 0 }, 1, T);
    const byType = Object.fromEntries(status.conditions?.map((c) => [c.type, [c.status, c.reason]]) ?? []);
    expect({ Ready: byType.Ready, Degraded: byType.Degraded, Stalled: byType.Stalled }).toEqual({
      Ready: ready,
      Degraded: degraded,
      Stalled: stalled,
    });
  });

  it("names every problem in Degraded's message, and keeps Ready's message free of them", () => {
    const status = desiredStatus(
      undefined,
      {
        kind: "evaluated",
        views: [view("a", "Healthy"), view("b", "Invalid")],
        problems: [
          problem("SecretNotFound", "Secret ai/x not found"),
          problem("DuplicateKeys", "secret/y#b holds the same key as secret/y#a"),
        ],
        emptyValues: 2,
      },
      1,
      T,
    );
    const byType = Object.fromEntries(status.conditions?.map((c) => [c.type, c]) ?? []);
    expect(byType.Ready?.message).toBe("1 of 2 keys usable (2 empty values ignored)");
    expect(byType.Degraded?.message).toBe(
      "Secret ai/x not found; secret/y#b holds the same key as secret/y#a; 1 of 2 keys unusable: 1 Healthy, 1 Invalid",
    );
  });
});
