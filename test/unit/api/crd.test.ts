import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { keyPoolCrd, toStructural } from "../../../src/api/crd.ts";
import { CRD_PATH, renderCrdYaml } from "../../../src/api/crd-yaml.ts";

type Node = { [key: string]: unknown };

/** Every schema node under `node` with its path: properties, items and additionalProperties. */
function* schemaNodes(node: Node, path = "openAPIV3Schema"): Generator<[string, Node]> {
  yield [path, node];
  for (const [name, child] of Object.entries((node.properties as Record<string, Node> | undefined) ?? {})) {
    yield* schemaNodes(child, `${path}.properties.${name}`);
  }
  if (node.items && typeof node.items === "object") yield* schemaNodes(node.items as Node, `${path}.items`);
  if (node.additionalProperties && typeof node.additionalProperties === "object") {
    yield* schemaNodes(node.additionalProperties as Node, `${path}.additionalProperties`);
  }
}

const crd = keyPoolCrd();
const [version] = crd.spec.versions;
const root = version?.schema.openAPIV3Schema as Node;
const nodes = [...schemaNodes(root)];

describe("the committed CRD", () => {
  it("is what `npm run generate:crd` writes from src/api today", async () => {
    const committed = await readFile(CRD_PATH, "utf8").catch(() => "(missing)");
    expect(
      committed === renderCrdYaml(),
      `crds/keypool.dev_keypools.yaml is out of date with the zod schemas in src/api: run \`npm run generate:crd\` and commit the result`,
    ).toBe(true);
  });

  it("is the generated object, read back from YAML", () => {
    expect(parse(renderCrdYaml())).toEqual(JSON.parse(JSON.stringify(crd)));
  });
});

describe("the generated schema is structural, as the API server requires", () => {
  it("has a schema at all", () => {
    expect(nodes.length).toBeGreaterThan(50);
  });

  it("gives every node a type, unless it keeps unknown fields", () => {
    const untyped = nodes
      .filter(([, node]) => node.type === undefined && node["x-kubernetes-preserve-unknown-fields"] !== true)
      .map(([path]) => path);
    expect(untyped).toEqual([]);
  });

  it("types every node with properties as an object", () => {
    const wrong = nodes.filter(([, node]) => node.properties && node.type !== "object").map(([path]) => path);
    expect(wrong).toEqual([]);
  });

  it("never says additionalProperties: false (the API server prunes unknown fields instead)", () => {
    expect(JSON.stringify(root)).not.toContain('"additionalProperties":false');
  });

  it("never sets both properties and additionalProperties on one node", () => {
    const both = nodes
      .filter(([, node]) => node.properties && node.additionalProperties)
      .map(([path]) => path);
    expect(both).toEqual([]);
  });

  it.each(["$schema", "$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "id"])(
    "has no %s anywhere",
    (keyword) => {
      const found = nodes.filter(([, node]) => keyword in node).map(([path]) => path);
      expect(found).toEqual([]);
    },
  );

  it("keeps no JavaScript safe-integer bounds, which mean nothing to the API server", () => {
    const bounds = nodes
      .filter(([, node]) => Math.abs(Number(node.maximum ?? node.minimum ?? 0)) === Number.MAX_SAFE_INTEGER)
      .map(([path]) => path);
    expect(bounds).toEqual([]);
  });
});

describe("turning zod's JSON Schema into a structural one", () => {
  it.each([
    {
      name: "drops $schema and additionalProperties: false, all the way down",
      input: {
        $schema: "https://json-schema.org/draft-07/schema",
        type: "object",
        additionalProperties: false,
        properties: { a: { type: "object", additionalProperties: false, properties: {} } },
      },
      output: { type: "object", properties: { a: { type: "object", properties: {} } } },
    },
    {
      name: "keeps unknown fields of an object with an open additionalProperties",
      input: { type: "object", additionalProperties: {} },
      output: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
    },
    {
      name: "keeps a map's value schema",
      input: { type: "object", additionalProperties: { type: "string" } },
      output: { type: "object", additionalProperties: { type: "string" } },
    },
    {
      name: "drops safe-integer bounds and keeps real ones",
      input: { type: "integer", minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
      output: { type: "integer" },
    },
    {
      name: "says date-time by format rather than by zod's long pattern",
      input: { type: "string", format: "date-time", pattern: "^\\d{4}-.*$" },
      output: { type: "string", format: "date-time" },
    },
    {
      name: "converts array items",
      input: { type: "array", items: { type: "object", additionalProperties: false, properties: {} } },
      output: { type: "array", items: { type: "object", properties: {} } },
    },
  ])("$name", ({ input, output }) => {
    expect(toStructural(input)).toEqual(output);
  });
});

describe("what the CRD tells kubectl and the API server", () => {
  it("serves keypools.keypool.dev/v1alpha1 with the short name kp and a status subresource", () => {
    expect(crd.metadata.name).toBe("keypools.keypool.dev");
    expect(crd.spec.names).toMatchObject({ kind: "KeyPool", plural: "keypools", shortNames: ["kp"] });
    expect(version).toMatchObject({
      name: "v1alpha1",
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it("prints strategy, usable and total keys, readiness and age, with provider and reason in -o wide", () => {
    const columns = version?.additionalPrinterColumns ?? [];
    expect(columns.filter((c) => !("priority" in c)).map((c) => c.name)).toEqual([
      "Strategy",
      "Usable",
      "Total",
      "Ready",
      "Age",
    ]);
    expect(columns.filter((c) => "priority" in c).map((c) => c.name)).toEqual(["Provider", "Reason"]);
  });

  it("states the spec defaults, so the API server fills them in as the parser does", () => {
    const spec = (root.properties as Record<string, Node>).spec as Node;
    const props = spec.properties as Record<string, Node>;
    expect(props.strategy?.default).toBe("LeastLoaded");
    const health = props.health?.properties as Record<string, Node>;
    expect(health.failureThreshold?.default).toBe(3);
    expect(health.probeInterval?.default).toBe("10m");
  });

  it("merges quota groups, conditions and key statuses by name, type and id under server-side apply", () => {
    const at = (path: string) => nodes.find(([p]) => p === path)?.[1];
    expect(at("openAPIV3Schema.properties.spec.properties.quotaGroups")).toMatchObject({
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
    });
    expect(at("openAPIV3Schema.properties.status.properties.conditions")).toMatchObject({
      "x-kubernetes-list-map-keys": ["type"],
    });
    expect(at("openAPIV3Schema.properties.status.properties.keyStatuses")).toMatchObject({
      "x-kubernetes-list-map-keys": ["id"],
    });
  });
});
