/**
 * What the operator's caches keep (src/controller/trim.ts), which Secret entries the KeyPools
 * read (src/controller/secret-refs.ts), the watch cache's transform and compare-and-swap
 * (src/controller/watch/cache.ts), and the resolver reading a trimmed Secret cache: an entry the
 * cache dropped is fetched, never taken for missing. The real API server's side is in
 * test/integration/cache-trim.test.ts.
 */
import type { KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../../src/api/keypool.ts";
import { onlyStatusChanged } from "../../../src/controller/predicates.ts";
import { SecretReferences } from "../../../src/controller/secret-refs.ts";
import { secretCacheStats, trimConfigMap, trimKeyPool, trimSecret } from "../../../src/controller/trim.ts";
import { ObjectCache } from "../../../src/controller/watch/cache.ts";
import {
  type CachedSecret,
  resolvePoolKeys,
  type SecretCache,
} from "../../../src/sources/kubernetes/secrets.ts";

const NS = "ai";
const b64 = (s: string) => Buffer.from(s).toString("base64");
const MANAGED = [{ manager: "kubectl", operation: "Apply", fieldsV1: { "f:data": { "f:a": {} } } }];
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

function secret(
  name: string,
  data: Record<string, string>,
  { labels = {}, resourceVersion = "1" }: { labels?: Record<string, string>; resourceVersion?: string } = {},
): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      resourceVersion,
      labels: { "keypool.dev/secret": "true", ...labels },
      annotations: { [LAST_APPLIED]: JSON.stringify({ data }) },
      managedFields: MANAGED,
      creationTimestamp: new Date("2026-01-01T00:00:00Z"),
    },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

function pool(name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) {
  return {
    apiVersion: "keypool.dev/v1alpha1",
    kind: "KeyPool",
    metadata: { name, namespace: NS, uid: `uid-${name}`, generation: 1, resourceVersion: "10", ...metadata },
    spec: { provider: "openai", ...spec },
    status: { keys: { total: 1, usable: 1 } },
  } as KubernetesObject;
}

describe("a cached KeyPool", () => {
  const full = pool(
    "p",
    { keys: [{ secretRef: { name: "keys", key: "a" } }] },
    {
      labels: { team: "a" },
      annotations: { [LAST_APPLIED]: "{...}", "keypool.dev/probe-requested-at": "t1", note: "x" },
      managedFields: MANAGED,
      finalizers: ["keypool.dev/cleanup"],
      creationTimestamp: "2026-01-01T00:00:00Z",
    },
  );
  const trimmed = trimKeyPool(full);

  it("loses managedFields and every annotation but keypool.dev/*, and keeps what the operator reads", () => {
    expect(trimmed.metadata).toEqual({
      name: "p",
      namespace: NS,
      uid: "uid-p",
      generation: 1,
      resourceVersion: "10",
      labels: { team: "a" },
      annotations: { "keypool.dev/probe-requested-at": "t1" },
      finalizers: ["keypool.dev/cleanup"],
      creationTimestamp: "2026-01-01T00:00:00Z",
    });
    const { spec, status } = trimmed as unknown as { spec: unknown; status: unknown };
    expect({ spec, status }).toEqual({
      spec: (full as unknown as { spec: unknown }).spec,
      status: (full as unknown as { status: unknown }).status,
    });
  });

  it("is a new object (the API server's is left alone), and trimming it again changes nothing", () => {
    expect(full.metadata?.managedFields).toEqual(MANAGED);
    expect(trimKeyPool(trimmed)).toEqual(trimmed);
  });

  it("has no annotations at all when none are ours", () => {
    expect(trimKeyPool(pool("p", {}, { annotations: { note: "x" } })).metadata).not.toHaveProperty(
      "annotations",
    );
  });

  it.each<[string, Record<string, unknown>, boolean]>([
    [
      "a status write (new resourceVersion and managedFields) is only a status change",
      { resourceVersion: "11", managedFields: [] },
      true,
    ],
    [
      "kubectl apply's annotation changing is only a status change: the reconciler never reads it",
      { annotations: { [LAST_APPLIED]: "{changed}", "keypool.dev/probe-requested-at": "t1", note: "y" } },
      true,
    ],
    [
      "a probe request (keypool.dev/*) is not",
      { annotations: { "keypool.dev/probe-requested-at": "t2" } },
      false,
    ],
    ["a spec change (generation) is not", { generation: 2 }, false],
    ["a label change is not", { labels: { team: "b" } }, false],
  ])("onlyStatusChanged on trimmed copies: %s", (_name, over, expected) => {
    const next = trimKeyPool({ ...full, metadata: { ...full.metadata, ...over } });
    expect(onlyStatusChanged(trimmed, next)).toBe(expected);
  });
});

describe("a cached Secret", () => {
  const full = secret("keys", { a: "sk-a", b: "sk-b", c: "sk-c" }, { labels: { team: "x" } });

  it("keeps the entries pools read, names the others, and keeps only the metadata the operator reads", () => {
    const kept = trimSecret(full, (entry) => entry === "a");
    expect(kept).toEqual({
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "keys",
        namespace: NS,
        uid: "uid-keys",
        resourceVersion: "1",
        labels: { "keypool.dev/secret": "true", team: "x" },
      },
      data: { a: b64("sk-a") },
      droppedEntries: ["b", "c"],
    });
    expect(JSON.stringify(kept)).not.toContain(b64("sk-b"));
    expect(full.data).toHaveProperty("b");
  });

  it("drops more when trimmed again, and remembers what it dropped before (it cannot get it back)", () => {
    const once = trimSecret(full, (entry) => entry !== "c");
    expect(trimSecret(once, (entry) => entry === "a")).toMatchObject({
      data: { a: b64("sk-a") },
      droppedEntries: ["b", "c"],
    });
    expect(trimSecret(once, () => true)).toMatchObject({
      data: { a: b64("sk-a"), b: b64("sk-b") },
      droppedEntries: ["c"],
    });
  });

  it("names nothing when every entry is read", () => {
    expect(trimSecret(full, () => true)).not.toHaveProperty("droppedEntries");
  });

  it("is counted: objects, entries kept and dropped, characters held", () => {
    expect(secretCacheStats([trimSecret(full, (e) => e === "a"), trimSecret(full, () => true)])).toEqual({
      objects: 2,
      entriesKept: 4,
      entriesDropped: 2,
      bytesKept: 4 * b64("sk-a").length,
    });
  });
});

describe("a cached ConfigMap", () => {
  it("loses managedFields and annotations, and keeps its data", () => {
    const cm = {
      metadata: {
        name: "prices",
        namespace: NS,
        managedFields: MANAGED,
        annotations: { [LAST_APPLIED]: "{}" },
      },
      data: { "prices.yaml": "- model: gpt\n" },
    };
    expect(trimConfigMap(cm)).toEqual({ metadata: { name: "prices", namespace: NS }, data: cm.data });
  });
});

describe("which Secret entries the pools read", () => {
  type Case = [
    name: string,
    specs: Record<string, unknown>[],
    secret: string,
    labels: Record<string, string>,
    read: string[],
  ];
  const entries = ["a", "b", "c", "url", "sign"];
  it.each<Case>([
    [
      "secretRef with a key: that entry",
      [{ keys: [{ secretRef: { name: "keys", key: "a" } }] }],
      "keys",
      {},
      ["a"],
    ],
    [
      "secretRef without a key: every entry",
      [{ keys: [{ secretRef: { name: "keys" } }] }],
      "keys",
      {},
      entries,
    ],
    [
      "another Secret's reference: nothing",
      [{ keys: [{ secretRef: { name: "other", key: "a" } }] }],
      "keys",
      {},
      [],
    ],
    [
      "two pools: the union",
      [
        { keys: [{ secretRef: { name: "keys", key: "a" } }] },
        { keys: [{ secretRef: { name: "keys", key: "b" } }] },
      ],
      "keys",
      {},
      ["a", "b"],
    ],
    [
      "a matching secretSelector: every entry",
      [{ secretSelector: { matchLabels: { team: "x" } } }],
      "keys",
      { team: "x" },
      entries,
    ],
    [
      "a secretSelector that does not match: nothing",
      [{ secretSelector: { matchLabels: { team: "x" } } }],
      "keys",
      { team: "y" },
      [],
    ],
    [
      "webhooks: the URL's and the signing key's entries",
      [
        {
          notifications: {
            webhooks: [
              {
                name: "h",
                urlSecretRef: { name: "keys", key: "url" },
                signingKeySecretRef: { name: "keys", key: "sign" },
              },
            ],
          },
        },
      ],
      "keys",
      {},
      ["url", "sign"],
    ],
    [
      "a malformed selector: every entry (more, never less)",
      [{ secretSelector: "team=x" }],
      "keys",
      {},
      entries,
    ],
  ])("%s", (_name, specs, name, labels, read) => {
    const refs = new SecretReferences();
    specs.forEach((spec, i) => refs.set(pool(`p${i}`, spec)));
    const wanted = refs.wanted(NS, name, labels);
    expect(entries.filter(wanted)).toEqual(read);
    expect(refs.wanted("elsewhere", name, labels)("a")).toBe(false);
  });

  it("counts readers: an entry two pools read stays read when one of them goes", () => {
    const refs = new SecretReferences();
    const spec = { keys: [{ secretRef: { name: "keys", key: "a" } }] };
    refs.set(pool("p1", spec));
    refs.set(pool("p2", spec));
    expect(refs.delete(pool("p1", spec))).toEqual({ namespace: NS, secrets: ["keys"], anySecret: false });
    expect(refs.wanted(NS, "keys", {})("a")).toBe(true);
    refs.delete(pool("p2", spec));
    expect(refs.wanted(NS, "keys", {})("a")).toBe(false);
  });

  it("answers what may be dropped when a pool reads less, and nothing when its reads did not change", () => {
    const refs = new SecretReferences();
    expect(refs.set(pool("p", { keys: [{ secretRef: { name: "keys" } }] }))).toBeUndefined();
    expect(
      refs.set(pool("p", { keys: [{ secretRef: { name: "keys" } }] }, { resourceVersion: "11" })),
    ).toBeUndefined();
    expect(refs.set(pool("p", { keys: [{ secretRef: { name: "keys", key: "a" } }] }))).toEqual({
      namespace: NS,
      secrets: ["keys"],
      anySecret: false,
    });
    expect(refs.wanted(NS, "keys", {})("b")).toBe(false);
    refs.set(pool("p", { secretSelector: { matchLabels: { team: "x" } } }));
    expect(refs.set(pool("p", { keys: [{ secretRef: { name: "keys", key: "a" } }] }))).toEqual({
      namespace: NS,
      secrets: [],
      anySecret: true,
    });
    expect(refs.wanted(NS, "other", { team: "x" })("a")).toBe(false);
  });
});

describe("the watch cache with a transform", () => {
  const keepA = (s: CachedSecret) => trimSecret(s, (entry) => entry === "a");
  const v1 = secret("keys", { a: "sk-a1", b: "sk-b1" }, { resourceVersion: "1" });
  const v2 = secret("keys", { a: "sk-a2", b: "sk-b2" }, { resourceVersion: "2" });

  it("stores and emits the transformed object from a watch event and from a list", () => {
    const cache = new ObjectCache<CachedSecret>(keepA);
    const [type, object] = cache.apply("ADDED", v1) ?? [];
    expect(type).toBe("ADDED");
    expect(object?.droppedEntries).toEqual(["b"]);
    expect(cache.get(NS, "keys")).toBe(object);
    const changes = cache.replace([v2]);
    expect(changes.map(([t, o, old]) => [t, o.data, old?.metadata?.resourceVersion])).toEqual([
      ["MODIFIED", { a: b64("sk-a2") }, "1"],
    ]);
  });

  it.each<[string, (cached: CachedSecret) => CachedSecret, V1Secret, { stored: boolean; changed: boolean }]>([
    [
      "a GET of the same version fills in what was dropped, as no change",
      (c) => c,
      v1,
      { stored: true, changed: false },
    ],
    ["a GET of a newer version is stored and emitted", (c) => c, v2, { stored: true, changed: true }],
    [
      "a copy of the same version the cache holds now (trimmed again) does not stop it",
      (c) => ({ ...c }),
      v1,
      { stored: true, changed: false },
    ],
  ])("swap: %s", (_name, meanwhile, fetched, expected) => {
    let keep = (entry: string): boolean => entry === "a";
    const cache = new ObjectCache<CachedSecret>((s) => trimSecret(s, (e) => keep(e)));
    cache.apply("ADDED", v1);
    const before = cache.get(NS, "keys") as CachedSecret;
    keep = () => true; // a pool began reading b
    cache.replace([meanwhile(before)]); // same version: the list keeps the cached copy
    const { stored, change } = cache.swap(before, fetched);
    expect({ stored, changed: change !== undefined }).toEqual(expected);
    expect(Object.keys(cache.get(NS, "keys")?.data ?? {})).toEqual(["a", "b"]);
  });

  it("swap: never replaces a newer copy the watch stored meanwhile, nor brings back a deleted one", () => {
    const cache = new ObjectCache<CachedSecret>((s) => trimSecret(s, () => true));
    cache.apply("ADDED", v1);
    const before = cache.get(NS, "keys") as CachedSecret;
    cache.apply("MODIFIED", v2);
    expect(cache.swap(before, v1)).toEqual({ stored: false });
    expect(cache.get(NS, "keys")?.metadata?.resourceVersion).toBe("2");
    cache.apply("DELETED", v2);
    expect(cache.swap(before, v2)).toEqual({ stored: false });
    expect(cache.get(NS, "keys")).toBeUndefined();
  });

  it("retransform drops what is no longer read, and emits nothing", () => {
    let keep = () => true;
    const cache = new ObjectCache<CachedSecret>((s) => trimSecret(s, () => keep()));
    cache.apply("ADDED", v1);
    keep = () => false;
    cache.retransform(NS, "keys");
    expect(cache.get(NS, "keys")).toMatchObject({ data: {}, droppedEntries: ["a", "b"] });
  });
});

describe("resolving keys from a trimmed Secret cache", () => {
  const full = secret(
    "keys",
    { a: "sk-aaaa", b: "sk-bbbb", url: "https://hooks.example/x" },
    { labels: { team: "x" } },
  );
  const onlyA = trimSecret(full, (entry) => entry === "a");

  function cacheOf(cached: CachedSecret, fetched: "gone" | V1Secret = full) {
    const refetches: string[] = [];
    const cache: SecretCache = {
      get: (_ns, name) => (name === cached.metadata?.name ? cached : undefined),
      list: () => [cached],
      refetch: async (_ns, name) => {
        refetches.push(name);
        return fetched === "gone" ? undefined : fetched;
      },
    };
    return { cache, refetches };
  }

  type Case = [name: string, spec: Record<string, unknown>, sources: string[], refetches: number];
  it.each<Case>([
    [
      "an entry the cache kept is read from it",
      { keys: [{ secretRef: { name: "keys", key: "a" } }] },
      ["secret/keys#a"],
      0,
    ],
    [
      "an entry it dropped is fetched once",
      { keys: [{ secretRef: { name: "keys", key: "a" } }, { secretRef: { name: "keys", key: "b" } }] },
      ["secret/keys#a", "secret/keys#b"],
      1,
    ],
    [
      "a whole Secret with dropped entries is fetched",
      { keys: [{ secretRef: { name: "keys" } }] },
      ["secret/keys#a", "secret/keys#b", "secret/keys#url"],
      1,
    ],
    [
      "a selector matching a Secret with dropped entries fetches it",
      { secretSelector: { matchLabels: { team: "x" } } },
      ["secret/keys#a", "secret/keys#b", "secret/keys#url"],
      1,
    ],
    [
      "an entry the Secret does not have is missing, with no fetch",
      { keys: [{ secretRef: { name: "keys", key: "zz" } }] },
      [],
      0,
    ],
  ])("%s", async (_name, spec, sources, refetches) => {
    const { cache, refetches: seen } = cacheOf(onlyA);
    const resolved = await resolvePoolKeys(
      NS,
      KeyPoolSpec.parse({ provider: "openai", ...spec }),
      cache,
      async () => "missing",
    );
    expect(resolved.entries.map((e) => e.source)).toEqual(sources);
    expect(seen).toHaveLength(refetches);
  });

  it("a webhook URL in a dropped entry is fetched", async () => {
    const { cache, refetches } = cacheOf(onlyA);
    const spec = KeyPoolSpec.parse({
      provider: "openai",
      keys: [{ secretRef: { name: "keys", key: "a" } }],
      notifications: { webhooks: [{ name: "h", urlSecretRef: { name: "keys", key: "url" } }] },
    });
    const resolved = await resolvePoolKeys(NS, spec, cache, async () => "missing");
    expect(resolved.webhooks.map((w) => w.url)).toEqual(["https://hooks.example/x"]);
    expect(refetches).toEqual(["keys"]);
  });

  it("a Secret gone (or unlabelled) since it was cached is reported as the API server tells", async () => {
    const { cache } = cacheOf(onlyA, "gone");
    const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "keys", key: "b" } }] });
    const resolved = await resolvePoolKeys(NS, spec, cache, async () => "unlabelled");
    expect(resolved.problems.map((p) => p.reason)).toEqual(["SecretNotLabelled"]);
  });

  it("without refetch (a cache that never drops), a dropped entry is reported missing", async () => {
    const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "keys", key: "b" } }] });
    const cache: SecretCache = { get: () => onlyA, list: () => [onlyA] };
    const resolved = await resolvePoolKeys(NS, spec, cache, async () => "missing");
    expect(resolved.problems.map((p) => p.reason)).toEqual(["SecretEntryMissing"]);
  });
});
