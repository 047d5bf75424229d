/**
 * README's configuration table, generated from the flag schemas in config.ts as
 * src/api/reference.ts generates the KeyPool reference: one row per flag (two when the commands
 * describe it differently), with its KEYPOOL_* variable, each command's default as users write
 * it, and its description. `npm run generate:crd` rewrites it between the README's markers; a
 * test fails when the README and the schemas drift apart.
 */
import { betweenMarkers } from "./api/reference.ts";
import { type FlagDoc, operatorFlagDocs, serveFlagDocs } from "./config.ts";

export const CONFIG_REFERENCE_START =
  "<!-- keypool-configuration:start (generated: npm run generate:crd) -->";
export const CONFIG_REFERENCE_END = "<!-- keypool-configuration:end -->";

/** What a command's default column says when the command has no such flag. */
export const NOT_A_FLAG_OF = "—";

/** README sections a description may point to ("see Security model"). */
const SECTIONS: Record<string, string> = { "Security model": "#security-model" };

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");

/** A description as markdown: flags, variables and paths as code, decision records as links. */
function markdown(description: string): string {
  let text = cell(description)
    .replace(/(^|[\s(])(--[a-z][a-z-]*)/g, "$1`$2`")
    .replace(/\$[A-Z_]+/g, "`$&`")
    .replace(/\b(docs\/adr\/[\w.-]+\.md)/g, "[$1]($1)")
    .replace(/(^|[\s(])(deploy\/[\w/]*)/g, "$1`$2`");
  for (const [section, anchor] of Object.entries(SECTIONS))
    text = text.replaceAll(`see ${section}`, `see [${section}](${anchor})`);
  return text;
}

function defaultCell(doc: FlagDoc | undefined): string {
  if (!doc) return NOT_A_FLAG_OF;
  if (doc.default === undefined) return "";
  if (doc.boolean) return doc.default === "true" ? "on" : "off";
  return `\`${doc.default}\``;
}

function row(doc: FlagDoc, operator: FlagDoc | undefined, serve: FlagDoc | undefined): string {
  const flag = `\`--${doc.flag}\`${doc.boolean ? ` / \`--no-${doc.flag}\`` : ""}`;
  const alias = serve?.alias;
  const variable = alias
    ? `\`${doc.env}\`, ${operator ? "serve also " : "or "}\`${alias.variable}\`${alias.note ? ` (${alias.note})` : ""}`
    : `\`${doc.env}\``;
  return `| ${flag} | ${variable} | ${defaultCell(operator)} | ${defaultCell(serve)} | ${markdown(doc.description)} |`;
}

/**
 * The fields of both commands in one order: the operator's, with each of serve's own after the
 * field it follows in serve (its first ones, which follow nothing, at the end).
 */
function fieldOrder(operator: readonly string[], serve: readonly string[]): string[] {
  const order = [...operator];
  const first: string[] = [];
  serve.forEach((field, i) => {
    if (order.includes(field)) return;
    const after = order.indexOf(serve[i - 1] ?? "");
    if (after < 0) first.push(field);
    else order.splice(after + 1, 0, field);
  });
  return [...order, ...first];
}

/**
 * The markdown table of both commands' flags. A flag both have is one row when they describe it
 * alike, else one row per command.
 */
export function renderConfigReference(): string {
  const operator = new Map(operatorFlagDocs().map((d) => [d.field, d]));
  const serve = new Map(serveFlagDocs().map((d) => [d.field, d]));
  const out = [
    "| flag | variable | `keypool operator` | `keypool serve` | meaning |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const field of fieldOrder([...operator.keys()], [...serve.keys()])) {
    const o = operator.get(field);
    const s = serve.get(field);
    if (o && s && o.description === s.description) {
      out.push(row(o, o, s));
      continue;
    }
    if (o) out.push(row(o, o, undefined));
    if (s) out.push(row(s, undefined, s));
  }
  return out.join("\n");
}

/** `readme` with the configuration table between its markers replaced by `table`. */
export function withConfigReference(readme: string, table: string): string {
  return betweenMarkers(readme, CONFIG_REFERENCE_START, CONFIG_REFERENCE_END, table, "configuration table");
}
