/**
 * The Helm chart (charts/keypool-operator) with real helm, built from its Go module
 * (test/support/helm.ts): Helm 4 and Helm 3, against the shared control plane.
 *
 * - One source of truth: with default values `helm template` renders what
 *   `kubectl kustomize deploy/` does, field by field, but Helm's own labels and the Namespace
 *   (Helm installs into an existing one); with the matching values, deploy/namespaced/,
 *   deploy/ha/ and deploy/monitoring/ too.
 * - helm lint --strict passes, and an unknown key in the values fails it (values.schema.json);
 *   combinations the schema cannot rule out fail with a message naming the values.
 * - helm template with every toggle on, and the flags and environment it gives the operator are
 *   what `keypool operator` parses.
 * - helm install --dry-run=server with default values, with watchNamespaces and with monitoring
 *   on; helm's dry-run does not send the objects, so its manifest also goes through
 *   `kubectl apply --server-side --dry-run=server` (the API server's validation and admission).
 * - The release manifest (npm run release-manifest) applies with
 *   `kubectl apply --server-side --dry-run=server`.
 *
 * Objects from the monitoring templates another change owns (templates/prometheusrule.yaml,
 * templates/dashboard-configmap.yaml) are only required to render and to pass the dry-runs.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { parseKeyPool } from "../../src/api/parse.ts";
import { parseOperatorConfig } from "../../src/config.ts";
import { buildReleaseManifest } from "../../scripts/release-manifest.ts";
import {
  ensureHelm,
  HELM3_VERSION,
  HELM_VERSION,
  identity,
  type RenderedObject,
  renderedObjects,
  runHelm,
  withoutHelmLabels,
} from "../support/helm.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";
import { MONITORING_CRDS } from "../support/monitoring-crds.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CHART = join(ROOT, "charts/keypool-operator");
const RELEASE = "keypool-operator";
const NAMESPACE = "keypool-system";
/** Templates whose content another change owns: they must render, nothing more is asserted. */
const OTHER_TEMPLATES = ["templates/prometheusrule.yaml", "templates/dashboard-configmap.yaml"];
/** What those render, left out of the comparison with deploy/monitoring/. */
const OTHER_KINDS = ["PrometheusRule", "ConfigMap"];

/** Every toggle on and every operator setting set. */
const ALL_ON = {
  replicas: 3,
  image: { pullSecrets: [{ name: "registry" }] },
  leaderElection: { leaseDuration: "20s", renewDeadline: "15s", retryPeriod: "3s" },
  watchNamespaces: ["team-a", "team-b"],
  logLevel: "debug",
  shutdownDelay: "10s",
  terminationGracePeriodSeconds: 60,
  auth: { audiences: ["keypool", "gateway"], staleGrace: "2m" },
  proxy: { maxBody: "16mb", retryBody: "2mb", maxWait: "30s" },
  stateStore: {
    urlSecret: { name: "keypool-state-store" },
    passwordSecret: { name: "keypool-state-store", optional: true },
    prefix: "team:",
    failure: "closed",
  },
  podAnnotations: { "example.com/owner": "ai-platform" },
  podLabels: { team: "ai-platform" },
  priorityClassName: "system-cluster-critical",
  nodeSelector: { "kubernetes.io/os": "linux" },
  tolerations: [{ key: "dedicated", operator: "Equal", value: "ai", effect: "NoSchedule" }],
  podAntiAffinityPreset: "hard",
  topologySpreadConstraints: [
    {
      maxSkew: 1,
      topologyKey: "topology.kubernetes.io/zone",
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: { matchLabels: { "app.kubernetes.io/name": "keypool-operator" } },
    },
  ],
  podDisruptionBudget: { minAvailable: 2 },
  extraArgs: ["--no-probes"],
  extraEnv: [{ name: "NODE_OPTIONS", value: "--max-old-space-size=384" }],
  monitoring: {
    serviceMonitor: { enabled: true, interval: "15s", labels: { release: "prometheus" } },
    prometheusRule: { enabled: true, labels: { release: "prometheus" }, usableKeysThresholdPercent: 25 },
    dashboard: { enabled: true },
  },
};

let helm: string;
let helm3: string;
let scratch: string;

beforeAll(async () => {
  // The first run builds both (a few minutes); later runs find them in the cache.
  [helm, helm3] = await Promise.all([ensureHelm(), ensureHelm({ version: HELM3_VERSION })]);
  scratch = await mkdtemp(join(tmpdir(), "keypool-helm-test-"));
}, 900_000);

let valuesFiles = 0;
/** Writes values to a file for `--values` (JSON is YAML). */
async function valuesFile(values: object): Promise<string> {
  const path = join(scratch, `values-${++valuesFiles}.yaml`);
  await writeFile(path, JSON.stringify(values));
  return path;
}

/** `helm template` of the chart (release keypool-operator in keypool-system unless told). */
async function template(
  values: object = {},
  options: { binary?: string; namespace?: string; extra?: string[] } = {},
) {
  return runHelm(options.binary ?? helm, [
    "template",
    RELEASE,
    CHART,
    "--namespace",
    options.namespace ?? NAMESPACE,
    "--values",
    await valuesFile(values),
    ...(options.extra ?? []),
  ]);
}

/** The rendered objects; fails the test with helm's message when rendering fails. */
async function render(values: object = {}, options: Parameters<typeof template>[1] = {}) {
  const res = await template(values, options);
  expect(res.code, res.stderr).toBe(0);
  return renderedObjects(res.stdout);
}

async function kustomize(dir: string): Promise<RenderedObject[]> {
  const res = await kubectl(["kustomize", join(ROOT, dir)]);
  expect(res.code, res.stderr).toBe(0);
  return renderedObjects(res.stdout).map((r) => r.object);
}

const byIdentity = (objects: RenderedObject[]) => new Map(objects.map((o) => [identity(o), o]));

function deploymentOf(objects: RenderedObject[]) {
  const deployment = objects.find((o) => o.kind === "Deployment") as unknown as {
    spec: {
      template: {
        spec: {
          containers: Array<{
            args: string[];
            env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
          }>;
        };
      };
    };
  };
  const container = deployment.spec.template.spec.containers[0];
  if (!container) throw new Error("the Deployment has no container");
  return container;
}

describe("helm itself", () => {
  it.each([
    ["Helm 4", () => helm, HELM_VERSION],
    ["Helm 3", () => helm3, HELM3_VERSION],
  ])("%s is the release the tests name", async (_name, binary, version) => {
    const res = await runHelm(binary(), ["version", "--template", "{{ .Version }}"]);
    expect(res.stdout.trim()).toBe(version);
  });
});

describe("one source of truth: the chart renders what deploy/ installs", () => {
  it.each([
    { dir: "deploy", values: {} },
    { dir: "deploy/namespaced", values: { watchNamespaces: ["team-a"] } },
    {
      dir: "deploy/ha",
      values: {
        replicas: 3,
        stateStore: {
          urlSecret: { name: "keypool-state-store", key: "url" },
          passwordSecret: { name: "keypool-state-store", key: "password", optional: true },
        },
        podDisruptionBudget: { minAvailable: 2 },
      },
    },
    { dir: "deploy/monitoring", values: { monitoring: { serviceMonitor: { enabled: true } } } },
  ])("$dir, field by field, with values $values", async ({ dir, values }) => {
    const chart = (await render(values, { extra: ["--include-crds"] }))
      .filter((r) => !OTHER_TEMPLATES.includes(r.source))
      .map((r) => withoutHelmLabels(r.object));
    // Helm installs into an existing namespace (or --create-namespace): the chart has no Namespace.
    const kustomized = (await kustomize(dir)).filter(
      (o) => o.kind !== "Namespace" && !(dir === "deploy/monitoring" && OTHER_KINDS.includes(o.kind)),
    );
    const rendered = byIdentity(chart);
    const expected = byIdentity(kustomized);
    expect([...rendered.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [id, object] of expected) expect(rendered.get(id), id).toEqual(object);
  });

  it("has Helm's standard labels on every object it templates, and selects pods by deploy/'s label only", async () => {
    for (const { object, source } of await render()) {
      expect(object.metadata.labels, source).toMatchObject({
        "app.kubernetes.io/name": "keypool-operator",
        "app.kubernetes.io/part-of": "keypool-operator",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": expect.stringMatching(/^keypool-operator-\d+\.\d+\.\d+/),
      });
    }
  });

  it("Helm 3 renders the same objects as Helm 4, with defaults and with every toggle on", async () => {
    for (const values of [{}, ALL_ON]) {
      const [four, three] = await Promise.all([render(values), render(values, { binary: helm3 })]);
      expect(three.map((r) => r.object)).toEqual(four.map((r) => r.object));
    }
  });
});

describe("helm lint --strict", () => {
  it.each([
    ["Helm 4", () => helm],
    ["Helm 3", () => helm3],
  ])("%s passes with the default values and with every toggle on", async (_name, binary) => {
    for (const values of [{}, ALL_ON]) {
      const res = await runHelm(binary(), ["lint", "--strict", CHART, "--values", await valuesFile(values)]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    }
  });

  it.each([
    { typo: { replcas: 3 }, message: "additional properties 'replcas' not allowed" },
    { typo: { image: { tga: "1.0" } }, message: "additional properties 'tga' not allowed" },
    {
      typo: { monitoring: { serviceMonitor: { enable: true } } },
      message: "additional properties 'enable' not allowed",
    },
    { typo: { logLevel: "verbose" }, message: "logLevel" },
    { typo: { leaderElection: { leaseDuration: "15" } }, message: "leaseDuration" },
    { typo: { stateStore: { url: "redis://user:secret@redis:6379/0" } }, message: "url" },
    { typo: { watchNamespaces: ["Team_A"] }, message: "watchNamespaces" },
  ])("fails on a bad value: $typo", async ({ typo, message }) => {
    const res = await runHelm(helm, ["lint", "--strict", CHART, "--values", await valuesFile(typo)]);
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toContain(message);
  });
});

describe("helm template", () => {
  it.each([
    {
      name: "several replicas without leader election",
      values: { leaderElection: { enabled: false } },
      message: "leaderElection.enabled",
    },
    {
      name: "a PodDisruptionBudget no drain could satisfy",
      values: { replicas: 1 },
      message: "podDisruptionBudget.minAvailable (1) is not below replicas (1)",
    },
    {
      name: "the state store's URL given twice",
      values: { stateStore: { url: "redis://redis:6379/0", urlSecret: { name: "store" } } },
      message: "stateStore.url and stateStore.urlSecret.name",
    },
    {
      name: "a password without a state store",
      values: { stateStore: { passwordSecret: { name: "store" } } },
      message: "stateStore.passwordSecret",
    },
  ])("refuses $name, saying which values", async ({ values, message }) => {
    const res = await template(values);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(message);
  });

  it("renders every toggle on, the monitoring objects among them", async () => {
    const rendered = await render(ALL_ON);
    const ids = rendered.map((r) => identity(r.object));
    expect(ids).toEqual(
      expect.arrayContaining([
        "ServiceMonitor/keypool-system/keypool-operator",
        "NetworkPolicy/keypool-system/keypool-operator-metrics",
        "Role/team-a/keypool-operator",
        "RoleBinding/team-b/keypool-operator",
        "PodDisruptionBudget/keypool-system/keypool-operator",
      ]),
    );
    expect(ids).not.toContain("ClusterRole//keypool-operator");
    const monitor = rendered.find((r) => r.object.kind === "ServiceMonitor")?.object;
    expect(monitor?.metadata.labels).toMatchObject({ release: "prometheus" });
    expect(monitor?.spec).toMatchObject({
      endpoints: [{ port: "probes", path: "/metrics", interval: "15s" }],
    });
    const pod = (
      rendered.find((r) => r.object.kind === "Deployment")?.object.spec as {
        template: { metadata: { labels: object; annotations: object }; spec: Record<string, unknown> };
      }
    ).template;
    expect(pod.metadata.labels).toMatchObject({
      team: "ai-platform",
      "app.kubernetes.io/name": "keypool-operator",
    });
    expect(pod.metadata.annotations).toEqual(ALL_ON.podAnnotations);
    expect(pod.spec).toMatchObject({
      imagePullSecrets: ALL_ON.image.pullSecrets,
      priorityClassName: ALL_ON.priorityClassName,
      nodeSelector: ALL_ON.nodeSelector,
      tolerations: ALL_ON.tolerations,
      topologySpreadConstraints: ALL_ON.topologySpreadConstraints,
      terminationGracePeriodSeconds: 60,
      affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [expect.anything()] } },
    });
  });

  it("gives the operator flags and variables `keypool operator` parses to the values set", async () => {
    const container = deploymentOf((await render(ALL_ON)).map((r) => r.object));
    expect(container.args[0]).toBe("operator");
    // What the kubelet would put in the environment: the Secret's and the downward API's values.
    const fromCluster: Record<string, string> = {
      KEYPOOL_STATE_STORE: "redis://redis.keypool-system.svc:6379/0",
      KEYPOOL_STATE_STORE_PASSWORD: "secret",
      POD_NAMESPACE: NAMESPACE,
    };
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? fromCluster[e.name]]));
    const config = parseOperatorConfig(container.args.slice(1), env);
    expect(config).toMatchObject({
      leaderElect: true,
      namespaces: ["team-a", "team-b"],
      leaderElectionNamespace: NAMESPACE,
      leaderElectionLeaseDuration: 20_000,
      leaderElectionRenewDeadline: 15_000,
      leaderElectionRetryPeriod: 3_000,
      logLevel: "debug",
      shutdownDelay: 10_000,
      authAudiences: ["keypool", "gateway"],
      authStaleGrace: 120_000,
      proxyMaxBody: 16 * 1024 * 1024,
      proxyRetryBody: 2 * 1024 * 1024,
      proxyMaxWaitLimit: 30_000,
      stateStore: "redis://redis.keypool-system.svc:6379/0",
      stateStorePrefix: "team:",
      stateStoreFailure: "closed",
      probes: false,
    });
    const url = deploymentOf(
      (await render({ stateStore: { url: "rediss://cache:6380/1" } })).map((r) => r.object),
    );
    expect(parseOperatorConfig(url.args.slice(1), {}).stateStore).toBe("rediss://cache:6380/1");
  });

  it("passes nothing the operator has a default for when the values are left empty", async () => {
    const container = deploymentOf((await render()).map((r) => r.object));
    expect(container.args).toEqual(["operator", "--leader-elect"]);
  });
});

describe("helm install --dry-run=server against the API server", () => {
  beforeAll(async () => {
    const crds = await kubectl(
      ["apply", "--server-side", "--force-conflicts", "--field-manager=keypool-tests", "-f", "-"],
      { input: MONITORING_CRDS },
    );
    expect(crds.code, crds.stderr).toBe(0);
    for (const crd of ["servicemonitors", "prometheusrules"]) {
      const ready = await kubectl([
        "wait",
        "--for=condition=Established",
        `crd/${crd}.monitoring.coreos.com`,
      ]);
      expect(ready.code, ready.stderr).toBe(0);
    }
  });

  /**
   * helm install --dry-run=server into a namespace of the test's own; returns the manifest and
   * the notes it printed, after the manifest passed the API server's own dry-run. --take-ownership:
   * other test files apply deploy/'s cluster-scoped objects (keypool-user, ...) to this shared
   * control plane, and helm refuses to install over objects it does not own (on a cluster where
   * `kubectl apply -k deploy/` ran, that flag is how the chart takes them over).
   */
  async function dryRunInstall(namespace: string, values: object) {
    const res = await runHelm(helm, [
      "install",
      RELEASE,
      CHART,
      "--namespace",
      namespace,
      "--kubeconfig",
      inject("kubeconfig"),
      "--dry-run=server",
      "--take-ownership",
      "--values",
      await valuesFile(values),
    ]);
    expect(res.code, res.stderr).toBe(0);
    const manifest = /^MANIFEST:\n([\s\S]*?)^NOTES:$/m.exec(res.stdout)?.[1] ?? "";
    const notes = res.stdout.split(/^NOTES:$/m)[1] ?? "";
    // --force-conflicts: those same objects of other test files hold other values (subjects).
    const applied = await kubectl(
      ["apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=helm", "-f", "-"],
      { input: manifest },
    );
    expect(applied.code, applied.stderr).toBe(0);
    const objects = renderedObjects(manifest).map((r) => r.object);
    expect(applied.stdout.trim().split("\n")).toHaveLength(objects.length);
    return { objects, notes };
  }

  it("installs with the default values, and its notes give the next three commands", async () => {
    const namespace = await createTestNamespace(adminKubeConfig(), "helm");
    const { objects, notes } = await dryRunInstall(namespace, {});
    expect(objects.map((o) => o.kind)).toContain("Deployment");
    expect(notes).toContain(`kubectl -n ${namespace} rollout status deployment/keypool-operator`);
    expect(notes).toMatch(
      /create secret generic openai-keys .*\n.*label secret openai-keys keypool\.dev\/secret=true/,
    );
    expect(notes).toContain("kubectl -n ai get kp");
    // The KeyPool the notes give is one the operator takes.
    const heredoc = /<<'EOF'\n([\s\S]*?)\n\s*EOF/.exec(notes)?.[1] ?? "";
    const keyPool = renderedObjects(heredoc.replace(/^ {2}/gm, ""))[0]?.object;
    expect(parseKeyPool(keyPool)).toMatchObject({ ok: true });
    // Test namespaces carry no Pod Security label: the notes say how to add it (a lookup).
    expect(notes).toContain(
      `kubectl label namespace ${namespace} pod-security.kubernetes.io/enforce=restricted`,
    );
  });

  it("installs with watchNamespaces: a Role in each, no cluster-wide access to Secrets", async () => {
    const kc = adminKubeConfig();
    const namespace = await createTestNamespace(kc, "helm-ns");
    const watched = [await createTestNamespace(kc, "helm-a"), await createTestNamespace(kc, "helm-b")];
    const { objects, notes } = await dryRunInstall(namespace, { watchNamespaces: watched });
    const roles = objects.filter((o) => o.kind === "Role" && o.metadata.name === "keypool-operator");
    expect(roles.map((o) => o.metadata.namespace).sort()).toEqual([...watched].sort());
    for (const role of objects.filter((o) => o.kind === "ClusterRole"))
      expect(JSON.stringify(role), role.metadata.name).not.toContain("secrets");
    expect(JSON.stringify(deploymentOf(objects).args)).toContain(`--namespaces=${watched.join(",")}`);
    expect(notes).toContain(`kubectl -n ${watched[0]} get kp`);
  });

  it("installs with monitoring on: ServiceMonitor, PrometheusRule and dashboard toggles", async () => {
    const namespace = await createTestNamespace(adminKubeConfig(), "helm-mon");
    const { objects } = await dryRunInstall(namespace, {
      monitoring: {
        serviceMonitor: { enabled: true, labels: { release: "prometheus" } },
        prometheusRule: { enabled: true },
        dashboard: { enabled: true },
      },
    });
    expect(objects.map(identity)).toEqual(
      expect.arrayContaining([
        `ServiceMonitor/${namespace}/keypool-operator`,
        `NetworkPolicy/${namespace}/keypool-operator-metrics`,
      ]),
    );
  });
});

describe("the release manifest (npm run release-manifest)", () => {
  it("applies with kubectl apply --server-side --dry-run=server", async () => {
    const text = await buildReleaseManifest({ kubectl: inject("kubectl") });
    expect(text).toMatch(/^# KeyPool Operator \d+\.\d+\.\d+/);
    const objects = renderedObjects(text).map((r) => r.object);
    expect(objects[0]?.kind).toBe("Namespace");
    expect(objects.map(identity)).toContain("CustomResourceDefinition//keypools.keypool.dev");
    // The same objects as deploy/, the CRD among them.
    expect(objects.map(identity).sort()).toEqual((await kustomize("deploy")).map(identity).sort());
    const file = join(scratch, "keypool-operator.yaml");
    await writeFile(file, text);
    // A dry-run creates nothing: the namespaced objects need their namespace to exist already.
    await kubectl(["create", "namespace", NAMESPACE]);
    const res = await kubectl(["apply", "--server-side", "--dry-run=server", "-f", file]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim().split("\n")).toHaveLength(objects.length);
  });
});
