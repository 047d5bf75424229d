/**
 * Nothing a replica learned is lost: drills against the real control plane, as an operator on
 * call would run them.
 * - Two replicas with leader election: what the leader learns (a 429 with retry-after 300, a
 *   401) reaches the follower through the status within about a second, and survives a kill -9
 *   of the leader: the new leader never hands those keys out and keeps the status as it was.
 * - A pool with a problem (one of its two Secrets missing) still records its keys' states.
 * - The durability window: a report is durable once its status write lands.
 */
import { CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, type KeyPoolObject, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import {
  FAST_LEADER_ELECTION,
  localOperatorArgs,
  type OperatorProcess,
  startOperator,
} from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const running: OperatorProcess[] = [];
afterAll(async () => {
  await Promise.all(running.map((o) => o.kill()));
});

function operator(ns: string, extra: string[] = []): OperatorProcess {
  const op = startOperator([...localOperatorArgs(inject("kubeconfig"), ns), ...extra]);
  running.push(op);
  return op;
}

async function keyFrom(op: OperatorProcess, ns: string, pool: string): Promise<string> {
  const res = await fetch(`${await op.dispenserUrl()}/v1/pools/${ns}/${pool}/key`);
  const body = (await res.json()) as { keyId?: string; leaseId?: string };
  if (!res.ok || !body.keyId) throw new Error(`dispense failed: ${res.status} ${JSON.stringify(body)}`);
  await report(op, ns, pool, { leaseId: body.leaseId, outcome: "success" });
  return body.keyId;
}

async function report(op: OperatorProcess, ns: string, pool: string, body: Record<string, unknown>) {
  const res = await fetch(`${await op.dispenserUrl()}/v1/pools/${ns}/${pool}/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as { state: string };
}

/** The key ids `n` dispenses hand out. */
async function handedOut(op: OperatorProcess, ns: string, pool: string, n = 20): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) ids.add(await keyFrom(op, ns, pool));
  return ids;
}

const keyStatus = (pool: KeyPoolObject, id: string) => pool.status?.keyStatuses?.find((k) => k.id === id);

beforeAll(async () => {
  await installKeyPoolCrd();
});

describe("a leader failover", () => {
  it("forgets nothing: the follower already refuses what the leader learned, and keeps refusing it as the new leader", async () => {
    const ns = await createTestNamespace(kc, "failover");
    const keys = {
      limited: "sk-test-failover-limited-01",
      invalid: "sk-test-failover-invalid-02",
      ok1: "sk-test-failover-ok-one-003",
      ok2: "sk-test-failover-ok-two-004",
    };
    const bad = new Set([keyId(keys.limited), keyId(keys.invalid)]);
    await api.putSecret(ns, "keys", keys);
    await api.createPool(ns, "pool", {
      provider: "openai",
      strategy: "RoundRobin",
      keys: [{ secretRef: { name: "keys" } }],
    });
    const args = [...FAST_LEADER_ELECTION, "--leader-election-namespace", ns];
    const replicas = [operator(ns, args), operator(ns, args)];
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 4);
    const leases = kc.makeApiClient(CoordinationV1Api);
    const holder = await eventually(
      async () =>
        (await leases.readNamespacedLease({ namespace: ns, name: "keypool-operator" })).spec?.holderIdentity,
    );
    const identities = await Promise.all(
      replicas.map(async (op) => (await op.waitForLog((l) => l.msg === "starting operator")).identity),
    );
    const leader = replicas[identities.indexOf(holder)] as OperatorProcess;
    const follower = replicas[1 - identities.indexOf(holder)] as OperatorProcess;
    await leader.waitForLog((l) => l.msg === "became leader; writing status");
    expect(await handedOut(follower, ns, "pool", 8)).toEqual(
      new Set(Object.values(keys).map((k) => keyId(k))),
    );

    // The leader learns: a 429 with retry-after 300, and a 401.
    expect(
      await report(leader, ns, "pool", {
        keyId: keyId(keys.limited),
        statusCode: 429,
        headers: { "retry-after": "300" },
        body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
      }),
    ).toMatchObject({ state: "RateLimited" });
    const learnedAt = Date.now();
    expect(
      await report(leader, ns, "pool", {
        keyId: keyId(keys.invalid),
        statusCode: 401,
        body: { error: { message: "Incorrect API key provided", code: "invalid_api_key" } },
      }),
    ).toMatchObject({ state: "Invalid" });

    // The follower adopts it from the status within about a second.
    await eventually(
      async () => [...(await handedOut(follower, ns, "pool", 8))].every((id) => !bad.has(id)),
      5_000,
      50,
    );
    const adoptedMs = Date.now() - learnedAt;
    console.log(
      `follower stopped handing out the keys the leader learned about ${adoptedMs} ms after the report`,
    );
    expect(adoptedMs, "the follower adopts the leader's status within about a second").toBeLessThan(3_000);
    const written = await api.waitForPool(
      ns,
      "pool",
      (p) =>
        keyStatus(p, keyId(keys.limited))?.state === "RateLimited" &&
        keyStatus(p, keyId(keys.invalid))?.state === "Invalid" &&
        p,
    );
    const deadline = keyStatus(written, keyId(keys.limited))?.until;
    expect(Date.parse(deadline ?? "") - Date.now()).toBeGreaterThan(290_000);

    // kill -9 the leader: the follower takes over and keeps refusing both keys.
    await leader.kill();
    await follower.waitForLog((l) => l.msg === "became leader; writing status", 20_000);
    expect([...(await handedOut(follower, ns, "pool", 20))].filter((id) => bad.has(id))).toEqual([]);
    // The new leader writes its view (its dispenses changed the counters): the same facts.
    const after = await api.waitForPool(
      ns,
      "pool",
      (p) =>
        (keyStatus(p, keyId(keys.ok1))?.requests ?? 0) >
          (keyStatus(written, keyId(keys.ok1))?.requests ?? 0) && p,
      20_000,
    );
    expect(keyStatus(after, keyId(keys.limited))).toMatchObject({ state: "RateLimited", until: deadline });
    expect(keyStatus(after, keyId(keys.invalid))).toMatchObject({ state: "Invalid" });
    expect(after.status?.keys?.usable).toBe(2);
    await follower.stop();
  });
});

describe("a pool with a problem", () => {
  it("still records its keys' states: one Secret of two missing, a 429 is in the status within a second", async () => {
    const ns = await createTestNamespace(kc, "problem");
    const keys = { a: "sk-test-problem-a-00000001", b: "sk-test-problem-b-00000002" };
    await api.putSecret(ns, "good", keys);
    await api.createPool(ns, "pool", {
      provider: "openai",
      keys: [{ secretRef: { name: "good" } }, { secretRef: { name: "missing" } }],
    });
    const op = operator(ns);
    const pool = await api.waitForPool(
      ns,
      "pool",
      (p) => condition(p, "Degraded")?.reason === "SecretNotFound" && p,
    );
    expect(condition(pool, "Ready")).toMatchObject({ status: "True", reason: "KeysAvailable" });
    expect(condition(pool, "Stalled")?.status).toBe("False");

    await report(op, ns, "pool", {
      keyId: keyId(keys.a),
      statusCode: 429,
      headers: { "retry-after": "120" },
    });
    const reportedAt = Date.now();
    await api.waitForPool(
      ns,
      "pool",
      (p) => keyStatus(p, keyId(keys.a))?.state === "RateLimited" && p,
      5_000,
    );
    const shownMs = Date.now() - reportedAt;
    console.log(`a 429 on a pool with a missing Secret was in the status after ${shownMs} ms`);
    expect(shownMs).toBeLessThan(1_000);
    await op.stop();
  });
});

describe("the durability window", () => {
  it("a report is durable once its status write lands: kill -9 after that, and the restarted operator resumes it", async () => {
    const ns = await createTestNamespace(kc, "durable");
    const keys = { a: "sk-test-durable-a-00000001", b: "sk-test-durable-b-00000002" };
    await api.putSecret(ns, "keys", keys);
    await api.createPool(ns, "pool", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] });
    const first = operator(ns);
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 2);
    await report(first, ns, "pool", {
      keyId: keyId(keys.a),
      statusCode: 401,
      body: { error: { code: "invalid_api_key" } },
    });
    const reportedAt = Date.now();
    await api.waitForPool(ns, "pool", (p) => keyStatus(p, keyId(keys.a))?.state === "Invalid" && p, 5_000);
    console.log(`report durable (status written) after ${Date.now() - reportedAt} ms`);
    await first.kill();

    const second = operator(ns);
    await second.waitForLog((l) => l.msg === "operator running");
    expect([...(await handedOut(second, ns, "pool", 10))]).toEqual([keyId(keys.b)]);

    // A graceful stop flushes at once: a report just before SIGTERM is not lost either.
    await report(second, ns, "pool", {
      keyId: keyId(keys.b),
      statusCode: 429,
      headers: { "retry-after": "120" },
    });
    expect(await second.stop()).toBe(0);
    const stopped = await api.readPool(ns, "pool");
    expect(keyStatus(stopped, keyId(keys.b))?.state).toBe("RateLimited");
  });
});
