/**
 * `kubectl keypool ...` run by the real kubectl (the harness's cached one), which finds the plugin
 * as kubectl-keypool on PATH: a shim there execs bin/kubectl-keypool with this Node 24. Against the
 * shared control plane:
 * - without an operator (statuses written through the status subresource): status shows a
 *   RateLimited key and the seconds until it is usable; probe waits for status.lastProbeRequest
 *   and gives up after --timeout; disable/enable/drain edit spec.disabledKeys/drainedKeys (and the
 *   CRD takes them); rotate-check compares the Secret with the status by key id; a 403 is said
 *   plainly, naming the user and the ClusterRole to ask for;
 * - with a real operator (and a fake OpenAI for its probes): probe, disable, enable and drain end
 *   to end.
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PROBE_REQUEST_ANNOTATION } from "../../src/api/keypool.ts";
import { keyId } from "../../src/pool/identity.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd, keyPoolRef } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually, tokenKubeConfig } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const objects = kc.makeApiClient(CustomObjectsApi);

const PLUGIN = fileURLToPath(new URL("../../bin/kubectl-keypool", import.meta.url));
const KEYS = {
  a: "sk-test-plugin-alpha-0000000001",
  b: "sk-test-plugin-bravo-0000000002",
  c: "sk-test-plugin-charlie-00000003",
};
const ID = { a: keyId(KEYS.a), b: keyId(KEYS.b), c: keyId(KEYS.c) };

let shimDir: string;
let ns: string;

/** Runs the harness's kubectl with the shim's folder first on PATH; admin kubeconfig unless `env` says. */
function kubectl(args: string[], env: Record<string, string> = {}) {
  const binary = inject("kubectl");
  if (!binary) throw new Error("no kubectl: KUBEBUILDER_ASSETS has none and the harness did not build one");
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      binary,
      args,
      {
        timeout: 60_000,
        env: {
          ...process.env,
          PATH: `${shimDir}${delimiter}${process.env.PATH ?? ""}`,
          KUBECONFIG: inject("kubeconfig"),
          ...env,
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A Secret-backed pool whose status this test writes, as the operator would. */
async function poolWithStatus(name: string, keyStatuses: Array<{ state: string }>) {
  const byState: Record<string, number> = {};
  for (const { state } of keyStatuses) byState[state] = (byState[state] ?? 0) + 1;
  const usable = (byState.Healthy ?? 0) + (byState.Degraded ?? 0);
  await api.createPool(ns, name, { provider: "openai", keys: [{ secretRef: { name: "plugin-keys" } }] });
  await api.patchPoolStatus(ns, name, {
    observedGeneration: 1,
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "KeysAvailable",
        message: `${usable} of ${keyStatuses.length} keys usable`,
        lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      },
    ],
    keys: { total: keyStatuses.length, usable, byState },
    keyStatuses: keyStatuses as never,
  });
}

const keyStatus = (id: string, source: string, state: string, extra: object = {}) => ({
  id,
  masked: "sk-...0000",
  source,
  state,
  healthScore: 100,
  requests: 10,
  errors: 0,
  ...extra,
});

/** A ServiceAccount token's kubeconfig file, and the RBAC user name the API server gives it. */
async function accountKubeconfig(account: string): Promise<{ path: string; user: string }> {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: account } } });
  const { status } = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: account,
    body: { spec: { expirationSeconds: 600 } },
  });
  if (!status?.token) throw new Error("TokenRequest returned no token");
  const path = join(shimDir, `${account}.kubeconfig`);
  writeFileSync(path, tokenKubeConfig(status.token).exportConfig());
  return { path, user: `system:serviceaccount:${ns}:${account}` };
}

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "kubectl-plugin");
  shimDir = mkdtempSync(join(tmpdir(), "kubectl-keypool-path-"));
  const shim = join(shimDir, "kubectl-keypool");
  writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${PLUGIN}' "$@"\n`);
  chmodSync(shim, 0o755);
  await api.putSecret(ns, "plugin-keys", { a: KEYS.a, b: KEYS.b });
});

describe("kubectl keypool, no operator running", () => {
  const until = new Date(Date.now() + 45_000).toISOString().replace(/\.\d+Z$/, "Z");

  beforeAll(async () => {
    await poolWithStatus("limited", [
      keyStatus(ID.a, "secret/plugin-keys#a", "Healthy"),
      keyStatus(ID.b, "secret/plugin-keys#b", "RateLimited", {
        until,
        errors: 3,
        lastError: { code: 429, reason: "rate_limit_exceeded", at: new Date().toISOString() },
      }),
    ]);
  });

  it("kubectl finds the plugin on PATH", async () => {
    const { code, stdout } = await kubectl(["plugin", "list"]);
    expect(code).toBe(0);
    expect(stdout).toContain(join(shimDir, "kubectl-keypool"));
  });

  it("status POOL shows the RateLimited key, its state and the seconds until it is usable", async () => {
    const { code, stdout, stderr } = await kubectl(["keypool", "status", "limited", "-n", ns]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain(`KeyPool ${ns}/limited: Ready True (KeysAvailable)`);
    const row = stdout.split("\n").find((line) => line.startsWith(ID.b));
    expect(row).toMatch(
      new RegExp(
        `^${ID.b}\\s+RateLimited\\s+in (4[0-5]|3\\d)s\\s+${until}\\s+10\\s+3\\s+429 rate_limit_exceeded`,
      ),
    );
    expect(stdout).toMatch(new RegExp(`${ID.a}\\s+Healthy\\s+now`));
    expect(stdout).not.toContain("sk-test");
  });

  it("status POOL -o json gives the seconds as a number; --kubeconfig works as kubectl's does", async () => {
    const { code, stdout } = await kubectl(
      ["keypool", "status", "limited", "-n", ns, "-o", "json", "--kubeconfig", inject("kubeconfig")],
      { KUBECONFIG: "/nonexistent" },
    );
    expect(code).toBe(0);
    const key = JSON.parse(stdout).keys.find((k: { id: string }) => k.id === ID.b);
    expect(key).toMatchObject({ state: "RateLimited", usable: false, until });
    expect(key.usableInSeconds).toBeGreaterThan(30);
    expect(key.usableInSeconds).toBeLessThanOrEqual(45);
  });

  it("status without POOL lists the namespace's pools, usable/total keys", async () => {
    const { code, stdout } = await kubectl(["keypool", "status", "-n", ns]);
    expect(code).toBe(0);
    expect(stdout.split("\n")[0]).toMatch(/^NAME\s+READY\s+USABLE\s+NOT USABLE\s+REASON$/);
    expect(stdout).toMatch(/limited\s+True\s+1\/2\s+1 RateLimited\s+-/);
  });

  it("probe sets the annotation and waits until the status records it", async () => {
    await poolWithStatus("probed", [keyStatus(ID.a, "secret/plugin-keys#a", "Healthy")]);
    // What the operator's leader does: record the annotation's value once every key was probed.
    let stop = false;
    const operatorStandIn = (async () => {
      while (!stop) {
        const pool = await api.readPool(ns, "probed");
        const requested = (pool.metadata as { annotations?: Record<string, string> }).annotations?.[
          PROBE_REQUEST_ANNOTATION
        ];
        if (requested) {
          await api.patchPoolStatus(ns, "probed", { lastProbeRequest: requested });
          return requested;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return undefined;
    })();
    const { code, stdout, stderr } = await kubectl([
      "keypool",
      "probe",
      "probed",
      "-n",
      ns,
      "--timeout",
      "20s",
    ]);
    stop = true;
    const requested = await operatorStandIn;
    expect(code).toBe(0);
    expect(stderr).toContain(`${PROBE_REQUEST_ANNOTATION}=${requested}`);
    expect(stdout).toContain(`Probed every key at ${requested}.`);
    expect(stdout).toMatch(new RegExp(`${ID.a}\\s+Healthy`));
  });

  it("probe gives up after --timeout when no operator answers, and says what to check", async () => {
    const { code, stderr } = await kubectl(["keypool", "probe", "limited", "-n", ns, "--timeout", "1s"]);
    expect(code).toBe(1);
    expect(stderr).toContain("kubectl-keypool: the operator did not probe the keys within 1s: is it running");
    const pool = await api.readPool(ns, "limited");
    expect((pool.metadata as { annotations?: Record<string, string> }).annotations).toHaveProperty(
      PROBE_REQUEST_ANNOTATION,
    );
  });

  it("disable, drain and enable edit spec.disabledKeys and spec.drainedKeys, which the CRD accepts", async () => {
    const run = (...args: string[]) => kubectl(["keypool", ...args, "limited", ID.b, "-n", ns]);
    const spec = async () => (await api.readPool(ns, "limited")).spec;

    expect((await run("disable")).stdout).toContain(`key ${ID.b} of KeyPool ${ns}/limited: disabled`);
    expect(await spec()).toMatchObject({ disabledKeys: [ID.b] });
    expect((await run("disable")).stdout).toContain("already in spec.disabledKeys: nothing to change");

    expect((await run("drain")).code).toBe(0);
    expect(await spec()).toMatchObject({ disabledKeys: [ID.b], drainedKeys: [ID.b] });

    expect((await run("enable")).code).toBe(0);
    const after = await spec();
    expect(after.disabledKeys).toBeUndefined();
    expect(after.drainedKeys).toBeUndefined();
  });

  it("the CRD refuses a disabledKeys entry that is not a key id", async () => {
    await expect(
      objects.patchNamespacedCustomObject({
        ...keyPoolRef(ns),
        name: "limited",
        body: [{ op: "add", path: "/spec/disabledKeys", value: ["sk-live-oops"] }],
      }),
    ).rejects.toMatchObject({ code: 422 });
  });

  it("disable refuses a key id the pool's status does not show", async () => {
    const { code, stderr } = await kubectl(["keypool", "disable", "limited", "aaaaaaaaaaaa", "-n", ns]);
    expect(code).toBe(1);
    expect(stderr).toContain("the pool's status shows no such key");
  });

  it("rotate-check compares the Secret with the status by key id: new, removed, unchanged", async () => {
    await poolWithStatus("rotating", [
      keyStatus(ID.a, "secret/plugin-keys#a", "Healthy"),
      keyStatus(ID.c, "secret/plugin-keys#c", "Healthy"),
    ]);
    const { code, stdout } = await kubectl(["keypool", "rotate-check", "rotating", "-n", ns]);
    expect(code).toBe(0);
    expect(stdout).toContain(`KeyPool ${ns}/rotating: 1 new, 1 removed, 1 unchanged`);
    expect(stdout).toMatch(new RegExp(`new\\s+${ID.b}\\s+secret/plugin-keys#b`));
    expect(stdout).toMatch(new RegExp(`removed\\s+${ID.c}\\s+secret/plugin-keys#c\\s+Healthy`));
    expect(stdout).toMatch(new RegExp(`unchanged\\s+${ID.a}\\s+secret/plugin-keys#a`));
    for (const key of Object.values(KEYS)) expect(stdout).not.toContain(key);
    const json = JSON.parse(
      (await kubectl(["keypool", "rotate-check", "rotating", "-n", ns, "-o", "json"])).stdout,
    );
    expect(json.new).toEqual([{ id: ID.b, source: "secret/plugin-keys#b" }]);
  });

  it("a user without rights on keypools is told plainly who may not do what, and what to ask for", async () => {
    const { path, user } = await accountKubeconfig("nobody");
    const { code, stdout, stderr } = await kubectl([
      "keypool",
      "status",
      "limited",
      "-n",
      ns,
      "--kubeconfig",
      path,
    ]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toBe(
      `kubectl-keypool: you (user ${user}) may not get keypools in namespace ${ns}: ask for the keypool-view ` +
        `ClusterRole (or keypool-admin, to change pools), bound in namespace ${ns} (deploy/base/user-roles.yaml)\n` +
        `  an admin can grant it: kubectl create rolebinding keypool-view --clusterrole=keypool-view ` +
        `--serviceaccount=${ns}:nobody -n ${ns}\n`,
    );
  });

  it("a reader is told to ask for keypool-admin to probe, and for Secret rights to rotate-check", async () => {
    const { path, user } = await accountKubeconfig("reader");
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "read-keypools" },
        rules: [{ apiGroups: ["keypool.dev"], resources: ["keypools"], verbs: ["get", "list", "watch"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "reader-reads-keypools" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "read-keypools" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace: ns }],
      },
    });
    await eventually(
      async () => (await kubectl(["keypool", "status", "-n", ns, "--kubeconfig", path])).code === 0,
    );
    const probe = await kubectl(["keypool", "probe", "limited", "-n", ns, "--kubeconfig", path]);
    expect(probe.code).toBe(1);
    expect(probe.stderr).toContain(
      `you (user ${user}) may not patch keypools in namespace ${ns}: ask for the keypool-admin ClusterRole`,
    );
    const rotate = await kubectl(["keypool", "rotate-check", "limited", "-n", ns, "--kubeconfig", path]);
    expect(rotate.code).toBe(1);
    expect(rotate.stderr).toContain(`you (user ${user}) may not get secrets in namespace ${ns}`);
  });
});

describe("kubectl keypool, with the operator running", () => {
  let operatorNs: string;
  let fake: FakeProvider;
  let operator: OperatorProcess;
  const run = (...args: string[]) => kubectl(["keypool", ...args, "-n", operatorNs]);
  const keyOf = async (id: string) =>
    (await api.readPool(operatorNs, "live")).status?.keyStatuses?.find((k) => k.id === id);

  beforeAll(async () => {
    operatorNs = await createTestNamespace(kc, "kubectl-plugin-op");
    fake = await startFakeProvider("openai", { [KEYS.a]: { kind: "valid" }, [KEYS.b]: { kind: "valid" } });
    await api.putSecret(operatorNs, "keys", { a: KEYS.a, b: KEYS.b });
    await api.createPool(operatorNs, "live", {
      provider: "openai",
      baseURL: fake.url,
      keys: [{ secretRef: { name: "keys" } }],
      health: { probeInterval: "1h" },
    });
    operator = startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", operatorNs]);
    await api.waitForPool(
      operatorNs,
      "live",
      (p) => p.status?.keys?.usable === 2 && condition(p, "Ready")?.status === "True",
    );
    // Every key is probed once on joining: wait for those, so they are not taken for requested ones.
    await eventually(
      async () => [KEYS.a, KEYS.b].every((key) => fake.requests.some((r) => r.key === key)),
      10_000,
    );
  });

  afterAll(async () => {
    await operator?.stop();
    await fake?.close();
  });

  it("probe: the operator probes every key and the plugin shows the result", async () => {
    const mark = fake.requests.length;
    const { code, stdout } = await run("probe", "live", "--timeout", "30s");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Probed every key at \S+\.\nKeyPool \S+\/live: Ready True/);
    const probed = fake.requests.slice(mark).filter((r) => r.method === "GET" && r.path === "/v1/models");
    expect(new Set(probed.map((r) => r.key))).toEqual(new Set([KEYS.a, KEYS.b]));
  });

  it("disable --wait: the key is Disabled by the spec and the plugin says so", async () => {
    const { code, stdout } = await run("disable", "live", ID.a, "--wait");
    expect(code).toBe(0);
    expect(stdout).toContain("(now Disabled)");
    expect(await keyOf(ID.a)).toMatchObject({ state: "Disabled", disabledBySpec: true });
    expect((await run("status", "live")).stdout).toMatch(
      new RegExp(`${ID.a}\\s+Disabled \\(spec\\)\\s+when enabled`),
    );
  });

  it("enable --wait: Healthy again", async () => {
    const { code, stdout } = await run("enable", "live", ID.a, "--wait");
    expect(code).toBe(0);
    expect(stdout).toContain("(now Healthy)");
    expect((await keyOf(ID.a))?.disabledBySpec).toBeUndefined();
  });

  it("drain --wait: Draining though the Secret still holds it; enable brings it back", async () => {
    const drained = await run("drain", "live", ID.b, "--wait");
    expect(drained.code).toBe(0);
    expect(await keyOf(ID.b)).toMatchObject({ state: "Draining" });
    const check = await run("rotate-check", "live");
    expect(check.stdout).toMatch(new RegExp(`drained\\s+${ID.b}\\s+secret/keys#b\\s+Draining`));
    expect((await run("enable", "live", ID.b, "--wait")).code).toBe(0);
    expect((await keyOf(ID.b))?.state).toBe("Healthy");
  });
});
