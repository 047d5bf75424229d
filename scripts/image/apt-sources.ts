/**
 * Which Debian mirror debootstrap should use: the one this machine's apt already uses, read from
 * /etc/apt/sources.list and /etc/apt/sources.list.d/ in both formats apt reads (one-line `*.list`
 * and deb822 `*.sources`). Files with other endings (`foo.list.disabled`) are ignored, as apt
 * ignores them.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  enabled: boolean;
}

/** One-line format: `deb [ options ] uri suite [component...]`, `#` starts a comment. */
export function parseOneLine(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const tokens = (raw.split("#")[0] ?? "").trim().split(/\s+/).filter(Boolean);
    const [type, ...rest] = tokens;
    if (!type) continue;
    // Options in brackets may hold spaces: `[ arch=amd64 signed-by=/k.gpg ]`.
    if (rest[0]?.startsWith("[")) {
      while (rest.length && !rest[0]?.endsWith("]")) rest.shift();
      rest.shift();
    }
    const [uri, suite, ...components] = rest;
    if (!uri || !suite) continue;
    sources.push({ types: [type], uris: [uri], suites: [suite], components, enabled: true });
  }
  return sources;
}

/** deb822 format: paragraphs of `Field: value` separated by blank lines (`Enabled: no` turns one off). */
export function parseDeb822(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of paragraph.split("\n")) {
      if (line.startsWith("#") || !line.trim()) continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last) ?? ""} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      last = line.slice(0, colon).trim().toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    const list = (name: string) => (fields.get(name) ?? "").split(/\s+/).filter(Boolean);
    if (!fields.has("uris")) continue;
    sources.push({
      types: list("types"),
      uris: list("uris"),
      suites: list("suites"),
      components: list("components"),
      enabled: (fields.get("enabled") ?? "yes").toLowerCase() !== "no",
    });
  }
  return sources;
}

/** The first enabled binary (`deb`) source serving `suite` with the main component, without a trailing slash. */
export function pickMirror(sources: readonly AptSource[], suite: string): string | undefined {
  const match = sources.find(
    (s) => s.enabled && s.types.includes("deb") && s.suites.includes(suite) && s.components.includes("main"),
  );
  return match?.uris[0]?.replace(/\/+$/, "");
}

/** Reads every source apt would read under `etcApt` (default /etc/apt), in apt's order. */
export async function readAptSources(etcApt = "/etc/apt"): Promise<AptSource[]> {
  const sources: AptSource[] = [];
  const main = await readFile(join(etcApt, "sources.list"), "utf8").catch(() => "");
  sources.push(...parseOneLine(main));
  const dir = join(etcApt, "sources.list.d");
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const name of names) {
    // apt reads only these names; anything else (`.disabled`, `.save`, `~`) is skipped.
    if (!/^[\w.-]+\.(list|sources)$/.test(name)) continue;
    const text = await readFile(join(dir, name), "utf8");
    sources.push(...(name.endsWith(".sources") ? parseDeb822(text) : parseOneLine(text)));
  }
  return sources;
}
