/**
 * One clock: the wall-clock time is read in one place, `systemClock` in src/run-common.ts, and
 * everything else gets a `Clock` passed in, so tests move time by hand. Log timestamps
 * (src/log.ts) read it too, and the standalone client (src/client/, Node built-ins only) cannot
 * take the operator's Clock. `performance.now()` is allowed anywhere: it is monotonic time for
 * measuring durations (proxy latency, metrics), not the wall clock. `new Date(ms)` formats a
 * time it is given and is allowed too.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/** Files that may read the wall clock, and why. */
const ALLOWED: ReadonlyMap<string, string> = new Map([
  ["run-common.ts", "systemClock: the Clock every part is handed"],
  ["log.ts", "log timestamps"],
  ["client/transport.ts", "the standalone client turns a Retry-After date into a delay"],
]);

/** `Date.now` (called or passed), `new Date()` and `Date()` without an argument. */
const WALL_CLOCK =
  /\bDate\.now\b|\bnew\s+Date\s*\(\s*\)|\bnew\s+Date\b(?!\s*\()|(?<![\w.$]|new\s)Date\s*\(\s*\)/;

/** The 1-based lines of `source` that read the wall clock, comments left out. */
export function wallClockReads(source: string): number[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, " "));
  return code
    .split("\n")
    .flatMap((line, i) => (WALL_CLOCK.test(line.replace(/^\s*\/\/.*$/, "")) ? [i + 1] : []));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

describe("reading the wall clock", () => {
  it.each([
    ["a Date.now() call", "const at = Date.now() + delayMs;", [1]],
    ["Date.now passed as a clock", "this.#now = options.now ?? Date.now;", [1]],
    ["new Date() without an argument", "const time = new Date();", [1]],
    ["new Date without parentheses", "const time = new Date;", [1]],
    ["Date() called as a function", "const text = Date();", [1]],
    ["the line it is on", "const a = 1;\nhealth(now = Date.now()) {}", [2]],
    ["no read in new Date(ms), which formats a given time", "new Date(clock.now()).toISOString()", []],
    ["no read in performance.now(), which measures durations", "const started = performance.now();", []],
    ["no read in a comment", "/**\n * Date.now() is not read here\n */\n// nor new Date()", []],
    ["no read in a name that ends in Date", "const d = parseDate(); const e = toDate ();", []],
  ])("finds %s", (_name, source, lines) => {
    expect(wallClockReads(source)).toEqual(lines);
  });

  it("happens only in the clock module, log timestamps and the standalone client", () => {
    const found: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const path = relative(SRC, file).split(sep).join("/");
      if (ALLOWED.has(path)) continue;
      for (const line of wallClockReads(readFileSync(file, "utf8"))) found.push(`src/${path}:${line}`);
    }
    expect(found, "take the time from an injected Clock (src/pool/clock.ts)").toEqual([]);
  });

  it.each([...ALLOWED])("still has a reason to allow src/%s (%s)", (path) => {
    expect(wallClockReads(readFileSync(join(SRC, path), "utf8")).length).toBeGreaterThan(0);
  });
});
