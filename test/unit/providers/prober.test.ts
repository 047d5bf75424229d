import { MockAgent } from "undici";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KeyPoolSpec } from "../../../src/api/keypool.ts";
import { PoolRegistry, type PoolRuntime } from "../../../src/pool/registry.ts";
import { Prober } from "../../../src/providers/prober.ts";
import { createLogger } from "../../../src/log.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import { poolConfigFromSpec } from "../../../src/pool/config.ts";
import { KeyPoolEngine } from "../../../src/pool/engine.ts";
import { keyId } from "../../../src/pool/identity.ts";

const REF = { namespace: "ai", name: "gpt" };
const KEYS = ["plain-probe-key-aaaa", "plain-probe-key-bbbb", "plain-probe-key-cccc"];
const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "keys" } }] });

function runtimeWith(keys: string[], clock: ManualClock): PoolRuntime {
  const engine = new KeyPoolEngine(poolConfigFromSpec(spec), { clock, newLeaseToken: () => 1 });
  engine.setKeys(keys.map((key, i) => ({ key, source: `secret/keys#${i}` })));
  return {
    ref: REF,
    uid: "u1",
    engine,
    spec,
    generation: 1,
    secretNames: new Set(["keys"]),
    usesSelector: false,
  };
}

/** A prober over one pool, its probes answered by an in-memory OpenAI (no sockets). */
function proberOverOnePool() {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0, 0));
  const registry = new PoolRegistry();
  registry.set(runtimeWith(KEYS, clock));
  const agent = new MockAgent();
  agent.disableNetConnect();
  agent
    .get("https://api.openai.com")
    .intercept({ path: "/v1/models", method: "GET" })
    .reply(200, { data: [] })
    .persist();
  const prober = new Prober({
    registry,
    logger: createLogger({ level: "silent" }),
    clock,
    isActive: () => true,
    tickMs: 1_000,
    dispatcher: agent,
  });
  return { clock, registry, prober, agent };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("the prober's memory of when each key was probed", () => {
  it.each([
    { name: "keeps the times of keys still in their pool", change: () => {}, tracked: 3, probes: 3 },
    {
      name: "forgets keys removed from their Secret (draining, never probed again)",
      change: ({ registry }: Fixture) =>
        registry.get(REF)?.engine.setKeys([{ key: KEYS[0] as string, source: "secret/keys#0" }]),
      tracked: 1,
      probes: 3,
    },
    {
      name: "forgets every key of a deleted pool",
      change: ({ registry }: Fixture) => registry.delete(REF),
      tracked: 0,
      probes: 3,
    },
    {
      name: "forgets the times of a pool deleted and created again under the same name: its keys join anew and are probed",
      change: ({ registry, clock }: Fixture) => registry.set(runtimeWith(KEYS, clock)),
      tracked: 3,
      probes: 6,
    },
  ])("$name", async ({ change, tracked, probes }) => {
    const fixture = proberOverOnePool();
    const { prober, agent } = fixture;
    expect(await prober.probePool(REF)).toBe(3);
    expect(prober.trackedKeys).toBe(3);
    change(fixture);
    prober.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(prober.trackedKeys).toBe(tracked);
    vi.useRealTimers(); // stop() polls for probes in flight
    await prober.stop();
    expect(prober.stats.probes).toBe(probes);
    await agent.close();
  });

  it("stays bounded while a Secret's keys rotate again and again", async () => {
    const { prober, registry, agent, clock } = proberOverOnePool();
    prober.start();
    for (let round = 0; round < 20; round++) {
      const keys = [0, 1, 2].map((i) => `plain-rotated-key-${round}-${i}`);
      registry.get(REF)?.engine.setKeys(keys.map((key, i) => ({ key, source: `secret/keys#${i}` })));
      await prober.probePool(REF);
      clock.advance(1_000);
      await vi.advanceTimersByTimeAsync(1_000);
    }
    expect(prober.trackedKeys).toBe(3);
    expect(registry.get(REF)?.engine.keyIds()).toEqual(
      [0, 1, 2].map((i) => keyId(`plain-rotated-key-19-${i}`)),
    );
    vi.useRealTimers();
    await prober.stop();
    await agent.close();
  });
});

type Fixture = ReturnType<typeof proberOverOnePool>;
