/**
 * The operator's Secret cache keeps only the entries some KeyPool reads (src/controller/trim.ts),
 * against the real API server: an entry no pool reads is not held (the cache's own accounting,
 * and the cached object itself), a pool that starts reading it picks it up without the Secret
 * changing, a secretSelector keeps every entry of the Secrets it matches, a referenced entry that
 * changes still rotates the key, and a pool created right after its Secret (or before) gets its
 * keys. The operator runs in process so the test can read its cache.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Operator } from "../../src/controller/operator.ts";
import { createLogger } from "../../src/log.ts";
import { keyId } from "../../src/pool/identity.ts";
import { SECRET_LABEL } from "../../src/sources/kubernetes/secrets.ts";
import { installKeyPoolCrd, keyPoolRef } from "../support/crd.ts";
import { poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const core = kc.makeApiClient(CoreV1Api);
const b64 = (s: string) => Buffer.from(s).toString("base64");

const KEYS = {
  a: "sk-test-trim-a-000000001",
  b: "sk-test-trim-b-000000002",
  c: "sk-test-trim-c-000000003",
  aRotated: "sk-test-trim-a-ROTATED01",
};

let ns: string;
let operator: Operator;

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "cache-trim");
  // A Secret and a pool that exist before the operator starts: the first lists trim them.
  await api.putSecret(ns, "keys", { a: KEYS.a, b: KEYS.b, c: KEYS.c });
  await api.createPool(ns, "pool", { provider: "openai", keys: [{ secretRef: { name: "keys", key: "a" } }] });
  const own = new KubeConfig();
  own.loadFromFile(inject("kubeconfig"));
  operator = new Operator({
    kc: own,
    logger: createLogger({ level: (process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent" }),
    clock: { now: () => Date.now() },
    namespaces: [ns],
    leaderElection: { enabled: false },
    probes: false,
  });
  await operator.start();
});

afterAll(async () => {
  await operator?.stop();
});

const cached = (name: string) => operator.secretCache.get(ns, name);
const keyIds = (pool: { status?: { keyStatuses?: { id: string }[] } }) =>
  (pool.status?.keyStatuses ?? []).map((k) => k.id).sort();

describe("the Secret cache", () => {
  it("holds only the entries a pool reads, and a pool that starts reading another picks it up", async () => {
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.total === 1);
    expect(Object.keys(cached("keys")?.data ?? {})).toEqual(["a"]);
    expect(cached("keys")?.droppedEntries).toEqual(["b", "c"]);
    expect(cached("keys")?.metadata).not.toHaveProperty("managedFields");
    // Not a value of b or c anywhere in the cache.
    const held = JSON.stringify(operator.secretCache.list(ns));
    for (const key of [KEYS.b, KEYS.c]) expect(held).not.toContain(b64(key));
    expect(operator.secretCacheStats()).toMatchObject({ objects: 1, entriesKept: 1, entriesDropped: 2 });

    const before = (await core.readNamespacedSecret({ namespace: ns, name: "keys" })).metadata
      ?.resourceVersion;
    await api.patchPoolSpec(ns, "pool", {
      keys: [{ secretRef: { name: "keys", key: "a" } }, { secretRef: { name: "keys", key: "b" } }],
    });
    const pool = await api.waitForPool(ns, "pool", (p) => p.status?.keys?.total === 2 && p);
    expect(keyIds(pool)).toEqual([keyId(KEYS.a), keyId(KEYS.b)].sort());
    // The Secret did not change: the operator fetched it once and keeps b from now on.
    expect((await core.readNamespacedSecret({ namespace: ns, name: "keys" })).metadata?.resourceVersion).toBe(
      before,
    );
    expect(Object.keys(cached("keys")?.data ?? {})).toEqual(["a", "b"]);
    expect(operator.secretCacheStats()).toMatchObject({ objects: 1, entriesKept: 2, entriesDropped: 1 });
  });

  it("still rotates a key when a referenced entry changes, and keeps dropping the others", async () => {
    await api.putSecret(ns, "keys", { a: KEYS.aRotated, b: KEYS.b, c: KEYS.c });
    const pool = await api.waitForPool(ns, "pool", (p) => {
      const states = new Map(p.status?.keyStatuses?.map((k) => [k.id, k.state]));
      return states.get(keyId(KEYS.aRotated)) === "Healthy" && states.get(keyId(KEYS.a)) === "Draining" && p;
    });
    // b is still read; c never was.
    expect(keyIds(pool)).toEqual([keyId(KEYS.a), keyId(KEYS.aRotated), keyId(KEYS.b)].sort());
    await eventually(async () => cached("keys")?.data?.a === b64(KEYS.aRotated));
    expect(cached("keys")?.droppedEntries).toEqual(["c"]);
  });

  it("keeps every entry of the Secrets a secretSelector matches", async () => {
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "team-x", labels: { [SECRET_LABEL]: "true", team: "x" } },
        stringData: {
          p: "sk-test-trim-p-000000001",
          q: "sk-test-trim-q-000000002",
          r: "sk-test-trim-r-00000003",
        },
      },
    });
    await api.createPool(ns, "selected", {
      provider: "openai",
      secretSelector: { matchLabels: { team: "x" } },
    });
    await api.waitForPool(ns, "selected", (p) => p.status?.keys?.total === 3);
    expect(Object.keys(cached("team-x")?.data ?? {})).toEqual(["p", "q", "r"]);
    expect(cached("team-x")).not.toHaveProperty("droppedEntries");
  });

  it("gives a pool created right after its Secret (or right before it) its keys", async () => {
    const rounds = [0, 1, 2, 3].map(async (i) => {
      const key = `sk-test-trim-race-${i}-0000000${i}`;
      const secret = () =>
        api.putSecret(ns, `race-${i}`, { other: `sk-test-trim-other-${i}-00000${i}`, mine: key });
      const pool = () =>
        api.createPool(ns, `race-${i}`, {
          provider: "openai",
          keys: [{ secretRef: { name: `race-${i}`, key: "mine" } }],
        });
      if (i % 2 === 0) {
        await secret();
        await pool();
      } else {
        await pool();
        await secret();
      }
      const ready = await api.waitForPool(ns, `race-${i}`, (p) => p.status?.keys?.total === 1 && p);
      expect(keyIds(ready)).toEqual([keyId(key)]);
    });
    await Promise.all(rounds);
    for (const i of [0, 1, 2, 3]) {
      await eventually(async () => cached(`race-${i}`)?.data?.mine !== undefined);
      expect(cached(`race-${i}`)?.droppedEntries).toEqual(["other"]);
    }
  });

  it("drops what no pool reads any more when a pool goes", async () => {
    await kc
      .makeApiClient(CustomObjectsApi)
      .deleteNamespacedCustomObject({ ...keyPoolRef(ns), name: "pool" });
    await eventually(async () => Object.keys(cached("keys")?.data ?? {}).length === 0);
    expect(cached("keys")?.droppedEntries).toEqual(["a", "b", "c"]);
  });
});
