/**
 * The Dockerfile, linted without Docker (hadolint is neither in Debian nor installable from a
 * registry reachable here): dockerfile-utils' validator (the checks behind VS Code's Dockerfile
 * support: syntax, instructions, flags, JSON forms) plus the project's own rules for the image.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const dockerfile = await readFile(resolve(ROOT, "Dockerfile"), "utf8");
const lines = dockerfile.split("\n").map((l) => l.trim());
const instructions = lines.filter((l) => l && !l.startsWith("#"));
const stages = instructions.reduce<string[][]>((all, line) => {
  if (/^FROM\s/i.test(line)) all.push([line]);
  else all.at(-1)?.push(line);
  return all;
}, []);
const finalStage = stages.at(-1) ?? [];
const args = Object.fromEntries(
  instructions
    .filter((l) => /^ARG\s+\w+=/.test(l))
    .map((l) => l.replace(/^ARG\s+/, "").split("=", 2) as [string, string]),
);

describe("Dockerfile", () => {
  it("has no validator findings", () => {
    const findings = validate(dockerfile).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(findings).toEqual([]);
  });

  it("pins its base images (no latest, no untagged)", () => {
    for (const line of instructions.filter((l) => /^FROM\s/i.test(l))) {
      const image = line.split(/\s+/)[1] ?? "";
      const resolved = image.replace(/^\$\{(\w+)\}$/, (_m, name: string) => args[name] ?? "");
      expect(resolved, line).toMatch(/:[\w.-]+$/);
      expect(resolved, line).not.toMatch(/:latest$/);
    }
    expect(args["NODE_IMAGE"]).toMatch(/^node:24\./);
  });

  it("installs from the lock file, and production dependencies only in what ships", () => {
    const installs = instructions.filter((l) => /npm (ci|install)/.test(l));
    expect(installs.length).toBeGreaterThan(0);
    for (const line of installs) expect(line, line).toMatch(/npm ci\b/);
    const depsStage = stages.find((s) => /\sAS\s+deps$/i.test(s[0] ?? "")) ?? [];
    expect(depsStage.join("\n")).toMatch(/npm ci --omit=dev/);
    expect(finalStage.join("\n")).toMatch(/COPY --from=deps \S+node_modules/);
  });

  it("runs as a non-root user, with no shell needed: an exec-form entrypoint of the operator", () => {
    const user = finalStage.filter((l) => /^USER\s/i.test(l)).at(-1) ?? "";
    expect(user).toMatch(/^USER\s+[1-9]\d*(:[1-9]\d*)?$/);
    expect(finalStage.some((l) => /^RUN\s/i.test(l))).toBe(false);
    const entrypoint = finalStage.find((l) => /^ENTRYPOINT\s/i.test(l)) ?? "";
    expect(JSON.parse(entrypoint.replace(/^ENTRYPOINT\s+/i, ""))).toEqual([
      "/nodejs/bin/node",
      "/app/bin/keypool.js",
    ]);
    expect(finalStage.find((l) => /^CMD\s/i.test(l))).toBe('CMD ["operator"]');
  });

  it(".dockerignore lets in only what the Dockerfile copies", async () => {
    const ignore = (await readFile(resolve(ROOT, ".dockerignore"), "utf8"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    const allowed = ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, ""));
    const copied = instructions
      .filter((l) => /^COPY\s/i.test(l) && !l.includes("--from="))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    // A source is let in by its own line or by a directory's above it (src/ui/assets by src/).
    for (const source of copied) {
      const path = source.replace(/\/$/, "");
      expect(
        allowed.some((a) => path === a || path.startsWith(`${a}/`)),
        `${source} is not let in by ${allowed.join(", ")}`,
      ).toBe(true);
    }
  });
});
