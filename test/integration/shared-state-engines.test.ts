/**
 * SharedState (src/state/shared-state.ts) in one process: two or three "replicas", each a pool
 * registry with its own engines, store connection and clock, over one real redis-server. The
 * dispense and report paths are the servers' own (src/server/dispense.ts), so what is asserted
 * is what callers of different replicas would see. The multi-process version, with operators and
 * a control plane, is shared-state.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type KeyPoolSpecInput, KeyPoolSpec } from "../../src/api/keypool.ts";
import { createLogger } from "../../src/log.ts";
import { applyPool } from "../../src/pool/apply.ts";
import type { Clock } from "../../src/pool/clock.ts";
import { keyId } from "../../src/pool/identity.ts";
import type { KeyEntry } from "../../src/pool/key.ts";
import { type PoolRef, PoolRegistry } from "../../src/pool/registry.ts";
import { SessionAffinity } from "../../src/server/affinity.ts";
import { dispense, report } from "../../src/server/dispense.ts";
import { KeyPoolError } from "../../src/server/errors.ts";
import { RedisStateStore } from "../../src/state/redis-store.ts";
import { SharedState, type StoreFailureMode } from "../../src/state/shared-state.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const logger = createLogger({ level: "silent" });
const REF: PoolRef = { namespace: "team-a", name: "openai" };
const KEYS = ["sk-shared-test-key-aaaa-0001", "sk-shared-test-key-bbbb-0002"];
const clock: Clock = { now: () => performance.timeOrigin + performance.now() };
let tokens = 0;

interface Replica {
  registry: PoolRegistry;
  store: RedisStateStore;
  shared: SharedState;
  affinity: SessionAffinity;
}

describe("replicas sharing key state through Redis", () => {
  let redis: RedisServer;
  const replicas: Replica[] = [];

  const replica = async (spec: KeyPoolSpecInput, entries: KeyEntry[], failure: StoreFailureMode = "open") => {
    const registry = new PoolRegistry();
    const store = new RedisStateStore({
      url: redis.url,
      prefix: "kp:",
      logger,
      clock,
      maxReconnectDelayMs: 100,
    });
    const shared = new SharedState({ store, registry, logger, clock, failure });
    await store.connect();
    applyPool(registry, {
      ref: REF,
      uid: "uid-1",
      generation: 1,
      spec: KeyPoolSpec.parse(spec),
      entries,
      engine: { clock, newLeaseToken: () => ++tokens },
    });
    const r = { registry, store, shared, affinity: new SessionAffinity() };
    replicas.push(r);
    return r;
  };

  const entries = (limits?: KeyEntry["limits"], quotaGroup?: string): KeyEntry[] =>
    KEYS.map((key, i) => ({
      key,
      source: `secret/keys#k${i}`,
      ...(limits ? { limits } : {}),
      ...(quotaGroup ? { quotaGroup } : {}),
    }));

  /** `n` replicas of a pool of both test keys, without limits. */
  const replicasOf = async (n: number, strategy: "RoundRobin" | "LeastLoaded") => {
    const spec = {
      provider: "openai",
      strategy,
      keys: [{ secretRef: { name: "keys" } }],
    } satisfies KeyPoolSpecInput;
    const made: Replica[] = [];
    for (let i = 0; i < n; i++) made.push(await replica(spec, entries()));
    return made;
  };

  const take = async (r: Replica) => {
    try {
      return await dispense(r.registry, r.affinity, clock, REF, { coordinator: r.shared });
    } catch (err) {
      if (err instanceof KeyPoolError) return err;
      throw err;
    }
  };

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    for (const r of replicas.splice(0)) {
      r.shared.stop();
      await r.store.close();
    }
    await redis.command("FLUSHALL");
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it("lets exactly a key's limit through, spread over three replicas", async () => {
    const spec = { provider: "openai", keys: [{ secretRef: { name: "keys" } }] } satisfies KeyPoolSpecInput;
    const one = [{ key: KEYS[0] as string, source: "secret/keys#k0", limits: { requestsPerMinute: 20 } }];
    const rs = [await replica(spec, one), await replica(spec, one), await replica(spec, one)];
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => take(rs[i % 3] as Replica)));
    const served = answers.filter((a) => !(a instanceof KeyPoolError));
    expect(served).toHaveLength(20);
    const refused = answers.filter((a): a is KeyPoolError => a instanceof KeyPoolError);
    expect(refused.every((e) => e.code === "no_usable_key" && (e.retryAfterSeconds ?? 0) >= 50)).toBe(true);
  });

  it("lets exactly a quota group's limit through, over its keys and replicas", async () => {
    const spec = {
      provider: "openai",
      keys: [{ secretRef: { name: "keys" }, quotaGroup: "org-1" }],
      quotaGroups: [{ name: "org-1", limits: { requestsPerMinute: 20 } }],
    } satisfies KeyPoolSpecInput;
    const rs = [
      await replica(spec, entries(undefined, "org-1")),
      await replica(spec, entries(undefined, "org-1")),
    ];
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => take(rs[i % 2] as Replica)));
    const served = answers.filter((a) => !(a instanceof KeyPoolError));
    expect(served).toHaveLength(20);
    expect(new Set(served.map((a) => (a as { keyId: string }).keyId)).size).toBe(2);
  });

  it("stops every replica handing out a key another one was told is rate-limited, and keeps the later deadline", async () => {
    const [a, b, c] = await replicasOf(3, "RoundRobin");
    const first = await take(a as Replica);
    if (first instanceof KeyPoolError) throw first;
    await report(
      (a as Replica).registry,
      clock,
      REF,
      {
        leaseId: first.leaseId,
        statusCode: 429,
        headers: { "retry-after": "60" },
      },
      (a as Replica).shared,
    );
    // From the report's answer on, neither other replica hands the key out.
    for (const r of [b, c] as Replica[]) {
      for (let i = 0; i < 6; i++) {
        const got = await take(r);
        if (got instanceof KeyPoolError) throw got;
        expect(got.keyId).not.toBe(first.keyId);
        await report(r.registry, clock, REF, { leaseId: got.leaseId, outcome: "success" }, r.shared);
      }
    }
    // Their engines heard it on the channel too (the status each would build says so).
    await vi.waitFor(() => {
      for (const r of [b, c] as Replica[]) {
        const view = r.registry
          .get(REF)
          ?.engine.keys()
          .find((k) => k.id === first.keyId);
        expect(view?.state).toBe("RateLimited");
      }
    });
    // A second, longer cooldown reported on B moves the deadline everywhere.
    await report(
      (b as Replica).registry,
      clock,
      REF,
      {
        keyId: first.keyId,
        statusCode: 429,
        headers: { "retry-after": "120" },
      },
      (b as Replica).shared,
    );
    const stored = (await (c as Replica).store.states(`${REF.namespace}/${REF.name}`, [first.keyId])).get(
      first.keyId,
    );
    expect((stored?.untilMs ?? 0) - clock.now()).toBeGreaterThan(110_000);
  });

  it("ends a lease on the replica that issued it when another one gets the report, and LeastLoaded sees other replicas' calls", async () => {
    const [a, b, c] = await replicasOf(3, "LeastLoaded");
    for (let round = 0; round < 5; round++) {
      const held = await take(a as Replica);
      if (held instanceof KeyPoolError) throw held;
      // C sees A's call in flight: it hands out the other key.
      const onC = await take(c as Replica);
      if (onC instanceof KeyPoolError) throw onC;
      expect(onC.keyId).not.toBe(held.keyId);
      await report(
        (c as Replica).registry,
        clock,
        REF,
        { leaseId: onC.leaseId, outcome: "success" },
        (c as Replica).shared,
      );
      // A's lease, reported on B, ends on A too.
      await report(
        (b as Replica).registry,
        clock,
        REF,
        { leaseId: held.leaseId, outcome: "success" },
        (b as Replica).shared,
      );
      await vi.waitFor(() => expect((a as Replica).registry.get(REF)?.engine.openLeases).toBe(0));
    }
    await expect(
      report(
        (b as Replica).registry,
        clock,
        REF,
        { leaseId: "0.abc.ffffffff", outcome: "success" },
        (b as Replica).shared,
      ),
    ).rejects.toMatchObject({ code: "lease_not_found" });
  });

  it("open: serves alone while the store is down, and writes back an Invalid mark learned meanwhile", async () => {
    const [a, b] = await replicasOf(2, "RoundRobin");
    await redis.kill();
    await vi.waitFor(() => expect((a as Replica).store.up || (b as Replica).store.up).toBe(false));
    expect((a as Replica).shared.problems().map((p) => p.reason)).toEqual(["StateStoreUnavailable"]);
    const invalid = keyId(KEYS[1] as string);
    for (let i = 0; i < 10; i++) {
      const got = await take(a as Replica);
      if (got instanceof KeyPoolError) throw got;
      const outcome = got.keyId === invalid ? { statusCode: 401 } : { outcome: "success" as const };
      await report(
        (a as Replica).registry,
        clock,
        REF,
        { leaseId: got.leaseId, ...outcome },
        (a as Replica).shared,
      );
    }
    expect((a as Replica).registry.get(REF)?.engine.stateOf(invalid)?.state).toBe("Invalid");
    await redis.restart();
    await vi.waitFor(() => expect((a as Replica).store.up && (b as Replica).store.up).toBe(true), {
      timeout: 5000,
    });
    await vi.waitFor(async () => {
      const stored = await redis.command("GET", `kp:{${REF.namespace}/${REF.name}}:s:${invalid}`);
      expect(JSON.parse(String(stored))).toMatchObject({ state: "Invalid" });
    });
    // B, which never saw the 401, stops handing the key out.
    for (let i = 0; i < 4; i++) {
      const got = await take(b as Replica);
      if (got instanceof KeyPoolError) throw got;
      expect(got.keyId).not.toBe(invalid);
    }
    expect((a as Replica).shared.problems()).toEqual([]);
  });

  it("closed: answers state_store_unavailable while the store is down, and serves again when it is back", async () => {
    const spec = { provider: "openai", keys: [{ secretRef: { name: "keys" } }] } satisfies KeyPoolSpecInput;
    const a = await replica(spec, entries(), "closed");
    await redis.kill();
    await vi.waitFor(() => expect(a.store.up).toBe(false));
    const got = await take(a);
    expect(got).toBeInstanceOf(KeyPoolError);
    expect(got).toMatchObject({ code: "state_store_unavailable", status: 503, retryAfterSeconds: 2 });
    expect(a.registry.get(REF)?.engine.openLeases).toBe(0);
    await redis.restart();
    await vi.waitFor(() => expect(a.store.up).toBe(true), { timeout: 5000 });
    expect(await take(a)).not.toBeInstanceOf(KeyPoolError);
  });

  it("a replica started later takes the cooldowns the store holds", async () => {
    const spec = { provider: "openai", keys: [{ secretRef: { name: "keys" } }] } satisfies KeyPoolSpecInput;
    const a = await replica(spec, entries());
    const cooling = keyId(KEYS[0] as string);
    await report(
      a.registry,
      clock,
      REF,
      { keyId: cooling, statusCode: 429, headers: { "retry-after": "60" } },
      a.shared,
    );
    const until = a.registry.get(REF)?.engine.stateOf(cooling)?.untilMs ?? 0;
    const late = await replica(spec, entries());
    await late.shared.refresh(late.registry.get(REF) as NonNullable<ReturnType<PoolRegistry["get"]>>);
    const facts = late.registry.get(REF)?.engine.stateOf(cooling);
    expect(facts?.state).toBe("RateLimited");
    expect(Math.abs((facts?.untilMs ?? 0) - until)).toBeLessThan(50);
  });
});
