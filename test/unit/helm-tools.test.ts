/**
 * The pieces around the chart that need no helm and no cluster: where helm is built
 * (test/support/helm.ts), how rendered YAML is read and compared, and the release manifest's
 * checks and header (scripts/release-manifest.ts).
 */
import { describe, expect, it } from "vitest";
import { releaseManifest, releaseProblems } from "../../scripts/release-manifest.ts";
import {
  HELM3_VERSION,
  HELM_VERSION,
  helmDir,
  helmModule,
  identity,
  renderedObjects,
  withoutHelmLabels,
} from "../support/helm.ts";

describe("building helm", () => {
  it.each([
    { version: "v4.3.2", module: "helm.sh/helm/v4" },
    { version: "v3.22.0", module: "helm.sh/helm/v3" },
  ])("builds $version from $module", ({ version, module }) => {
    expect(helmModule(version)).toBe(module);
  });

  it.each(["4.3.2", "v4.3", "latest"])("refuses %s, which is not a release", (version) => {
    expect(() => helmModule(version)).toThrow(/vX\.Y\.Z/);
  });

  it("names a v4 and a v3 release", () => {
    expect(HELM_VERSION).toMatch(/^v4\.\d+\.\d+$/);
    expect(HELM3_VERSION).toMatch(/^v3\.\d+\.\d+$/);
  });

  it("builds into the project's tool cache, one folder per version", () => {
    expect(helmDir("v4.3.2", { KEYPOOL_CACHE_DIR: "/cache" })).toBe("/cache/tools/helm-v4.3.2");
    expect(helmDir("v4.3.2", { XDG_CACHE_HOME: "/xdg" })).toBe("/xdg/keypool-operator/tools/helm-v4.3.2");
  });
});

describe("reading rendered YAML", () => {
  const helmOutput = [
    "---",
    "# Source: keypool-operator/templates/service.yaml",
    "apiVersion: v1",
    "kind: Service",
    "metadata: { name: a, namespace: ns, labels: { app.kubernetes.io/name: x, helm.sh/chart: c-1 } }",
    "---",
    "# Source: keypool-operator/templates/empty.yaml",
    "---",
    "apiVersion: rbac.authorization.k8s.io/v1",
    "kind: ClusterRole",
    "metadata: { name: b }",
  ].join("\n");

  it("keeps each object with the template it came from, and skips empty documents", () => {
    const rendered = renderedObjects(helmOutput);
    expect(rendered.map((r) => [r.source, identity(r.object)])).toEqual([
      ["templates/service.yaml", "Service/ns/a"],
      ["", "ClusterRole//b"],
    ]);
  });

  it("drops Helm's own labels, on the object and on its pod template, and nothing else", () => {
    const helmLabels = {
      "app.kubernetes.io/name": "x",
      "app.kubernetes.io/instance": "r",
      "app.kubernetes.io/managed-by": "Helm",
      "app.kubernetes.io/version": "1",
      "helm.sh/chart": "c-1",
    };
    const object = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "d", labels: helmLabels },
      spec: { selector: { matchLabels: helmLabels }, template: { metadata: { labels: helmLabels } } },
    };
    const stripped = withoutHelmLabels(object);
    expect(stripped.metadata.labels).toEqual({ "app.kubernetes.io/name": "x" });
    expect(stripped.spec).toEqual({
      selector: { matchLabels: helmLabels },
      template: { metadata: { labels: { "app.kubernetes.io/name": "x" } } },
    });
    expect(object.metadata.labels).toBe(helmLabels); // a copy: the input is untouched
    expect(Object.keys(helmLabels)).toHaveLength(5);
  });
});

describe("the release manifest's checks", () => {
  const crd =
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: { name: keypools.keypool.dev }\n";
  const deployment = (image: string) =>
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: keypool-operator }\nspec: { template: { spec: { containers: [{ name: operator, image: "${image}" }] } } }\n`;

  it.each([
    {
      name: "nothing, for the CRD and the release's image",
      yaml: `${crd}---\n${deployment("r/op:1.2.3")}`,
      problems: [],
    },
    {
      name: "a missing CRD",
      yaml: deployment("r/op:1.2.3"),
      problems: [expect.stringContaining("../../crds")],
    },
    {
      name: "an image of another release",
      yaml: `${crd}---\n${deployment("r/op:1.2.2")}`,
      problems: [expect.stringContaining("newTag in deploy/base/kustomization.yaml")],
    },
    { name: "a missing Deployment", yaml: crd, problems: ["no Deployment"] },
  ])("finds $name", ({ yaml, problems }) => {
    expect(releaseProblems(yaml, "1.2.3")).toEqual(problems);
  });

  it("heads the file with the release and the command that applies it", () => {
    const text = releaseManifest("apiVersion: v1\nkind: Namespace\n", "1.2.3");
    expect(text.split("\n")[0]).toBe(
      "# KeyPool Operator 1.2.3: the KeyPool CRD and everything `kubectl apply -k deploy/` installs",
    );
    expect(text).toContain("#   kubectl apply --server-side -f keypool-operator.yaml");
    expect(text).toMatch(/\n---\napiVersion: v1\nkind: Namespace\n$/);
    expect(renderedObjects(text).map((r) => r.object.kind)).toEqual(["Namespace"]);
  });
});
