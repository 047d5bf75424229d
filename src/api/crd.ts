/**
 * Generates the KeyPool CustomResourceDefinition from the zod schemas, so the API server
 * enforces the same enums, ranges, patterns, sizes and defaults as the runtime parser.
 * `npm run generate:crd` writes it to crds/; a unit test fails when the committed file drifts.
 */
import { z } from "zod";
import { GROUP, KeyPoolSpec, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from "./keypool.ts";
import { KeyPoolStatus } from "./status.ts";

type JsonSchema = { [key: string]: unknown };

const UNSAFE_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * Turns zod's JSON Schema into a structural OpenAPI v3 schema the API server accepts: no
 * $schema, no `additionalProperties: false` (the API server prunes unknown fields instead), no
 * JavaScript safe-integer bounds.
 */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "$schema" || key === "id") continue;
    if (key === "additionalProperties" && value === false) continue;
    if ((key === "maximum" && value === UNSAFE_BOUND) || (key === "minimum" && value === -UNSAFE_BOUND))
      continue;
    // zod spells RFC 3339 out as a long regex; `format: date-time` says the same to the API server.
    if (key === "pattern" && schema.format === "date-time") continue;
    if (key === "properties") {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([name, sub]) => [name, toStructural(sub)]),
      );
    } else if ((key === "items" || key === "additionalProperties") && typeof value === "object" && value) {
      out[key] = toStructural(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  if (out.type === "object" && out.additionalProperties && typeof out.additionalProperties === "object") {
    const extra = out.additionalProperties as JsonSchema;
    if (Object.keys(extra).length === 0) {
      delete out.additionalProperties;
      out["x-kubernetes-preserve-unknown-fields"] = true;
    }
  }
  return out;
}

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  return toStructural(
    z.toJSONSchema(schema, { target: "openapi-3.0", io, unrepresentable: "throw" }) as JsonSchema,
  );
}

/** Marks list fields as maps keyed by a field, so server-side apply merges them by that key. */
function listMap(schema: JsonSchema, path: string[], keys: string[]) {
  let node = schema;
  for (const part of path) node = (node.properties as Record<string, JsonSchema>)[part] as JsonSchema;
  node["x-kubernetes-list-type"] = "map";
  node["x-kubernetes-list-map-keys"] = keys;
}

export function keyPoolCrd() {
  const spec = jsonSchema(KeyPoolSpec, "input");
  listMap(spec, ["quotaGroups"], ["name"]);
  listMap(spec, ["pricing"], ["model"]);
  listMap(spec, ["notifications", "webhooks"], ["name"]);
  const status = jsonSchema(KeyPoolStatus, "output");
  status.description = "Observed state of the pool. Written by the operator through the status subresource.";
  listMap(status, ["conditions"], ["type"]);
  listMap(status, ["keyStatuses"], ["id"]);
  listMap(status, ["costByModel"], ["model"]);

  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: {
        "app.kubernetes.io/name": "keypool-operator",
        "app.kubernetes.io/part-of": "keypool-operator",
      },
    },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ["keypool"],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Provider", type: "string", jsonPath: ".spec.provider", priority: 1 },
            { name: "Strategy", type: "string", jsonPath: ".spec.strategy" },
            { name: "Usable", type: "integer", jsonPath: ".status.keys.usable" },
            { name: "Total", type: "integer", jsonPath: ".status.keys.total" },
            { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            {
              name: "Reason",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
              priority: 1,
            },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "A KeyPool turns the LLM provider API keys held in Secrets into a managed pool: " +
                "health-tracked, rate-limit aware, and handed out to workloads granted `use` on it.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec,
                status,
              },
            },
          },
        },
      ],
    },
  };
}
