/**
 * spec.pricingRef against the real API server: a price list in a ConfigMap labelled
 * keypool.dev/pricing prices a pool's calls (the status shows its cost fields), its edits apply
 * within seconds, and while it is unlabelled, missing an entry or invalid the pool keeps serving,
 * Degraded with a reason and a message that say what to fix, priced by spec.pricing alone.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1ConfigMap } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ModelPrice } from "../../src/api/keypool.ts";
import { PRICING_LABEL } from "../../src/sources/kubernetes/pricing.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, type KeyPoolObject, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { localOperatorArgs, type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const core = kc.makeApiClient(CoreV1Api);
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const POOL = "chat";
const PRICES = "llm-prices";
const MILLION = 1_000_000;
let ns: string;
let operator: OperatorProcess;

const list = (...prices: ModelPrice[]) => ({ "pricing.yaml": JSON.stringify(prices) });
const mini = (inputPerMillion: number, outputPerMillion: number): ModelPrice => ({
  model: "gpt-4o-mini",
  inputPerMillion,
  outputPerMillion,
});

async function putPrices(data: Record<string, string>): Promise<V1ConfigMap> {
  const existing = await core.readNamespacedConfigMap({ namespace: ns, name: PRICES });
  return core.replaceNamespacedConfigMap({ namespace: ns, name: PRICES, body: { ...existing, data } });
}

async function label(value: string | null): Promise<void> {
  await core.patchNamespacedConfigMap(
    { namespace: ns, name: PRICES, body: { metadata: { labels: { [PRICING_LABEL]: value } } } },
    mergePatch,
  );
}

/** Dispenses a key and reports a call of a million input and a million output tokens. */
async function call(model = "gpt-4o-mini"): Promise<void> {
  const url = await operator.dispenserUrl();
  const dispensed = await fetch(`${url}/v1/pools/${ns}/${POOL}/key`);
  expect(dispensed.status, await dispensed.clone().text()).toBe(200);
  const { leaseId } = (await dispensed.json()) as { leaseId: string };
  const reported = await fetch(`${url}/v1/pools/${ns}/${POOL}/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ leaseId, outcome: "success", model, inputTokens: MILLION, outputTokens: MILLION }),
  });
  expect(reported.status, await reported.clone().text()).toBe(200);
}

/** The pool's cost today as the serving replica knows it now (the status follows within seconds). */
async function costNow(): Promise<number> {
  const res = await fetch(`${await operator.dispenserUrl()}/v1/pools/${ns}/${POOL}`);
  return ((await res.json()) as { costTodayUSD: number }).costTodayUSD;
}

/** What one call() costs now: calls until it costs `expected` (an edit in flight costs the old price). */
async function callCosting(expected: number): Promise<void> {
  await eventually(
    async () => {
      const before = await costNow();
      await call();
      return Math.abs((await costNow()) - before - expected) < 1e-6;
    },
    20_000,
    100,
  );
}

const degraded = (reason: string) => (p: KeyPoolObject) => {
  const c = condition(p, "Degraded");
  return c?.status === "True" && c.reason === reason && p;
};

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "pricing-ref");
  operator = startOperator(localOperatorArgs(inject("kubeconfig"), ns));
  await operator.waitForLog((l) => l.msg === "operator running");
});

afterAll(async () => {
  expect(await operator?.stop()).toBe(0);
});

describe("a KeyPool priced by a shared ConfigMap", () => {
  it("is Degraded with PricingNotFound, saying to label the ConfigMap, and serves on unpriced", async () => {
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: PRICES }, data: list(mini(0.15, 0.6)) },
    });
    await api.putSecret(ns, "keys", { a: "sk-test-pricing-ref-key-0001" });
    await api.createPool(ns, POOL, {
      provider: "openai",
      keys: [{ secretRef: { name: "keys" } }],
      pricingRef: { name: PRICES },
    });
    const pool = await api.waitForPool(ns, POOL, degraded("PricingNotFound"));
    expect(condition(pool, "Ready")).toMatchObject({ status: "True", reason: "KeysAvailable" });
    expect(condition(pool, "Degraded")?.message).toContain(
      `ConfigMap ${ns}/${PRICES} is not labelled ${PRICING_LABEL}, so the operator does not watch it`,
    );
    expect(condition(pool, "Degraded")?.message).toContain(
      `kubectl label configmap -n ${ns} ${PRICES} ${PRICING_LABEL}=true`,
    );
    expect(pool.status).not.toHaveProperty("costWindow");
    const events = await eventually(async () => {
      const found = (await api.events(ns)).filter((e) => e.reason === "PricingNotFound");
      return found.length > 0 && found;
    });
    expect(events[0]).toMatchObject({ type: "Warning", involvedObject: { kind: "KeyPool", name: POOL } });
  });

  it("takes the price list once the ConfigMap is labelled: Degraded clears, the status shows what calls cost", async () => {
    await label("true");
    const pool = await api.waitForPool(
      ns,
      POOL,
      (p) => condition(p, "Degraded")?.status === "False" && p.status?.costWindow !== undefined && p,
    );
    expect(pool.status?.costTodayUSD).toBe(0);

    await call();
    const priced = await api.waitForPool(ns, POOL, (p) => p.status?.costTodayUSD === 0.75 && p);
    expect(priced.status?.costByModel).toEqual([
      { model: "gpt-4o-mini", costTodayUSD: 0.75, costThisMonthUSD: 0.75 },
    ]);
  });

  it("prices calls by the edited list within seconds", async () => {
    const before = Date.now();
    await putPrices(list(mini(1, 2)));
    await callCosting(3);
    console.log(`price list edited -> calls priced by it: ${Date.now() - before} ms`);
    const total = await costNow();
    await api.waitForPool(ns, POOL, (p) => p.status?.costTodayUSD === total && p);
  });

  it("says PricingInvalid naming the entry and field of a broken edit, prices by spec.pricing alone, and recovers", async () => {
    await putPrices(list(mini(1, 2), { model: "o4-mini", inputPerMillion: 1.1, outputPerMillion: -4.4 }));
    const pool = await api.waitForPool(ns, POOL, degraded("PricingInvalid"));
    expect(condition(pool, "Degraded")?.message).toContain(
      `ConfigMap ${ns}/${PRICES} entry pricing.yaml: [1].outputPerMillion: Too small`,
    );
    expect(condition(pool, "Ready")?.status).toBe("True");
    await callCosting(0);

    // spec.pricing wins over the ConfigMap's list for the same model.
    await api.patchPoolSpec(ns, POOL, { pricing: [mini(0.5, 0.5)] });
    await callCosting(1);

    await putPrices(list(mini(1, 2), { model: "o4-mini", inputPerMillion: 1.1, outputPerMillion: 4.4 }));
    await api.waitForPool(ns, POOL, (p) => condition(p, "Degraded")?.status === "False" && p);
    await callCosting(1);
    await api.patchPoolSpec(ns, POOL, { pricing: null });
    await callCosting(3);
  });

  it("says PricingEntryMissing for an entry the ConfigMap lacks, and PricingNotFound when the label goes", async () => {
    await putPrices({ "prices.json": JSON.stringify([mini(1, 2)]) });
    const missing = await api.waitForPool(ns, POOL, degraded("PricingEntryMissing"));
    expect(condition(missing, "Degraded")?.message).toContain(
      `ConfigMap ${ns}/${PRICES} has no entry "pricing.yaml" (its entries: prices.json)`,
    );
    await api.patchPoolSpec(ns, POOL, { pricingRef: { name: PRICES, key: "prices.json" } });
    await api.waitForPool(ns, POOL, (p) => condition(p, "Degraded")?.status === "False" && p);
    await callCosting(3);

    await label(null);
    const unlabelled = await api.waitForPool(ns, POOL, degraded("PricingNotFound"));
    expect(condition(unlabelled, "Degraded")?.message).toContain(
      `kubectl label configmap -n ${ns} ${PRICES}`,
    );
    await callCosting(0);
  });
});
