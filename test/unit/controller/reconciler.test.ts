/**
 * The reconciler with fake collaborators (caches, status and event sinks, a manual clock): what a
 * reconcile of one pool submits, records and asks for next, without an API server.
 */
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { KeyPoolStatus } from "../../../src/api/status.ts";
import { PoolRegistry } from "../../../src/pool/registry.ts";
import { type EventSink, Reconciler, type StatusSink } from "../../../src/controller/reconciler.ts";
import type { PoolRef } from "../../../src/pool/registry.ts";
import { createLogger } from "../../../src/log.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import { keyId } from "../../../src/pool/identity.ts";

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const NS = "ai";
const KEYS = { a: "sk-test-reconcile-a-000001", b: "sk-test-reconcile-b-000002" };

function secret(name: string, data: Record<string, string>): V1Secret {
  return {
    metadata: { name, namespace: NS, labels: { "keypool.dev/secret": "true" } },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  };
}

function pool(name: string, spec: Record<string, unknown>, status?: KeyPoolStatus): KubernetesObject {
  return {
    apiVersion: "keypool.dev/v1alpha1",
    kind: "KeyPool",
    metadata: { name, namespace: NS, uid: `uid-${name}`, generation: 1 },
    spec,
    ...(status ? { status } : {}),
  } as KubernetesObject;
}

/** A reconciler over in-memory caches, recording what it submits and records. */
function setup(options: { leader?: () => boolean } = {}) {
  const clock = new ManualClock(T0);
  const pools = new Map<string, KubernetesObject>();
  const secrets = new Map<string, V1Secret>();
  const submitted: Array<{ ref: PoolRef; status: KeyPoolStatus }> = [];
  const forgotten: PoolRef[] = [];
  const events: Array<{ type: string; reason: string; message: string }> = [];
  const dirty: PoolRef[] = [];
  const status: StatusSink = {
    observe: () => {},
    submit: (ref, s) => submitted.push({ ref, status: s }),
    forget: (ref) => forgotten.push(ref),
  };
  const sink: EventSink = { record: (_t, type, reason, message) => events.push({ type, reason, message }) };
  const registry = new PoolRegistry();
  let leases = 0;
  const reconciler = new Reconciler({
    pools: { get: (ns, name) => pools.get(`${ns}/${name}`) },
    secrets: {
      get: (ns, name) => secrets.get(`${ns}/${name}`),
      list: (ns) => [...secrets.values()].filter((s) => s.metadata?.namespace === ns),
    },
    lookupUncachedSecret: async () => "missing",
    registry,
    status,
    events: sink,
    logger: createLogger({ level: "silent" }),
    clock,
    newLeaseToken: () => ++leases,
    isLeader: options.leader ?? (() => true),
    probePool: async () => 0,
    markDirty: (r) => dirty.push(r),
  });
  const last = () => submitted.at(-1)?.status;
  const conditionOf = (type: string) => last()?.conditions?.find((c) => c.type === type);
  /** Reconciles, lets the cache show the status written (as the watch would), reconciles again. */
  const reconcileTwice = async (r: PoolRef) => {
    await reconciler.reconcile(r);
    const object = pools.get(`${r.namespace}/${r.name}`);
    if (object) pools.set(`${r.namespace}/${r.name}`, { ...object, status: last() } as KubernetesObject);
    await reconciler.reconcile(r);
  };
  return {
    clock,
    pools,
    secrets,
    submitted,
    forgotten,
    events,
    registry,
    reconciler,
    last,
    conditionOf,
    reconcileTwice,
    dirty,
  };
}

const ref = (name: string) => ({ namespace: NS, name });

describe("a reconcile", () => {
  it("submits a new pool's Reconciling status, then its keys and Ready, serving keys without waiting on either", async () => {
    const t = setup();
    t.secrets.set(`${NS}/keys`, secret("keys", KEYS));
    t.pools.set(`${NS}/p`, pool("p", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] }));
    expect(await t.reconciler.reconcile(ref("p"))).toEqual({});
    // Both go to the debounced writer in this order: the evaluated status replaces Reconciling
    // there when it comes soon enough, and lands after it otherwise.
    expect(
      t.submitted.map((s) => [s.status.conditions?.[0]?.status, s.status.conditions?.[0]?.reason]),
    ).toEqual([
      ["Unknown", "Reconciling"],
      ["True", "KeysAvailable"],
    ]);
    expect(t.last()?.keys).toMatchObject({ total: 2, usable: 2 });
    expect(t.registry.get(ref("p"))?.engine.pick()).toMatchObject({ ok: true });
  });

  it.each<[string, Record<string, unknown>, [string, string], [string, string], string[]]>([
    [
      "an invalid spec is Stalled with InvalidSpec and a Warning",
      { provider: "openai-compatible", keys: [{ secretRef: { name: "keys" } }] },
      ["False", "InvalidSpec"],
      ["True", "InvalidSpec"],
      ["Warning/InvalidSpec"],
    ],
    [
      "a missing Secret among two is Degraded, not Stalled, with one Warning",
      { provider: "openai", keys: [{ secretRef: { name: "keys" } }, { secretRef: { name: "gone" } }] },
      ["True", "KeysAvailable"],
      ["False", "NoProblem"],
      ["Warning/SecretNotFound"],
    ],
    [
      "a missing fallback pool is Degraded, with one Warning",
      { provider: "openai", keys: [{ secretRef: { name: "keys" } }], fallbackPoolRef: { name: "nowhere" } },
      ["True", "KeysAvailable"],
      ["False", "NoProblem"],
      ["Warning/FallbackPoolNotFound"],
    ],
  ])("%s", async (_name, spec, ready, stalled, events) => {
    const t = setup();
    t.secrets.set(`${NS}/keys`, secret("keys", KEYS));
    t.pools.set(`${NS}/p`, pool("p", spec));
    await t.reconcileTwice(ref("p"));
    expect([t.conditionOf("Ready")?.status, t.conditionOf("Ready")?.reason]).toEqual(ready);
    expect([t.conditionOf("Stalled")?.status, t.conditionOf("Stalled")?.reason]).toEqual(stalled);
    // Twice reconciled, recorded once.
    expect(t.events.map((e) => `${e.type}/${e.reason}`)).toEqual(events);
  });

  it("records problems only while leading; on becoming leader, the standing ones once", async () => {
    let leading = false;
    const t = setup({ leader: () => leading });
    t.secrets.set(`${NS}/keys`, secret("keys", KEYS));
    t.pools.set(
      `${NS}/p`,
      pool("p", {
        provider: "openai",
        keys: [{ secretRef: { name: "keys" } }, { secretRef: { name: "gone" } }],
      }),
    );
    await t.reconciler.reconcile(ref("p"));
    expect(t.events).toEqual([]);
    leading = true;
    await t.reconciler.reconcile(ref("p"));
    await t.reconciler.reconcile(ref("p"));
    expect(t.events.map((e) => `${e.type}/${e.reason}`)).toEqual(["Warning/SecretNotFound"]);
  });

  it("takes the status's newer facts into the engine (another replica's writes)", async () => {
    const t = setup();
    t.secrets.set(`${NS}/keys`, secret("keys", KEYS));
    t.pools.set(`${NS}/p`, pool("p", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] }));
    await t.reconciler.reconcile(ref("p"));
    t.clock.advance(1000);
    const until = new Date(T0 + 300_000).toISOString();
    const leaderStatus: KeyPoolStatus = {
      ...(t.last() as KeyPoolStatus),
      keyStatuses: (t.last()?.keyStatuses ?? []).map((k) =>
        k.id === keyId(KEYS.a)
          ? { ...k, state: "RateLimited", since: new Date(T0 + 900).toISOString(), until }
          : k,
      ),
    };
    t.pools.set(
      `${NS}/p`,
      pool("p", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] }, leaderStatus),
    );
    const result = await t.reconciler.reconcile(ref("p"));
    const engine = t.registry.get(ref("p"))?.engine;
    for (let i = 0; i < 4; i++) {
      const picked = engine?.pick();
      expect(picked?.ok && picked.keyId).toBe(keyId(KEYS.b));
    }
    // A merged state is the other replica's news: no Event here.
    expect(t.events).toEqual([]);
    // Look again when the cooldown ends.
    expect(result.requeueAfterMs).toBe(T0 + 300_000 - t.clock.now());
  });

  it("forgets a pool that is gone from the cache", async () => {
    const t = setup();
    t.secrets.set(`${NS}/keys`, secret("keys", KEYS));
    t.pools.set(`${NS}/p`, pool("p", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] }));
    await t.reconciler.reconcile(ref("p"));
    t.pools.delete(`${NS}/p`);
    await t.reconciler.reconcile(ref("p"));
    expect(t.registry.get(ref("p"))).toBeUndefined();
    expect(t.forgotten).toEqual([ref("p")]);
  });

  it("after a report, marks the pool dirty; the next reconcile keeps its problems and Ready's message", async () => {
    const t = setup();
    const spec = {
      provider: "openai",
      keys: [{ secretRef: { name: "keys" } }, { secretRef: { name: "gone" } }],
    };
    t.secrets.set(`${NS}/keys`, secret("keys", { ...KEYS, empty: " " }));
    t.pools.set(`${NS}/p`, pool("p", spec));
    await t.reconciler.reconcile(ref("p"));
    const reconciled = t.last() as KeyPoolStatus;
    t.pools.set(`${NS}/p`, pool("p", spec, reconciled));
    const before = t.submitted.length;
    t.registry
      .get(ref("p"))
      ?.engine.report({ keyId: keyId(KEYS.a) }, { kind: "rateLimited", statusCode: 429 });
    // Nothing is written from inside the report: the pool is queued for the reconcile loop.
    expect(t.submitted.length).toBe(before);
    expect(t.dirty).toEqual([ref("p")]);
    await t.reconciler.reconcile(ref("p"));
    const refreshed = t.last() as KeyPoolStatus;
    expect(refreshed.keyStatuses?.find((k) => k.id === keyId(KEYS.a))?.state).toBe("RateLimited");
    const ready = (s: KeyPoolStatus) => s.conditions?.find((c) => c.type === "Ready")?.message;
    expect(ready(refreshed)).toBe("1 of 2 keys usable (1 empty value ignored)");
    expect(ready(refreshed)).toBe(ready(reconciled)?.replace("2 of 2", "1 of 2"));
    expect(refreshed.conditions?.find((c) => c.type === "Degraded")?.reason).toBe("SecretNotFound");
    expect(t.events.map((e) => e.reason)).toEqual(["SecretNotFound", "KeyRateLimited"]);
  });
});
