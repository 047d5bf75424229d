import { describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../../src/api/keypool.ts";
import { type ReportInput, outcomeOf, poolView } from "../../../src/server/dispense.ts";
import { idOf, keys, makePool, T0 } from "../pool/helpers.ts";

type Runtime = Parameters<typeof poolView>[0];

/** A pool runtime as the registry holds one, around a test engine (named by type, not module). */
function runtimeOf(engine: Runtime["engine"]): Runtime {
  return {
    ref: { namespace: "default", name: "p" },
    uid: undefined,
    engine,
    spec: KeyPoolSpec.parse({ provider: "openai" }),
    generation: 1,
    secretNames: new Set(),
    usesSelector: false,
  };
}

describe("a report's latencyMs reaches the key's average latency", () => {
  it.each<[string, ReportInput, number | undefined]>([
    ["an explicit outcome carries it", { outcome: "success", latencyMs: 6000 }, 6000],
    ["a classified status code carries it", { statusCode: 500, latencyMs: 7000 }, 7000],
    ["a report without it leaves none", { outcome: "success" }, undefined],
  ])("%s", (_name, input, expected) => {
    const { engine } = makePool({}, keys("a"));
    const runtime = runtimeOf(engine);
    const outcome = outcomeOf(runtime, input, T0);
    expect(outcome.latencyMs).toBe(input.latencyMs);
    engine.report({ keyId: idOf("a") }, outcome);
    expect(poolView(runtime).keyStatuses[0]?.latencyMs).toBe(expected);
  });
});
