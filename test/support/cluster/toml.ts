/**
 * A small TOML writer for containerd's config: tables of strings, numbers, booleans and string
 * arrays, which is all that file needs. Keys that are not bare (`io.containerd.grpc.v1.cri`)
 * are quoted, so a table's path reads as containerd's documentation writes it.
 */

export type TomlValue = string | number | boolean | readonly string[] | TomlTable;
export interface TomlTable {
  readonly [key: string]: TomlValue | undefined;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

function key(k: string): string {
  return BARE_KEY.test(k) ? k : JSON.stringify(k);
}

function isTable(v: TomlValue): v is TomlTable {
  return typeof v === "object" && !Array.isArray(v);
}

/** A scalar or array as TOML (JSON's string escapes are valid TOML basic strings). */
function scalar(v: Exclude<TomlValue, TomlTable>): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`TOML cannot hold ${v}`);
    return String(v);
  }
  if (typeof v === "boolean") return String(v);
  return `[${v.map((s) => JSON.stringify(s)).join(", ")}]`;
}

/** `table` as TOML text: its own values first, then each sub-table under a [header]. */
export function toToml(table: TomlTable, path: readonly string[] = []): string {
  const entries = Object.entries(table).filter((e): e is [string, TomlValue] => e[1] !== undefined);
  const lines = path.length > 0 ? [`[${path.map(key).join(".")}]`] : [];
  for (const [k, v] of entries) {
    if (!isTable(v)) lines.push(`${key(k)} = ${scalar(v)}`);
  }
  const parts = lines.length > 0 ? [`${lines.join("\n")}\n`] : [];
  for (const [k, v] of entries) {
    if (isTable(v)) parts.push(toToml(v, [...path, k]));
  }
  return parts.join("\n");
}
