/**
 * The operator against the real API server: `kubectl apply` a KeyPool and a labelled Secret,
 * and the status shows the keys; Secret changes follow within a second; problems become
 * conditions with reasons that say what to do; no key ever shows up in logs, Events or status.
 */
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
let ns: string;
let operator: OperatorProcess;

const KEYS = {
  one: "sk-test-operator-key-one-0001",
  two: "sk-test-operator-key-two-0002",
  three: "sk-test-operator-key-three-0003",
  four: "sk-test-operator-key-four-0004",
  twoRotated: "sk-test-operator-key-two-ROTATED",
};
const ALL_RAW_KEYS = Object.values(KEYS);

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "operator");
  // Auth off: these tests use the dispenser only to give keys counters (RBAC has its own tests).
  operator = startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns, "--auth", "none"]);
  await operator.waitForLog((l) => l.msg === "operator running");
});

afterAll(async () => {
  expect(await operator?.stop()).toBe(0);
});

describe("a KeyPool with a labelled Secret", () => {
  it("shows its 3 keys, Ready=True and the observed generation", async () => {
    await api.putSecret(ns, "openai-keys", { a: KEYS.one, b: KEYS.two, c: KEYS.three });
    const created = await api.createPool(ns, "main", {
      provider: "openai",
      strategy: "RoundRobin",
      keys: [{ secretRef: { name: "openai-keys" } }],
      rotation: { drainPeriod: "3s" },
    });
    const pool = await api.waitForPool(ns, "main", (p) => condition(p, "Ready")?.status === "True" && p);
    expect(pool.status?.observedGeneration).toBe(created.metadata.generation);
    expect(condition(pool, "Ready")).toMatchObject({
      reason: "KeysAvailable",
      observedGeneration: created.metadata.generation,
    });
    expect(condition(pool, "Stalled")?.status).toBe("False");
    expect(condition(pool, "Reconciling")?.status).toBe("False");
    expect(pool.status?.keys).toMatchObject({ total: 3, usable: 3 });
    expect(pool.status?.keyStatuses?.map((k) => k.id).sort()).toEqual(
      [KEYS.one, KEYS.two, KEYS.three].map(keyId).sort(),
    );
    expect(pool.status?.keyStatuses?.[0]).toMatchObject({
      state: "Healthy",
      source: "secret/openai-keys#a",
      healthScore: 100,
    });

    const { stdout } = await kubectl(["get", "kp", "-n", ns]);
    const [header, row] = stdout.trim().split("\n");
    expect(header?.split(/\s+/)).toEqual(["NAME", "STRATEGY", "USABLE", "TOTAL", "READY", "AGE"]);
    expect(row?.split(/\s+/).slice(0, 5)).toEqual(["main", "RoundRobin", "3", "3", "True"]);
  });

  it("picks up a key added to the Secret in well under a second", async () => {
    const before = Date.now();
    await api.putSecret(ns, "openai-keys", { a: KEYS.one, b: KEYS.two, c: KEYS.three, d: KEYS.four });
    await api.waitForPool(ns, "main", (p) => p.status?.keys?.usable === 4);
    const delayMs = Date.now() - before;
    console.log(`key added to Secret -> usable in KeyPool status: ${delayMs} ms`);
    expect(delayMs).toBeLessThan(5_000); // generous bound for a loaded 2-core machine; the figure is logged
  });

  it("drains a removed key, then forgets it after drainPeriod", async () => {
    await api.putSecret(ns, "openai-keys", { a: KEYS.one, b: KEYS.two, c: KEYS.three });
    const draining = await api.waitForPool(ns, "main", (p) =>
      p.status?.keyStatuses?.find((k) => k.id === keyId(KEYS.four) && k.state === "Draining"),
    );
    expect(draining.until).toBeDefined();
    await api.waitForPool(ns, "main", (p) => p.status?.keys?.total === 3 && p);
  });

  it("treats a changed value as a new key: the old id drains, unchanged keys keep their counters", async () => {
    // Use the keys so they have counters, and wait until the status shows them.
    const url = await operator.dispenserUrl();
    for (let i = 0; i < 9; i++) expect((await fetch(`${url}/v1/pools/${ns}/main/key`)).status).toBe(200);
    const before = await api.waitForPool(
      ns,
      "main",
      (p) => (p.status?.keyStatuses ?? []).reduce((n, k) => n + k.requests, 0) === 9 && p,
    );
    const unchanged = before.status?.keyStatuses?.filter((k) => k.id !== keyId(KEYS.two));
    await api.putSecret(ns, "openai-keys", { a: KEYS.one, b: KEYS.twoRotated, c: KEYS.three });
    const pool = await api.waitForPool(ns, "main", (p) => {
      const ids = new Map(p.status?.keyStatuses?.map((k) => [k.id, k.state]));
      return ids.get(keyId(KEYS.twoRotated)) === "Healthy" && ids.get(keyId(KEYS.two)) === "Draining" && p;
    });
    expect(unchanged?.length).toBe(2);
    for (const key of unchanged ?? []) {
      expect(key.requests).toBeGreaterThan(0);
      expect(pool.status?.keyStatuses?.find((k) => k.id === key.id)).toEqual(key);
    }
  });

  it("says Ready=False naming the Secret when it is deleted, and recovers when it is back", async () => {
    await api.deleteSecret(ns, "openai-keys");
    const pool = await api.waitForPool(ns, "main", (p) => condition(p, "Stalled")?.status === "True" && p);
    // The keys are still known (draining), but the source is gone: Stalled names the Secret.
    expect(condition(pool, "Stalled")).toMatchObject({ reason: "SecretNotFound" });
    expect(condition(pool, "Stalled")?.message).toContain(`Secret ${ns}/openai-keys`);
    await api.waitForPool(ns, "main", (p) => condition(p, "Ready")?.status === "False" && p, 20_000);
    expect(condition(await api.readPool(ns, "main"), "Ready")?.reason).toBe("SecretNotFound");

    await api.putSecret(ns, "openai-keys", { a: KEYS.one, b: KEYS.two, c: KEYS.three });
    const back = await api.waitForPool(ns, "main", (p) => condition(p, "Ready")?.status === "True" && p);
    expect(condition(back, "Stalled")?.status).toBe("False");
  });
});

describe("problems a user must fix", () => {
  it("tells how to label an unlabelled Secret", async () => {
    await api.putSecret(ns, "plain", { k: "sk-test-operator-unlabelled-0005" }, false);
    await api.createPool(ns, "unlabelled", { provider: "openai", keys: [{ secretRef: { name: "plain" } }] });
    const pool = await api.waitForPool(
      ns,
      "unlabelled",
      (p) => condition(p, "Ready")?.status === "False" && p,
    );
    expect(condition(pool, "Ready")?.reason).toBe("SecretNotLabelled");
    expect(condition(pool, "Ready")?.message).toContain(
      `kubectl label secret -n ${ns} plain keypool.dev/secret=true`,
    );
    expect(condition(pool, "Stalled")?.status).toBe("True");
  });

  it("names the field of a spec that passes the CRD but fails runtime checks", async () => {
    await api.createPool(ns, "self-fallback", {
      provider: "openai",
      keys: [{ secretRef: { name: "openai-keys" } }],
      fallbackPoolRef: { name: "self-fallback" },
    });
    const pool = await api.waitForPool(
      ns,
      "self-fallback",
      (p) => condition(p, "Ready")?.status === "False" && p,
    );
    expect(condition(pool, "Ready")?.reason).toBe("InvalidSpec");
    expect(condition(pool, "Ready")?.message).toContain("spec.fallbackPoolRef.name");
    expect(condition(pool, "Stalled")).toMatchObject({ status: "True", reason: "InvalidSpec" });
  });

  it("flags a fallback cycle on the pools in it, as Degraded: their keys still serve", async () => {
    await api.createPool(ns, "ping", {
      provider: "openai",
      keys: [{ secretRef: { name: "openai-keys" } }],
      fallbackPoolRef: { name: "pong" },
    });
    await api.createPool(ns, "pong", {
      provider: "openai",
      keys: [{ secretRef: { name: "openai-keys" } }],
      fallbackPoolRef: { name: "ping" },
    });
    for (const name of ["ping", "pong"]) {
      const pool = await api.waitForPool(
        ns,
        name,
        (p) => condition(p, "Degraded")?.reason === "FallbackCycle" && p,
      );
      expect(condition(pool, "Degraded")?.message).toContain("spec.fallbackPoolRef:");
      // The keys still serve: a cycle only matters once nothing is usable, so the pool is not
      // Stalled (which kstatus, and so Flux, would read as Failed).
      expect(condition(pool, "Ready")?.status).toBe("True");
      expect(condition(pool, "Stalled")?.status).toBe("False");
    }
  });

  it("reports an empty Secret as having no keys", async () => {
    await api.putSecret(ns, "empty", { a: "  ", b: "\n" });
    await api.createPool(ns, "empty", { provider: "openai", keys: [{ secretRef: { name: "empty" } }] });
    const pool = await api.waitForPool(ns, "empty", (p) => condition(p, "Ready")?.reason === "NoKeys" && p);
    expect(condition(pool, "Ready")?.message).toContain("2 empty values ignored");
  });

  it("records Events for Secret problems", async () => {
    const events = await api.events(ns);
    const reasons = events.map((e) => `${e.type}/${e.reason}`);
    expect(reasons).toContain("Warning/SecretNotLabelled");
    expect(reasons).toContain("Warning/InvalidSpec");
  });
});

describe("key material", () => {
  it("never appears in operator logs, Events or status", async () => {
    const events = JSON.stringify(await api.events(ns));
    const { stdout: pools } = await kubectl(["get", "kp", "-n", ns, "-o", "json"]);
    const logs = operator.lines.join("\n");
    const dump = join(tmpdir(), `keypool-operator-logs-${ns}.txt`);
    await writeFile(dump, logs);
    for (const raw of [...ALL_RAW_KEYS, "sk-test-operator-unlabelled-0005"]) {
      expect(logs, `operator logs (${dump})`).not.toContain(raw);
      expect(events).not.toContain(raw);
      expect(pools).not.toContain(raw);
    }
    expect(operator.logs.length).toBeGreaterThan(10);
  });
});
