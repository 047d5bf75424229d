/**
 * The KeyPool spec reference in README.md, generated from the same schema as the CRD (the zod
 * schemas, through keyPoolCrd()): one row per field, with its type, default and description.
 * `npm run generate:crd` rewrites it between the README's reference markers; a test fails when
 * the README and the schema drift apart.
 */
import { keyPoolCrd } from "./crd.ts";

export const REFERENCE_START = "<!-- keypool-spec-reference:start (generated: npm run generate:crd) -->";
export const REFERENCE_END = "<!-- keypool-spec-reference:end -->";

interface Schema {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  additionalProperties?: Schema | boolean;
  minimum?: number;
  maximum?: number;
}

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");

function typeOf(s: Schema): string {
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(", ");
  if (s.type === "array") return `list of ${s.items ? typeOf(s.items) : "values"}`;
  if (s.type === "object" && !s.properties && typeof s.additionalProperties === "object")
    return `map of ${typeOf(s.additionalProperties)}`;
  const range =
    s.minimum !== undefined || s.maximum !== undefined ? ` (${s.minimum ?? ""}..${s.maximum ?? ""})` : "";
  return `${s.type ?? "any"}${range}`;
}

function rows(schema: Schema, path: string, required: boolean, out: string[]): void {
  const defaultText =
    schema.default === undefined || (typeof schema.default === "object" && schema.default !== null)
      ? ""
      : `\`${String(schema.default)}\``;
  if (path) {
    out.push(
      `| \`${path}\`${required ? " (required)" : ""} | ${cell(typeOf(schema))} | ${defaultText} | ${cell(schema.description ?? "")} |`,
    );
  }
  const object = schema.type === "array" ? schema.items : schema;
  if (object?.properties) {
    const prefix = schema.type === "array" ? `${path}[].` : path ? `${path}.` : "";
    for (const [name, child] of Object.entries(object.properties)) {
      rows(child, `${prefix}${name}`, object.required?.includes(name) ?? false, out);
    }
  }
}

/** The markdown table of every spec field. */
export function renderSpecReference(): string {
  const crd = keyPoolCrd() as unknown as {
    spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: Schema } } } }> };
  };
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties.spec as Schema;
  const out = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"];
  rows(spec, "", false, out);
  return out.join("\n");
}

/** `readme` with the reference between its markers replaced by `reference`. */
export function withReference(readme: string, reference: string): string {
  return betweenMarkers(readme, REFERENCE_START, REFERENCE_END, reference, "spec reference");
}

/** `text` with what stands between the `start` and `end` marker lines replaced by `body`. */
export function betweenMarkers(text: string, start: string, end: string, body: string, what: string): string {
  const at = text.indexOf(start);
  const until = text.indexOf(end);
  if (at < 0 || until < at) throw new Error(`README.md has no ${what} markers`);
  return `${text.slice(0, at + start.length)}\n\n${body}\n\n${text.slice(until)}`;
}
