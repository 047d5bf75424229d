/**
 * keypool.dev/probe-requested-at against the real API server, a real operator process and a fake
 * OpenAI: a new annotation value probes every key of the pool once (a list-models call per key),
 * lands in status.lastProbeRequest with a Normal ProbeRequested Event, and the same value never
 * probes again, neither on a later reconcile nor after a restart of the operator.
 */
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PROBE_REQUEST_ANNOTATION } from "../../src/api/keypool.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd, keyPoolRef } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const objects = kc.makeApiClient(CustomObjectsApi);

const KEYS = [
  "sk-test-probe-request-one-00001",
  "sk-test-probe-request-two-00002",
  "sk-test-probe-request-three-003",
];
const POOL = "probed";

let ns: string;
let fake: FakeProvider;
let operator: OperatorProcess;

function start(): OperatorProcess {
  return startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns]);
}

/** The list-models probes the fake saw from `since` (an index into its requests) on, per key. */
function probesSince(since: number): Map<string, number> {
  const counts = new Map(KEYS.map((k) => [k, 0]));
  for (const r of fake.requests.slice(since)) {
    if (r.method === "GET" && r.path === "/v1/models" && r.key)
      counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
  }
  return counts;
}

/** A merge patch of the pool's metadata (and spec, when given), as `kubectl annotate` would. */
async function patchPool(body: Record<string, unknown>) {
  return (await objects.patchNamespacedCustomObject(
    { ...keyPoolRef(ns), name: POOL, body },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  )) as { metadata: { generation: number } };
}

const requestProbe = (value: string, extra: Record<string, unknown> = {}) =>
  patchPool({ ...extra, metadata: { annotations: { [PROBE_REQUEST_ANNOTATION]: value } } });

async function probeRequestedEvents(): Promise<string[]> {
  return (await api.events(ns))
    .filter((e) => e.reason === "ProbeRequested" && e.involvedObject.name === POOL)
    .map((e) => `${e.type}: ${e.message ?? ""}`);
}

const probeLogLines = (op: OperatorProcess) => op.logs.filter((l) => l.msg === "probed every key on request");

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "probe-request");
  fake = await startFakeProvider("openai", Object.fromEntries(KEYS.map((k) => [k, { kind: "valid" }])));
  await api.putSecret(ns, "keys", { a: KEYS[0] ?? "", b: KEYS[1] ?? "", c: KEYS[2] ?? "" });
  // probeInterval 1h: after the probes every new key gets, only requested probes reach the fake.
  await api.createPool(ns, POOL, {
    provider: "openai",
    baseURL: fake.url,
    keys: [{ secretRef: { name: "keys" } }],
    health: { probeInterval: "1h" },
  });
  operator = start();
  await api.waitForPool(
    ns,
    POOL,
    (p) => p.status?.keys?.usable === 3 && condition(p, "Ready")?.status === "True",
  );
  // Every key was probed once on joining; wait for those so they are not mistaken for requested ones.
  await eventually(async () => [...probesSince(0).values()].every((n) => n === 1), 10_000);
});

afterAll(async () => {
  await operator?.stop();
  await fake?.close();
});

describe("keypool.dev/probe-requested-at", () => {
  const first = "2026-11-22T10:00:00Z";

  it("probes every key once, records the value in status.lastProbeRequest and emits ProbeRequested", async () => {
    const mark = fake.requests.length;
    await requestProbe(first);
    const pool = await api.waitForPool(ns, POOL, (p) => p.status?.lastProbeRequest === first && p);
    expect([...probesSince(mark).entries()]).toEqual(KEYS.map((k) => [k, 1]));
    expect(condition(pool, "Ready")?.status).toBe("True");
    const events = await eventually(async () => {
      const found = await probeRequestedEvents();
      return found.length > 0 && found;
    });
    expect(events).toEqual([`Normal: Probed 3 keys as requested by ${PROBE_REQUEST_ANNOTATION}: ${first}`]);
    await eventually(async () => probeLogLines(operator).length === 1);
  });

  it("does not probe again for the same value when the pool is reconciled again", async () => {
    const mark = fake.requests.length;
    // The same annotation value with a spec change: a new generation, so a reconcile surely runs.
    const patched = await requestProbe(first, { spec: { strategy: "RoundRobin" } });
    await api.waitForPool(ns, POOL, (p) => p.status?.observedGeneration === patched.metadata.generation);
    await new Promise((r) => setTimeout(r, 1_500));
    expect([...probesSince(mark).values()]).toEqual([0, 0, 0]);
    expect(probeLogLines(operator)).toHaveLength(1);
    expect(await probeRequestedEvents()).toHaveLength(1);
    expect((await api.readPool(ns, POOL)).status?.lastProbeRequest).toBe(first);
  });

  it("does not probe again for the same value after a restart: the status says it was handled", async () => {
    expect(await operator.stop()).toBe(0);
    const mark = fake.requests.length;
    operator = start();
    // A new generation, so the restarted operator surely reconciles the pool with the annotation on it.
    const patched = await patchPool({ spec: { strategy: "LeastLoaded" } });
    await api.waitForPool(ns, POOL, (p) => p.status?.observedGeneration === patched.metadata.generation);
    // A new process probes every key once as it joins (it knows no earlier probe), and no more.
    await eventually(async () => [...probesSince(mark).values()].every((n) => n === 1), 10_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect([...probesSince(mark).values()]).toEqual([1, 1, 1]);
    expect(probeLogLines(operator)).toHaveLength(0);
    expect(await probeRequestedEvents()).toHaveLength(1);
    expect((await api.readPool(ns, POOL)).status?.lastProbeRequest).toBe(first);
  });

  it("probes every key again for a new value", async () => {
    const second = "2026-11-22T11:30:00Z";
    const mark = fake.requests.length;
    await requestProbe(second);
    await api.waitForPool(ns, POOL, (p) => p.status?.lastProbeRequest === second);
    expect([...probesSince(mark).entries()]).toEqual(KEYS.map((k) => [k, 1]));
    await eventually(async () => (await probeRequestedEvents()).length === 2);
    await eventually(async () => probeLogLines(operator).length === 1);
  });
});
