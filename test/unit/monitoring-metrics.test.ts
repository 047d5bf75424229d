/**
 * The two metrics the dashboard and the alerts needed and the operator did not export:
 * keypool_dispenses_total{namespace,pool,outcome} (every way a dispense of an existing pool ends,
 * synchronous with the memory store, asynchronous with a shared one; unknown pools are not
 * counted) and keypool_status_write_failures_total.
 */
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import type { KeyPoolEngine } from "../../src/pool/engine.ts";
import { type PoolRuntime, PoolRegistry } from "../../src/pool/registry.ts";
import { SessionAffinity } from "../../src/server/affinity.ts";
import { dispense } from "../../src/server/dispense.ts";
import { createMetrics, DispenseMetrics } from "../../src/server/metrics.ts";
import type { KeyCoordinator } from "../../src/state/coordinator.ts";
import { idOf, keys, makePool } from "./pool/helpers.ts";

const NS = "ai";

function runtime(name: string, engine: KeyPoolEngine, fallback?: string): PoolRuntime {
  return {
    ref: { namespace: NS, name },
    uid: undefined,
    engine,
    spec: KeyPoolSpec.parse({
      provider: "openai",
      ...(fallback ? { fallbackPoolRef: { name: fallback } } : {}),
    }),
    generation: 1,
    secretNames: new Set(),
    usesSelector: false,
  };
}

/** Pool "main" (key a) falling back to "spare" (key b), and a counter on a registry of its own. */
function setUp() {
  const main = makePool({}, keys("a"));
  const spare = makePool({}, keys("b"));
  const pools = new PoolRegistry();
  pools.set(runtime("main", main.engine, "spare"));
  pools.set(runtime("spare", spare.engine));
  const registry = new Registry();
  const metrics = new DispenseMetrics(registry);
  const take = (name: string, coordinator?: KeyCoordinator) =>
    dispense(
      pools,
      new SessionAffinity(),
      main.clock,
      { namespace: NS, name },
      { count: metrics.count, coordinator },
    );
  const series = async () =>
    (await registry.metrics())
      .split("\n")
      .filter((line) => line.startsWith("keypool_dispenses_total{"))
      .sort();
  return { main, spare, take, series };
}

/** A shared store that is down with --state-store-failure=closed. */
const closedStore: KeyCoordinator = {
  beforePick: () => Promise.resolve(),
  confirm: () => Promise.resolve({ ok: false, storeUnavailable: true, retryAfterSeconds: 1 }),
  report: () => {
    throw new Error("not reported in this test");
  },
};

describe("keypool_dispenses_total", () => {
  it("counts a key from the pool asked for as dispensed, and one from its fallback as fallback", async () => {
    const { main, take, series } = setUp();
    take("main");
    main.engine.disable(idOf("a"));
    take("main");
    expect(await series()).toEqual([
      'keypool_dispenses_total{namespace="ai",pool="main",outcome="dispensed"} 1',
      'keypool_dispenses_total{namespace="ai",pool="main",outcome="fallback"} 1',
    ]);
  });

  it("counts no_usable_key when no pool of the chain has a key, and still throws", async () => {
    const { main, spare, take, series } = setUp();
    main.engine.disable(idOf("a"));
    spare.engine.disable(idOf("b"));
    expect(() => take("main")).toThrow(expect.objectContaining({ code: "no_usable_key" }));
    expect(await series()).toEqual([
      'keypool_dispenses_total{namespace="ai",pool="main",outcome="no_usable_key"} 1',
    ]);
  });

  it("counts state_store_unavailable when a closed shared store is down (the asynchronous path)", async () => {
    const { take, series } = setUp();
    await expect(take("main", closedStore)).rejects.toMatchObject({ code: "state_store_unavailable" });
    expect(await series()).toEqual([
      'keypool_dispenses_total{namespace="ai",pool="main",outcome="state_store_unavailable"} 1',
    ]);
  });

  it("does not count a pool that does not exist: callers choose names, not series", async () => {
    const { take, series } = setUp();
    expect(() => take("no-such-pool")).toThrow(expect.objectContaining({ code: "pool_not_found" }));
    expect(await series()).toEqual([]);
  });

  it("counts nothing when no counter is given (the proxy's own dispenses)", async () => {
    const { main, series } = setUp();
    const pools = new PoolRegistry();
    pools.set(runtime("main", main.engine));
    dispense(pools, new SessionAffinity(), main.clock, { namespace: NS, name: "main" });
    expect(await series()).toEqual([]);
  });
});

describe("keypool_status_write_failures_total", () => {
  const sources = {
    pools: new PoolRegistry(),
    isLeader: () => true,
    watchStaleSeconds: () => 0,
    statusWrites: () => 0,
  };

  it("follows the status writer's failure count, and shows 0 from the first scrape", async () => {
    let failures = 0;
    const registry = createMetrics({ ...sources, statusWriteFailures: () => failures });
    expect(await registry.metrics()).toContain("\nkeypool_status_write_failures_total 0\n");
    failures = 3;
    expect(await registry.metrics()).toContain("\nkeypool_status_write_failures_total 3\n");
  });

  it("is absent where no status writer runs (keypool serve)", async () => {
    expect(await createMetrics(sources).metrics()).not.toContain("keypool_status_write_failures_total");
  });
});
