/**
 * The operator survives what production throws at it: its own restart (state resumes from the
 * status), an API server restart, the death of the leader, and running with nothing but the
 * least-privilege RBAC from deploy/.
 */
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  KubeConfig as KubeConfigClass,
} from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Operator } from "../../src/controller/operator.ts";
import { createLogger } from "../../src/log.ts";
import { keyId } from "../../src/pool/identity.ts";
import { ensureBinaries } from "../support/control-plane/build.ts";
import { ControlPlane } from "../support/control-plane/control-plane.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually, kubectl } from "../support/kube.ts";
import { FAST_LEADER_ELECTION, type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const stopAfter: OperatorProcess[] = [];
afterAll(async () => {
  await Promise.all(stopAfter.map((o) => o.kill()));
});

function operatorOn(kubeconfig: string, args: string[]): OperatorProcess {
  const op = startOperator(["--kubeconfig", kubeconfig, ...args]);
  stopAfter.push(op);
  return op;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

beforeAll(async () => {
  await installKeyPoolCrd();
});

describe("an operator restart", () => {
  it("resumes a RateLimited key's cooldown and an Invalid mark from the status", async () => {
    const ns = await createTestNamespace(kc, "restart");
    const keys = {
      ok: "sk-test-restart-ok-000001",
      limited: "sk-test-restart-limited-02",
      dead: "sk-test-restart-dead-00003",
    };
    await api.putSecret(ns, "keys", { ok: keys.ok, limited: keys.limited, dead: keys.dead });
    await api.createPool(ns, "pool", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] });

    const first = operatorOn(inject("kubeconfig"), ["--namespaces", ns]);
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 3);
    // Until the dispenser exists, a status written as the operator would write it stands in for
    // the reports that made one key RateLimited and another Invalid.
    await first.kill();
    const until = Math.ceil((Date.now() + 12_000) / 1000) * 1000; // status times are whole seconds
    const pool = await api.readPool(ns, "pool");
    await api.patchPoolStatus(ns, "pool", {
      ...pool.status,
      keyStatuses: pool.status?.keyStatuses?.map((k) =>
        k.id === keyId(keys.limited)
          ? {
              ...k,
              state: "RateLimited",
              until: iso(until),
              requests: 41,
              errors: 1,
              lastError: { code: 429, reason: "rate_limit_exceeded", at: iso(Date.now()) },
            }
          : k.id === keyId(keys.dead)
            ? {
                ...k,
                state: "Invalid",
                requests: 5,
                errors: 1,
                lastError: { code: 401, reason: "invalid_api_key", at: iso(Date.now()) },
              }
            : { ...k, requests: 100 },
      ),
    });

    const second = operatorOn(inject("kubeconfig"), ["--namespaces", ns]);
    await second.waitForLog((l) => l.msg === "operator running");
    // A secret change forces a fresh evaluation and status write by the new process.
    await api.putSecret(ns, "keys", {
      ok: keys.ok,
      limited: keys.limited,
      dead: keys.dead,
      extra: "sk-test-restart-extra-004",
    });
    const after = await api.waitForPool(ns, "pool", (p) => p.status?.keys?.total === 4 && p);
    const byId = new Map(after.status?.keyStatuses?.map((k) => [k.id, k]));
    expect(byId.get(keyId(keys.limited))).toMatchObject({
      state: "RateLimited",
      until: iso(until),
      requests: 41,
    });
    expect(byId.get(keyId(keys.dead))).toMatchObject({ state: "Invalid", requests: 5 });
    expect(byId.get(keyId(keys.ok))).toMatchObject({ state: "Healthy", requests: 100 });
    expect(after.status?.keys?.usable).toBe(2);

    // At its time, and not before, the cooldown ends: the key is Healthy again, with an Event.
    const recovered = await api.waitForPool(
      ns,
      "pool",
      (p) => p.status?.keyStatuses?.find((k) => k.id === keyId(keys.limited) && k.state === "Healthy") && p,
      30_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(until);
    expect(recovered.status?.keyStatuses?.find((k) => k.id === keyId(keys.dead))?.state).toBe("Invalid");
    await eventually(async () =>
      (await api.events(ns)).some((e) => e.reason === "KeyRecovered" && e.type === "Normal"),
    );
    await second.stop();
  });
});

describe("an operator restarted with nothing changed", () => {
  it("writes no status: each pool's status as it stands is already what it would write", async () => {
    const ns = await createTestNamespace(kc, "restart-quiet");
    await api.putSecret(ns, "keys", { a: "sk-test-quiet-a-00000001", b: "sk-test-quiet-b-00000002" });
    const names = Array.from({ length: 8 }, (_, i) => `pool-${i}`);
    for (const name of names)
      await api.createPool(ns, name, { provider: "openai", keys: [{ secretRef: { name: "keys" } }] });
    // One pool Ready=False (its Secret is missing): a condition with a message, and a Warning.
    await api.createPool(ns, "missing", { provider: "openai", keys: [{ secretRef: { name: "nope" } }] });
    names.push("missing");
    const start = async () => {
      const operator = new Operator({
        kc,
        logger: createLogger({ level: "silent" }),
        clock: { now: () => Date.now() },
        namespaces: [ns],
        leaderElection: { enabled: false },
        probes: false,
      });
      await operator.start();
      return operator;
    };

    const first = await start();
    try {
      for (const name of names)
        await api.waitForPool(
          ns,
          name,
          (p) => ["True", "False"].includes(condition(p, "Ready")?.status ?? "") && p,
        );
    } finally {
      await first.stop(); // writes what is pending
    }
    expect(first.statusWriter.stats.writes).toBeGreaterThanOrEqual(names.length);

    const second = await start();
    try {
      await eventually(
        async () => names.every((name) => second.registry.get({ namespace: ns, name })) || undefined,
      );
      // Well past the debounce of a change of state (100 ms): anything due would be written by now.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(second.statusWriter.stats).toMatchObject({ writes: 0, failures: 0 });
      expect(second.statusWriter.stats.skipped).toBeGreaterThanOrEqual(names.length);
    } finally {
      await second.stop();
    }
  });
});

describe("an API server restart", () => {
  let plane: ControlPlane;
  beforeAll(async () => {
    plane = await ControlPlane.start({ binaries: await ensureBinaries() });
  }, 120_000);
  afterAll(async () => {
    await plane?.stop();
  });

  it("is survived: the operator reconnects and reflects a Secret change made after it", async () => {
    const { code, stderr } = await kubectl([
      "--kubeconfig",
      plane.kubeconfigPath,
      "apply",
      "--server-side",
      "-f",
      "crds/keypool.dev_keypools.yaml",
    ]);
    expect(code, stderr).toBe(0);
    await kubectl([
      "--kubeconfig",
      plane.kubeconfigPath,
      "wait",
      "--for=condition=Established",
      "crd/keypools.keypool.dev",
    ]);
    const own = new KubeConfigClass();
    own.loadFromFile(plane.kubeconfigPath);
    const ownApi = poolApi(own);
    await own.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: "ai" } } });
    await ownApi.putSecret("ai", "keys", { a: "sk-test-apirestart-a-0001" });
    await eventually(() =>
      ownApi.createPool("ai", "pool", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] }),
    );

    const op = operatorOn(plane.kubeconfigPath, ["--namespaces", "ai"]);
    await ownApi.waitForPool("ai", "pool", (p) => p.status?.keys?.usable === 1);

    await plane.stopApiServer();
    await new Promise((r) => setTimeout(r, 2_000));
    await plane.startApiServer();

    await eventually(
      () =>
        ownApi.putSecret("ai", "keys", { a: "sk-test-apirestart-a-0001", b: "sk-test-apirestart-b-0002" }),
      30_000,
    );
    const started = Date.now();
    await ownApi.waitForPool("ai", "pool", (p) => p.status?.keys?.usable === 2, 60_000);
    console.log(`after API server restart: Secret change reflected in ${Date.now() - started} ms`);
    expect(op.child.exitCode).toBeNull();
    await op.stop();
  });
});

describe("two operator replicas with leader election", () => {
  it("have one leader; when it dies, the other takes over and status keeps updating", async () => {
    const ns = await createTestNamespace(kc, "leader");
    await api.putSecret(ns, "keys", { a: "sk-test-leader-a-000001" });
    await api.createPool(ns, "pool", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] });
    const args = ["--namespaces", ns, ...FAST_LEADER_ELECTION, "--leader-election-namespace", ns];
    const one = operatorOn(inject("kubeconfig"), args);
    const two = operatorOn(inject("kubeconfig"), args);
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 1);

    const leases = kc.makeApiClient(CoordinationV1Api);
    const holder = await eventually(
      async () =>
        (await leases.readNamespacedLease({ namespace: ns, name: "keypool-operator" })).spec?.holderIdentity,
    );
    // Which process holds the Lease: each logs its identity when it starts.
    const identityOf = async (op: OperatorProcess) =>
      (await op.waitForLog((l) => l.msg === "starting operator")).identity;
    const [leader, follower] = (await identityOf(one)) === holder ? [one, two] : [two, one];
    expect(await identityOf(leader)).toBe(holder);
    await leader.waitForLog((l) => l.msg === "became leader; writing status");
    expect(follower.logs.some((l) => l.msg === "became leader; writing status")).toBe(false);

    await leader.kill();
    await follower.waitForLog((l) => l.msg === "became leader; writing status", 20_000);
    const newHolder = (await leases.readNamespacedLease({ namespace: ns, name: "keypool-operator" })).spec
      ?.holderIdentity;
    expect(newHolder).not.toBe(holder);

    await api.putSecret(ns, "keys", { a: "sk-test-leader-a-000001", b: "sk-test-leader-b-000002" });
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 2);
    await follower.stop();
  });
});

describe("the least-privilege RBAC in deploy/", () => {
  it("is enough: a ServiceAccount bound only to it runs the operator, and the Secret cache holds only labelled Secrets", async () => {
    // Install deploy/base/rbac.yaml as it is (namespace keypool-system), then act as its ServiceAccount.
    await kubectl(["create", "namespace", "keypool-system"]);
    const rbac = await readFile("deploy/base/rbac.yaml", "utf8");
    const { code, stderr } = await kubectl(["apply", "-f", "-"], { input: rbac });
    expect(code, stderr).toBe(0);
    expect(parseAllDocuments(rbac).length).toBeGreaterThan(3);
    const core = kc.makeApiClient(CoreV1Api);
    const token = await eventually(
      async () =>
        (
          await core.createNamespacedServiceAccountToken({
            namespace: "keypool-system",
            name: "keypool-operator",
            body: { spec: {} },
          })
        ).status?.token,
    );
    const kubeconfig = join(tmpdir(), `keypool-operator-sa-${Date.now()}.kubeconfig`);
    await writeFile(kubeconfig, saKubeconfig(kc, token));

    const ns = await createTestNamespace(kc, "rbac");
    await api.putSecret(ns, "keys", { a: "sk-test-rbac-a-0000001" });
    await api.putSecret(ns, "not-for-us", { x: "sk-test-rbac-unlabelled-01" }, false);
    await api.createPool(ns, "pool", { provider: "openai", keys: [{ secretRef: { name: "keys" } }] });
    await api.createPool(ns, "wants-unlabelled", {
      provider: "openai",
      keys: [{ secretRef: { name: "not-for-us" } }],
    });

    const op = operatorOn(kubeconfig, FAST_LEADER_ELECTION);
    await api.waitForPool(ns, "pool", (p) => condition(p, "Ready")?.status === "True");
    await api.putSecret(ns, "keys", { a: "sk-test-rbac-a-0000001", b: "sk-test-rbac-b-0000002" });
    await api.waitForPool(ns, "pool", (p) => p.status?.keys?.usable === 2);
    // Events were written with the ServiceAccount's rights too.
    const unlabelled = await api.waitForPool(
      ns,
      "wants-unlabelled",
      (p) => condition(p, "Ready")?.reason === "SecretNotLabelled" && p,
    );
    expect(condition(unlabelled, "Ready")?.message).toContain("keypool.dev/secret");
    await eventually(async () => (await api.events(ns)).some((e) => e.reason === "SecretNotLabelled"));

    // The operator's log lines never mention a forbidden request.
    expect(op.lines.join("\n")).not.toMatch(/forbidden/i);
    await op.stop();

    // The same rights, in process, to look into the Secret cache: only labelled Secrets are in it.
    const saKc = new KubeConfigClass();
    saKc.loadFromFile(kubeconfig);
    const inProcess = new Operator({
      kc: saKc,
      logger: createLogger({ level: "silent" }),
      clock: { now: () => Date.now() },
      namespaces: [],
      leaderElection: { enabled: false },
    });
    await inProcess.start();
    try {
      const cached = inProcess.secretCache.list(ns).map((s) => s.metadata?.name);
      expect(cached).toEqual(["keys"]);
    } finally {
      await inProcess.stop();
    }
  });
});

function saKubeconfig(admin: KubeConfig, token: string): string {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("no cluster");
  const kcSa = new KubeConfigClass();
  kcSa.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "keypool-operator", token }],
    contexts: [{ name: "sa", cluster: cluster.name, user: "keypool-operator" }],
    currentContext: "sa",
  });
  return kcSa.exportConfig();
}
