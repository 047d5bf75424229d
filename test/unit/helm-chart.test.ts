/**
 * The Helm chart's files, without helm (test/integration/helm-chart.test.ts runs helm itself):
 * - Chart.yaml's version and appVersion are package.json's, and its default image is deploy/'s;
 * - crds/ is what `npm run generate:crd` writes (the same CRD as crds/ at the repository root);
 * - values.schema.json closes every object (an unknown key fails helm), knows every value of
 *   values.yaml and nothing values.yaml does not show, and its patterns accept what the operator
 *   accepts (durations, sizes, namespaces, the state store's URL, log levels);
 * - every value in values.yaml has a comment.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isMap, parse, parseDocument, type YAMLMap } from "yaml";
import { describe, expect, it } from "vitest";
import { DURATION_PATTERN } from "../../src/api/duration.ts";
import { renderCrdYaml } from "../../src/api/crd-yaml.ts";
import { OperatorConfig, parseOperatorConfig } from "../../src/config.ts";
import { LOG_LEVELS } from "../../src/log.ts";
import {
  CHART_CRD_PATH,
  CHART_DIR,
  CHART_YAML_PATH,
  chartYamlWithVersion,
  packageVersion,
} from "../../scripts/generate-crd.ts";

type Schema = { [keyword: string]: unknown };

const read = (path: string) => readFile(path, "utf8");
const chart = parse(await read(CHART_YAML_PATH)) as {
  apiVersion: string;
  version: string;
  appVersion: string;
};
const valuesText = await read(join(CHART_DIR, "values.yaml"));
const values = parse(valuesText) as Record<string, unknown>;
const schema = JSON.parse(await read(join(CHART_DIR, "values.schema.json"))) as Schema;
const definitions = schema.definitions as Record<string, Schema>;

/** A schema node with its $ref resolved (local definitions only). */
function resolved(node: Schema): Schema {
  const ref = node.$ref as string | undefined;
  if (!ref) return node;
  const name = /^#\/definitions\/(.+)$/.exec(ref)?.[1];
  const target = name ? definitions[name] : undefined;
  if (!target) throw new Error(`unresolvable $ref ${ref}`);
  return resolved(target);
}

/** Every schema node reachable from `node`, with a path of value names ("stateStore.url", "tolerations[]"). */
function* schemaNodes(node: Schema, path = ""): Generator<[string, Schema]> {
  const here = resolved(node);
  yield [path, here];
  for (const [name, child] of Object.entries((here.properties as Record<string, Schema> | undefined) ?? {}))
    yield* schemaNodes(child, path ? `${path}.${name}` : name);
  if (here.items && typeof here.items === "object") yield* schemaNodes(here.items as Schema, `${path}[]`);
  for (const branch of (here.anyOf as Schema[] | undefined) ?? []) yield* schemaNodes(branch, path);
}

const isObjectType = (node: Schema) =>
  node.type === "object" || (Array.isArray(node.type) && node.type.includes("object"));

/**
 * Kubernetes types the chart passes through whole below their first level: the API server checks
 * them (helm cannot know every field of, say, a node affinity).
 */
const KUBERNETES_PASS_THROUGH = [
  "podSecurityContext.windowsOptions",
  "securityContext.windowsOptions",
  "affinity.nodeAffinity",
  "affinity.podAffinity",
  "affinity.podAntiAffinity",
  "extraEnv[].valueFrom.fieldRef",
  "extraEnv[].valueFrom.resourceFieldRef",
  "extraEnv[].valueFrom.configMapKeyRef",
  "extraEnv[].valueFrom.secretKeyRef",
  "extraEnv[].valueFrom.fileKeyRef",
];

/** Values holding Kubernetes objects or maps: values.yaml need not list (or comment) their fields. */
const KUBERNETES_VALUES = [
  "resources",
  "livenessProbe",
  "readinessProbe",
  "podSecurityContext",
  "securityContext",
  "podAnnotations",
  "podLabels",
  "nodeSelector",
  "affinity",
  "monitoring.serviceMonitor.labels",
  "monitoring.prometheusRule.labels",
  "monitoring.dashboard.labels",
];

describe("Chart.yaml", () => {
  it("is a Helm 3 and 4 chart (apiVersion v2) versioned as package.json", async () => {
    const version = await packageVersion();
    expect(chart.apiVersion).toBe("v2");
    expect({ version: chart.version, appVersion: chart.appVersion }).toEqual({
      version,
      appVersion: version,
    });
  });

  it.each([
    {
      name: "sets both lines and keeps everything else",
      input: '# c\napiVersion: v2\nversion: 0.0.1\nappVersion: "0.0.1"\nkeywords:\n  - a\n',
      output: '# c\napiVersion: v2\nversion: 1.2.3\nappVersion: "1.2.3"\nkeywords:\n  - a\n',
    },
    {
      name: "leaves nested version fields alone",
      input: 'version: 0.0.1\nappVersion: "0.0.1"\ndependencies:\n  - version: 9.9.9\n',
      output: 'version: 1.2.3\nappVersion: "1.2.3"\ndependencies:\n  - version: 9.9.9\n',
    },
  ])("npm run generate:crd $name", ({ input, output }) => {
    expect(chartYamlWithVersion(input, "1.2.3")).toBe(output);
  });

  it("npm run generate:crd refuses a Chart.yaml without both version lines", () => {
    expect(() => chartYamlWithVersion("apiVersion: v2\nversion: 1.0.0\n", "1.2.3")).toThrow(/appVersion/);
  });

  it("defaults to deploy/'s image: same repository, and appVersion is deploy/'s tag", async () => {
    const kustomization = parse(await read("deploy/base/kustomization.yaml")) as {
      images: Array<{ name: string; newTag: string }>;
    };
    const [image] = kustomization.images;
    expect(values.image).toMatchObject({ repository: image?.name, tag: "" });
    expect(chart.appVersion).toBe(image?.newTag);
  });
});

describe("the chart's crds/", () => {
  it("is what `npm run generate:crd` writes from src/api today", async () => {
    const committed = await read(CHART_CRD_PATH).catch(() => "(missing)");
    expect(
      committed === renderCrdYaml(),
      "charts/keypool-operator/crds/keypool.dev_keypools.yaml is out of date with the zod schemas in src/api: run `npm run generate:crd` and commit the result",
    ).toBe(true);
  });
});

describe("values.schema.json", () => {
  const nodes = [...schemaNodes(schema)];

  it("is draft-07, which Helm 3 and Helm 4 both read", () => {
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
  });

  it("closes every object (additionalProperties: false), but maps and Kubernetes pass-throughs", () => {
    const open = nodes
      .filter(([, node]) => isObjectType(node) && node.additionalProperties !== false)
      .filter(([, node]) => typeof node.additionalProperties !== "object") // a map: values typed
      .map(([path]) => path)
      .filter((path) => !KUBERNETES_PASS_THROUGH.includes(path));
    expect(open).toEqual([]);
  });

  it("knows every value values.yaml sets, and values.yaml shows every value it knows", () => {
    const missing: string[] = [];
    const unshown: string[] = [];
    const walk = (node: Schema, value: unknown, path: string) => {
      const here = resolved(node);
      const properties = here.properties as Record<string, Schema> | undefined;
      if (!properties || KUBERNETES_VALUES.includes(path)) return;
      const set = (value ?? {}) as Record<string, unknown>;
      for (const key of Object.keys(set))
        if (!(key in properties)) missing.push(path ? `${path}.${key}` : key);
      for (const [key, child] of Object.entries(properties)) {
        const childPath = path ? `${path}.${key}` : key;
        if (!(key in set)) unshown.push(childPath);
        else walk(child, set[key], childPath);
      }
    };
    walk(schema, values, "");
    expect({ missing, unshown }).toEqual({ missing: [], unshown: [] });
  });

  it("gives the operator's log levels and state-store failure modes, and its duration pattern", () => {
    const at = (path: string) => nodes.find(([p]) => p === path)?.[1] ?? {};
    expect(at("logLevel").enum).toEqual([...LOG_LEVELS]);
    expect(at("stateStore.failure").enum).toEqual([
      "",
      ...OperatorConfig.shape.stateStoreFailure.unwrap().options,
    ]);
    expect(definitions.duration?.pattern).toBe(`^$|${DURATION_PATTERN}`);
  });

  /** Whether `keypool operator` takes `--flag=value`. */
  const operatorTakes = (flag: string, value: string) => {
    try {
      parseOperatorConfig([`--${flag}=${value}`], {});
      return true;
    } catch {
      return false;
    }
  };

  it.each([
    {
      definition: "duration",
      flag: "shutdown-delay",
      samples: ["5s", "1m30s", "250ms", "1.5s", "15", "1d", "s", " 5s"],
    },
    {
      definition: "size",
      flag: "proxy-max-body",
      samples: ["32mb", "512kb", "1024", "1.5MB", "5b", "mb", "-1mb", "1 tb"],
    },
  ])("accepts a $definition exactly when the operator does", ({ definition, flag, samples }) => {
    const pattern = new RegExp(definitions[definition]?.pattern as string);
    for (const sample of samples) expect(pattern.test(sample), sample).toBe(operatorTakes(flag, sample));
  });

  it.each([
    {
      path: "watchNamespaces[]",
      flag: "namespaces",
      samples: ["team-a", "a1", "Team-A", "team_a", "-a", "a-"],
    },
    {
      path: "stateStore.url",
      flag: "state-store",
      samples: [
        "redis://redis:6379/0",
        "rediss://user@cache:6380/1",
        "redis://user:secret@redis:6379",
        "redis://:secret@redis",
        "http://redis:6379",
        "redis://",
      ],
    },
  ])("accepts $path exactly when the operator's --$flag does", ({ path, flag, samples }) => {
    const node = nodes.find(([p]) => p === path)?.[1] ?? {};
    const pattern = new RegExp((node.pattern ?? resolved(node).pattern) as string);
    for (const sample of samples) expect(pattern.test(sample), sample).toBe(operatorTakes(flag, sample));
  });
});

describe("values.yaml", () => {
  it("has a comment on every value (Kubernetes objects' own fields aside)", () => {
    const uncommented: string[] = [];
    const walk = (map: YAMLMap, path: string) => {
      map.items.forEach((pair, i) => {
        const key = String((pair.key as { value: unknown }).value);
        const childPath = path ? `${path}.${key}` : key;
        const comment =
          (pair.key as { commentBefore?: string }).commentBefore ?? (i === 0 ? map.commentBefore : undefined);
        if (!comment?.trim()) uncommented.push(childPath);
        if (isMap(pair.value) && !KUBERNETES_VALUES.includes(childPath)) walk(pair.value, childPath);
      });
    };
    const doc = parseDocument(valuesText);
    if (!isMap(doc.contents)) throw new Error("values.yaml is not a map");
    walk(doc.contents, "");
    expect(uncommented).toEqual([]);
  });
});
