/**
 * The ClusterRoles deploy/ installs for the users of KeyPools (deploy/base/user-roles.yaml), on the
 * real API server with the operator running: the one-liner the README gives,
 * `kubectl create rolebinding app-uses-pools --clusterrole=keypool-user --serviceaccount=<ns>:app`,
 * lets that ServiceAccount take a key (and nothing more); a ServiceAccount without it gets 403;
 * keypool-admin adds the admin actions.
 *
 * Aggregation into the built-in view, edit and admin ClusterRoles is checked structurally only:
 * the rules are copied into them by kube-controller-manager's clusterrole-aggregation
 * controller, and the test control plane runs no controller-manager (kube-apiserver and etcd
 * only), so a user bound to `view` gets nothing from keypool-view here. The test reads the
 * built-in roles' aggregationRule selectors from the API server and works out, from our labels,
 * which rules each would take in; it does not claim the controller did it.
 */
import { type LabelSelector, matchesSelector } from "../../src/sources/kubernetes/selector.ts";
import { join, resolve } from "node:path";
import { CoreV1Api, RbacAuthorizationV1Api, type V1ClusterRole } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually, kubectl } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const api = poolApi(kc);

const KEYS = ["sk-cluster-roles-key-a", "sk-cluster-roles-key-b"];
const POOL = "team-pool";

/** The ClusterRoles of `kubectl kustomize deploy/` that are for KeyPool users, not the operator. */
async function userClusterRoles(): Promise<V1ClusterRole[]> {
  const built = await kubectl(["kustomize", join(ROOT, "deploy")]);
  expect(built.code, built.stderr).toBe(0);
  return parseAllDocuments(built.stdout)
    .map((d) => d.toJS() as V1ClusterRole)
    .filter((o) => o.kind === "ClusterRole" && !o.metadata?.name?.startsWith("keypool-operator"));
}

/** A TokenRequest token of audience keypool, what the projected volume of examples/client.yaml holds. */
async function tokenOf(namespace: string, name: string): Promise<string> {
  const { status } = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: ["keypool"], expirationSeconds: 600 } },
  });
  if (!status?.token) throw new Error("TokenRequest returned no token");
  return status.token;
}

/** `kubectl auth can-i <verb> keypools.keypool.dev --as=system:serviceaccount:<ns>:<sa> -n <ns>`. */
function canI(verb: string, namespace: string, account: string) {
  return kubectl([
    "auth",
    "can-i",
    verb,
    "keypools.keypool.dev",
    `--as=system:serviceaccount:${namespace}:${account}`,
    "-n",
    namespace,
  ]);
}

let roles: V1ClusterRole[];
let ns: string;
let fake: FakeProvider;
let operator: OperatorProcess | undefined;
let url: string;

beforeAll(async () => {
  await installKeyPoolCrd();
  roles = await userClusterRoles();
  // Only these objects, server-side applied with the field manager other test files use: safe to
  // repeat and to race with image.test.ts applying the same file.
  const yaml = roles.map((r) => stringify(r)).join("---\n");
  await eventually(async () => {
    const res = await kubectl(
      ["apply", "--server-side", "--force-conflicts", "--field-manager=keypool-tests", "-f", "-"],
      { input: yaml },
    );
    if (res.code !== 0) throw new Error(res.stderr);
    return true;
  });

  ns = await createTestNamespace(kc, "cluster-roles");
  for (const name of ["app", "stranger", "ops"])
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  fake = await startFakeProvider(
    "openai",
    Object.fromEntries(KEYS.map((k) => [k, { kind: "valid" } as const])),
  );
  await api.putSecret(ns, "team-keys", { a: KEYS[0] as string, b: KEYS[1] as string });
  await api.createPool(ns, POOL, {
    provider: "openai",
    baseURL: fake.url,
    keys: [{ secretRef: { name: "team-keys" } }],
  });
  // Kubernetes auth (the default): TokenReview and SubjectAccessReview with the admin kubeconfig.
  operator = startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns, "--no-probes"]);
  url = await operator.dispenserUrl();
  await api.waitForPool(ns, POOL, (p) => condition(p, "Ready")?.status === "True");
});

afterAll(async () => {
  await operator?.stop();
  await fake?.close();
});

async function getKey(account: string) {
  const res = await fetch(`${url}/v1/pools/${ns}/${POOL}/key`, {
    headers: { authorization: `Bearer ${await tokenOf(ns, account)}` },
  });
  return {
    status: res.status,
    body: (await res.json()) as { key?: string; keyId?: string; error?: { code: string } },
  };
}

async function resetKey(account: string, keyId: string) {
  const res = await fetch(`${url}/v1/pools/${ns}/${POOL}/keys/${keyId}/reset`, {
    method: "POST",
    headers: { authorization: `Bearer ${await tokenOf(ns, account)}` },
  });
  return { status: res.status, body: (await res.json()) as { keyId?: string; error?: { code: string } } };
}

describe("keypool-user, bound with the README's one-liner", () => {
  it("lets the ServiceAccount take a key; a ServiceAccount without the binding gets 403", async () => {
    const created = await kubectl([
      "create",
      "rolebinding",
      "app-uses-pools",
      "--clusterrole=keypool-user",
      `--serviceaccount=${ns}:app`,
      "-n",
      ns,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim()).toBe("rolebinding.rbac.authorization.k8s.io/app-uses-pools created");

    // RBAC answers from informers: wait until it sees the binding, so the operator's first
    // SubjectAccessReview cannot get (and cache for 10 s) a denial.
    const allowed = await eventually(async () => {
      const res = await canI("use", ns, "app");
      return res.stdout.trim() === "yes" && res;
    });
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toBe(""); // kubectl knows the verb use: no warning

    const granted = await getKey("app");
    expect(granted.status).toBe(200);
    expect(KEYS).toContain(granted.body.key);

    const stranger = await canI("use", ns, "stranger");
    expect({ code: stranger.code, stdout: stranger.stdout.trim() }).toEqual({ code: 1, stdout: "no" });
    const denied = await getKey("stranger");
    expect(denied).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    expect(JSON.stringify(denied.body)).not.toMatch(/sk-cluster-roles/);
  });

  it("lets it list the pools (kubectl get kp) but not change them or take admin actions", async () => {
    await eventually(async () => (await canI("use", ns, "app")).stdout.trim() === "yes");
    const list = await kubectl(["get", "kp", "-n", ns, `--as=system:serviceaccount:${ns}:app`]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(POOL);
    for (const verb of ["update", "patch", "delete", "create"])
      expect((await canI(verb, ns, "app")).stdout.trim(), verb).toBe("no");

    const { body } = await getKey("app");
    expect(await resetKey("app", body.keyId as string)).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden" } },
    });
  });
});

describe("keypool-admin", () => {
  it("adds the operator's admin actions (verb update) to using and managing KeyPools", async () => {
    const created = await kubectl([
      "create",
      "rolebinding",
      "ops-admin-pools",
      "--clusterrole=keypool-admin",
      `--serviceaccount=${ns}:ops`,
      "-n",
      ns,
    ]);
    expect(created.code, created.stderr).toBe(0);
    await eventually(async () => (await canI("update", ns, "ops")).stdout.trim() === "yes");
    for (const verb of ["use", "get", "list", "watch", "create", "patch", "delete"])
      expect((await canI(verb, ns, "ops")).stdout.trim(), verb).toBe("yes");
    // Only the operator writes the status.
    const status = await kubectl([
      "auth",
      "can-i",
      "patch",
      "keypools.keypool.dev",
      "--subresource=status",
      `--as=system:serviceaccount:${ns}:ops`,
      "-n",
      ns,
    ]);
    expect(status.stdout.trim()).toBe("no");

    const { status: got, body } = await getKey("ops");
    expect(got).toBe(200);
    expect(await resetKey("ops", body.keyId as string)).toMatchObject({
      status: 200,
      body: { keyId: body.keyId },
    });
  });
});

describe("why the ClusterRoles: kubectl create role cannot grant use on keypools", () => {
  it("refuses the verb use outside podsecuritypolicies, with the message the issue quotes", async () => {
    const res = await kubectl([
      "create",
      "role",
      "use-pools",
      "--verb=use",
      "--resource=keypools.keypool.dev",
      "-n",
      ns,
      "--dry-run=server",
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("can not perform 'use' on 'keypools' in group 'keypool.dev'");
  });
});

describe("aggregation into the built-in view, edit and admin ClusterRoles (structural: no controller-manager here)", () => {
  it("gives view read access, edit and admin management and use, and aggregates keypool-user nowhere", async () => {
    // The built-in aggregated roles as this API server bootstrapped them (their aggregationRule
    // and labels; their rules stay empty without the aggregation controller).
    const aggregated = (
      await rbac.listClusterRole({ labelSelector: "kubernetes.io/bootstrapping=rbac-defaults" })
    ).items.filter((r) => r.aggregationRule?.clusterRoleSelectors?.length);
    expect(aggregated.map((r) => r.metadata?.name)).toEqual(
      expect.arrayContaining(["admin", "edit", "view"]),
    );

    /** The aggregated built-in roles that take in a role with these labels, directly or through another. */
    const takenInBy = (labels: Record<string, string> | undefined): Set<string> => {
      const into = new Set<string>();
      const visit = (l: Record<string, string> | undefined) => {
        for (const role of aggregated) {
          const name = role.metadata?.name as string;
          if (into.has(name)) continue;
          if (
            role.aggregationRule?.clusterRoleSelectors?.some((s) => matchesSelector(l, s as LabelSelector))
          ) {
            into.add(name);
            visit(role.metadata?.labels); // view is itself labelled aggregate-to-edit, edit aggregate-to-admin
          }
        }
      };
      visit(labels);
      return into;
    };

    const byRole = Object.fromEntries(
      roles.map((r) => [r.metadata?.name, [...takenInBy(r.metadata?.labels)].sort()]),
    );
    expect(byRole).toEqual({
      "keypool-user": [],
      "keypool-admin": ["admin", "edit"],
      "keypool-view": ["admin", "edit", "view"],
    });

    /** The verbs on keypools.keypool.dev a built-in role would hold once aggregated. */
    const keypoolVerbs = (builtIn: string) =>
      [
        ...new Set(
          roles
            .filter((r) => takenInBy(r.metadata?.labels).has(builtIn))
            .flatMap((r) => r.rules ?? [])
            .filter((rule) => rule.apiGroups?.includes("keypool.dev") && rule.resources?.includes("keypools"))
            .flatMap((rule) => rule.verbs),
        ),
      ].sort();
    const manage = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "use", "watch"];
    expect({ view: keypoolVerbs("view"), edit: keypoolVerbs("edit"), admin: keypoolVerbs("admin") }).toEqual({
      // view cannot read Secrets, so it must not take keys either.
      view: ["get", "list", "watch"],
      // edit and admin can read the Secrets holding the keys anyway (see user-roles.yaml).
      edit: manage,
      admin: manage,
    });
    // No role of ours names keypools/status or anything outside keypool.dev.
    for (const role of roles)
      for (const rule of role.rules ?? []) {
        expect(rule.apiGroups, role.metadata?.name).toEqual(["keypool.dev"]);
        expect(rule.resources, role.metadata?.name).toEqual(["keypools"]);
      }
  });
});
