/**
 * Honest conditions: the table in README.md ("Troubleshooting by condition"), pool by pool on the
 * real control plane, each checked against what kstatus itself (sigs.k8s.io/cli-utils, built by
 * test/support/kstatus.ts) computes, since Flux and other kstatus readers act on that: Failed
 * only when nothing is served and the user must act.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, type KeyPoolObject, poolApi } from "../support/keypools.ts";
import { ensureKstatus, kstatusOf } from "../support/kstatus.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { localOperatorArgs, type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
let ns: string;
let operator: OperatorProcess;

const K = {
  good1: "sk-test-conditions-good-0001",
  good2: "sk-test-conditions-good-0002",
  dup: "sk-test-conditions-dup-00003",
  other: "sk-test-conditions-other-004",
  spaced: "sk-test-conditions-ok-000005",
  lim1: "sk-test-conditions-lim-00006",
  lim2: "sk-test-conditions-lim-00007",
};

async function report(pool: string, body: Record<string, unknown>) {
  const res = await fetch(`${await operator.dispenserUrl()}/v1/pools/${ns}/${pool}/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

type Row = [
  pool: string,
  ready: [string, string],
  degraded: [string, string],
  stalled: [string, string],
  kstatus: string,
];

beforeAll(async () => {
  await Promise.all([installKeyPoolCrd(), ensureKstatus()]);
  ns = await createTestNamespace(kc, "conditions");
  const spec = (secrets: string[], extra: Record<string, unknown> = {}) => ({
    provider: "openai",
    keys: secrets.map((name) => ({ secretRef: { name } })),
    ...extra,
  });
  await api.putSecret(ns, "good", { a: K.good1, b: K.good2 });
  await api.putSecret(ns, "dup", { a: K.dup, b: K.dup, c: K.other });
  // A pasted line with a space inside, and an empty value: the message counts it, every time.
  await api.putSecret(ns, "spaced", { a: K.spaced, b: "sk-test-conditions has-a-space", c: "" });
  await api.putSecret(ns, "limited", { a: K.lim1, b: K.lim2 });
  await api.createPool(ns, "missing-among-two", spec(["good", "absent"]));
  await api.createPool(ns, "ping", spec(["good"], { fallbackPoolRef: { name: "pong" } }));
  await api.createPool(ns, "pong", spec(["good"], { fallbackPoolRef: { name: "ping" } }));
  await api.createPool(ns, "no-fallback", spec(["good"], { fallbackPoolRef: { name: "nowhere" } }));
  await api.createPool(ns, "duplicates", spec(["dup"]));
  await api.createPool(ns, "whitespace", spec(["spaced"]));
  await api.createPool(ns, "all-limited", spec(["limited"]));
  await api.createPool(ns, "no-secret", spec(["absent"]));
  operator = startOperator(localOperatorArgs(inject("kubeconfig"), ns));
  await api.waitForPool(ns, "all-limited", (p) => p.status?.keys?.usable === 2);
  for (const key of [K.lim1, K.lim2]) {
    await report("all-limited", { keyId: keyId(key), statusCode: 429, headers: { "retry-after": "300" } });
  }
}, 600_000);

afterAll(async () => {
  await operator?.stop();
});

describe("the conditions table", () => {
  it.each<Row>([
    [
      "missing-among-two",
      ["True", "KeysAvailable"],
      ["True", "SecretNotFound"],
      ["False", "NoProblem"],
      "Current",
    ],
    ["ping", ["True", "KeysAvailable"], ["True", "FallbackCycle"], ["False", "NoProblem"], "Current"],
    [
      "no-fallback",
      ["True", "KeysAvailable"],
      ["True", "FallbackPoolNotFound"],
      ["False", "NoProblem"],
      "Current",
    ],
    ["duplicates", ["True", "KeysAvailable"], ["True", "DuplicateKeys"], ["False", "NoProblem"], "Current"],
    [
      "whitespace",
      ["True", "KeysAvailable"],
      ["True", "KeyHasWhitespace"],
      ["False", "NoProblem"],
      "Current",
    ],
    [
      "all-limited",
      ["False", "NoUsableKeys"],
      ["True", "KeysUnusable"],
      ["False", "NoProblem"],
      "InProgress",
    ],
    [
      "no-secret",
      ["False", "SecretNotFound"],
      ["True", "SecretNotFound"],
      ["True", "SecretNotFound"],
      "Failed",
    ],
  ])("%s: Ready %j, Degraded %j, Stalled %j; kstatus %s", async (name, ready, degraded, stalled, kstatus) => {
    const pool = await api.waitForPool(ns, name, (p) => {
      const got = ["Ready", "Degraded", "Stalled"].map((t) => [
        condition(p, t)?.status,
        condition(p, t)?.reason,
      ]);
      return JSON.stringify(got) === JSON.stringify([ready, degraded, stalled]) && p;
    });
    const [computed] = await kstatusOf([pool]);
    expect(computed?.status, computed?.message).toBe(kstatus);
  });

  it("names the problem: whitespace by Secret and entry (never the value), duplicates by both entries", async () => {
    const spaced = await api.readPool(ns, "whitespace");
    expect(condition(spaced, "Degraded")?.message).toContain(`secret/spaced#b has whitespace inside a key`);
    expect(JSON.stringify(spaced)).not.toContain("has-a-space");
    expect(spaced.status?.keys).toMatchObject({ total: 1, usable: 1 });
    const dup = await api.readPool(ns, "duplicates");
    expect(condition(dup, "Degraded")?.message).toContain("secret/dup#b holds the same key as secret/dup#a");
    expect(dup.status?.keys).toMatchObject({ total: 2, usable: 2 });
  });

  it("keeps the Ready message stable between reconciles, and records each problem's Warning Event once", async () => {
    const before = await api.readPool(ns, "whitespace");
    const message = condition(before, "Ready")?.message;
    expect(message).toBe("1 of 1 keys usable (1 empty value ignored)");
    // Dispenses and reports refresh the status between reconciles; Secret changes reconcile.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${await operator.dispenserUrl()}/v1/pools/${ns}/whitespace/key`);
      expect(res.status).toBe(200);
    }
    await api.putSecret(ns, "spaced", { a: K.spaced, b: "sk-test-conditions has-a-space", c: "", d: "" });
    const after = await api.waitForPool(ns, "whitespace", (p) =>
      condition(p, "Ready")?.message?.includes("2 empty values") ? p : undefined,
    );
    await api.putSecret(ns, "spaced", { a: K.spaced, b: "sk-test-conditions has-a-space", c: "" });
    const back = await api.waitForPool(ns, "whitespace", (p) =>
      condition(p, "Ready")?.message === message ? p : undefined,
    );
    expect(condition(back, "Ready")?.lastTransitionTime).toBe(condition(before, "Ready")?.lastTransitionTime);
    expect(condition(after, "Ready")?.status).toBe("True");
    const warnings = await eventually(async () => {
      const events = (await api.events(ns)).filter(
        (e) => e.involvedObject.name === "whitespace" && e.reason === "KeyHasWhitespace",
      );
      return events.length > 0 && events;
    });
    expect(warnings.map((e) => e.type)).toEqual(["Warning"]);
    expect(warnings[0]?.count ?? 1).toBe(1);
  });

  it("a pool whose problem is fixed is Ready with Degraded=False again", async () => {
    await api.putSecret(ns, "absent", { a: "sk-test-conditions-late-0008" });
    const fixed = await api.waitForPool(
      ns,
      "no-secret",
      (p: KeyPoolObject) => condition(p, "Stalled")?.status === "False" && p,
    );
    expect(condition(fixed, "Ready")).toMatchObject({ status: "True", reason: "KeysAvailable" });
    expect(condition(fixed, "Degraded")).toMatchObject({ status: "False", reason: "AllKeysUsable" });
    const [computed] = await kstatusOf([fixed]);
    expect(computed?.status).toBe("Current");
  });
});
