/**
 * Every manifest a user applies, checked by the real API server: the kustomize builds of deploy/
 * (the base and its variants, deploy/ha/ among them) and every file in examples/ go through a server-side dry-run, which
 * runs the API server's validation, defaulting and admission without storing anything. The
 * Deployment is also held to the security and availability settings the README promises.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { installKeyPoolCrd } from "../support/crd.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";
import { MONITORING_CRDS } from "../support/monitoring-crds.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const VARIANTS = ["deploy", "deploy/namespaced", "deploy/monitoring", "deploy/ha"];

async function build(dir: string): Promise<string> {
  const res = await kubectl(["kustomize", join(ROOT, dir)]);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
}

const objects = (yaml: string) =>
  parseAllDocuments(yaml)
    .map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string }; spec?: unknown })
    .filter(Boolean);

beforeAll(async () => {
  await installKeyPoolCrd();
  // Namespaced objects need their namespace to exist, even in a dry-run.
  for (const ns of ["keypool-system", "team-a"]) await kubectl(["create", "namespace", ns]);
  const crds = await kubectl(["apply", "-f", "-"], { input: MONITORING_CRDS });
  expect(crds.code, crds.stderr).toBe(0);
  await kubectl([
    "wait",
    "--for=condition=Established",
    "crd/servicemonitors.monitoring.coreos.com",
    "crd/prometheusrules.monitoring.coreos.com",
  ]);
});

describe("deploy/ passes a server-side dry-run", () => {
  it.each(VARIANTS)("kubectl apply -k %s", async (dir) => {
    const yaml = await build(dir);
    for (const mode of ["client", "server"]) {
      const res = await kubectl(["apply", `--dry-run=${mode}`, "-f", "-"], { input: yaml });
      expect(res.code, `${mode}: ${res.stderr}`).toBe(0);
      expect(res.stdout.trim().split("\n").length).toBe(objects(yaml).length);
    }
  });

  it("the namespaced variant has no cluster-wide access to Secrets or KeyPools", async () => {
    const list = objects(await build("deploy/namespaced"));
    // The operator's only ClusterRoleBinding is to the TokenReview/SubjectAccessReview role; the
    // KeyPool users' ClusterRoles (user-roles.yaml) are there too, bound by nobody.
    const bound = list.filter((o) => o.kind === "ClusterRoleBinding").map((o) => o.metadata.name);
    expect(bound).toEqual(["keypool-operator-auth"]);
    const clusterRoles = list.filter((o) => o.kind === "ClusterRole").map((o) => o.metadata.name);
    expect(clusterRoles.sort()).toEqual([
      "keypool-admin",
      "keypool-operator-auth",
      "keypool-user",
      "keypool-view",
    ]);
    for (const role of list.filter((o) => o.kind === "ClusterRole"))
      expect(JSON.stringify(role), role.metadata.name).not.toContain("secrets");
    const role = list.find((o) => o.kind === "Role" && o.metadata.namespace === "team-a");
    expect(JSON.stringify(role)).toContain("secrets");
    const deployment = JSON.stringify(list.find((o) => o.kind === "Deployment"));
    expect(deployment).toContain("--namespaces=team-a");
  });
});

describe("the Deployment", () => {
  it("runs two replicas with leader election, probes, limits and a locked-down security context", async () => {
    const list = objects(await build("deploy"));
    expect(list.map((o) => o.kind).sort()).toEqual(
      [
        "ClusterRole", // keypool-operator
        "ClusterRole", // keypool-operator-auth
        "ClusterRole", // keypool-user
        "ClusterRole", // keypool-admin
        "ClusterRole", // keypool-view
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "Service",
        "ServiceAccount",
      ].sort(),
    );
    const deployment = list.find((o) => o.kind === "Deployment") as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            securityContext: Record<string, unknown>;
            containers: Array<Record<string, unknown> & { securityContext: Record<string, unknown> }>;
          };
        };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const [container] = pod.containers;
    expect(container?.args).toEqual(expect.arrayContaining(["operator", "--leader-elect"]));
    expect(container?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container?.livenessProbe).toMatchObject({ httpGet: { path: "/healthz", port: "probes" } });
    expect(container?.readinessProbe).toMatchObject({ httpGet: { path: "/readyz", port: "probes" } });
    expect(container?.resources).toMatchObject({
      requests: { cpu: expect.any(String), memory: expect.any(String) },
    });
    expect((container?.resources as { limits: object }).limits).toHaveProperty("memory");

    const policy = list.find((o) => o.kind === "NetworkPolicy") as unknown as {
      spec: { ingress: Array<{ ports: Array<{ port: string }> }> };
    };
    expect(policy.spec.ingress.flatMap((i) => i.ports.map((p) => p.port))).toEqual(["http"]);
    const monitoring = objects(await build("deploy/monitoring"));
    expect(JSON.stringify(monitoring.find((o) => o.kind === "ServiceMonitor"))).toContain('"port":"probes"');
  });
});

describe("the HA variant", () => {
  it("runs three replicas reading the shared state store from the user's Secret, and keeps two through drains", async () => {
    const base = objects(await build("deploy"));
    const list = objects(await build("deploy/ha"));
    // The same objects as deploy/: no second PodDisruptionBudget over the same pods.
    expect(list.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      base.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    );
    const deployment = list.find((o) => o.kind === "Deployment") as unknown as {
      spec: {
        replicas: number;
        template: { spec: { affinity: unknown; containers: Array<{ args: string[]; env: unknown[] }> } };
      };
    };
    expect(deployment.spec.replicas).toBe(3);
    const baseDeployment = base.find((o) => o.kind === "Deployment") as unknown as typeof deployment;
    expect(deployment.spec.template.spec.affinity).toEqual(baseDeployment.spec.template.spec.affinity);
    const [container] = deployment.spec.template.spec.containers;
    expect(container?.args).toEqual(baseDeployment.spec.template.spec.containers[0]?.args);
    expect(container?.env).toEqual(
      expect.arrayContaining([
        {
          name: "KEYPOOL_STATE_STORE",
          valueFrom: { secretKeyRef: { name: "keypool-state-store", key: "url" } },
        },
        {
          name: "KEYPOOL_STATE_STORE_PASSWORD",
          valueFrom: { secretKeyRef: { name: "keypool-state-store", key: "password", optional: true } },
        },
        ...(baseDeployment.spec.template.spec.containers[0]?.env ?? []),
      ]),
    );
    const pdb = list.find((o) => o.kind === "PodDisruptionBudget") as unknown as {
      spec: { minAvailable: number; selector: unknown };
    };
    const basePdb = base.find((o) => o.kind === "PodDisruptionBudget") as unknown as typeof pdb;
    expect(pdb.spec).toEqual({ minAvailable: 2, selector: basePdb.spec.selector });
  });
});

describe("examples/ passes a server-side dry-run", () => {
  it("every file", async () => {
    const ns = await createTestNamespace(adminKubeConfig(), "examples");
    const files = (await readdir(join(ROOT, "examples"))).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      const yaml = await readFile(join(ROOT, "examples", file), "utf8");
      const res = await kubectl(["apply", "--dry-run=server", "-n", ns, "-f", "-"], { input: yaml });
      expect(res.code, `${file}: ${res.stderr}`).toBe(0);
      expect(res.stdout, file).toContain("(server dry run)");
    }
  });
});
