/**
 * The repository's shell scripts and the end-to-end fake provider's manifest, checked here
 * because the e2e run itself needs a cluster (npm run test:e2e, test/e2e/kind.sh):
 * - every shell script (*.sh anywhere, and files under .ci/ and scripts/ with a bash or sh shebang)
 *   parses with `bash -n` and has no `shellcheck -x` findings. shellcheck is required: without it
 *   these tests fail, never skip.
 * - test/e2e/fake-provider.yaml passes `kubectl apply --dry-run=server` on the real API server.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { installKeyPoolCrd } from "../support/crd.ts";
import { kubectl } from "../support/kube.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SKIPPED_DIRS = new Set(["node_modules", ".git"]);
/** Folders whose extension-less files are scripts when their shebang says so. */
const SCRIPT_DIRS = [".ci", "scripts"];
const SHELL_SHEBANG = /^#!\s*(?:\S*\/)?(?:env\s+(?:-\S+\s+)*)?(?:ba)?sh(?:\s|$)/;

const E2E_FAKE_PROVIDER = "test/e2e/fake-provider.yaml";
const E2E_NAMESPACE = "e2e";

/** Repository-relative paths (with /) of every file under `dir`, minus node_modules and .git. */
function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) found.push(...filesUnder(path));
    } else if (entry.isFile()) {
      found.push(relative(ROOT, path).split(sep).join("/"));
    }
  }
  return found;
}

function firstLine(path: string): string {
  return readFileSync(join(ROOT, path), "utf8").split("\n", 1)[0] ?? "";
}

function isShellScript(path: string): boolean {
  if (path.endsWith(".sh")) return true;
  const inScriptDir = SCRIPT_DIRS.some((dir) => path.startsWith(`${dir}/`));
  return inScriptDir && SHELL_SHEBANG.test(firstLine(path));
}

const SCRIPTS = filesUnder(ROOT).filter(isShellScript).sort();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** The command was not found. */
  missing: boolean;
}

function run(command: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({
        code: typeof code === "number" ? code : err ? 1 : 0,
        stdout,
        stderr,
        missing: code === "ENOENT",
      });
    });
    // A command that exits without reading its stdin must not fail the run with EPIPE.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input ?? "");
  });
}

let shellcheckVersion: Promise<Run> | undefined;

/** Throws, with how to install it, when shellcheck is missing: these checks never skip. */
async function requireShellcheck(): Promise<void> {
  shellcheckVersion ??= run("shellcheck", ["--version"]);
  const version = await shellcheckVersion;
  if (version.missing || version.code !== 0) {
    throw new Error(
      "shellcheck is not installed (or does not run), and the shell scripts must pass it: install it " +
        "(Debian/Ubuntu: apt-get install -y shellcheck; macOS: brew install shellcheck; " +
        "see https://github.com/koalaman/shellcheck#installing) and run the tests again." +
        (version.missing ? "" : `\n${version.stderr}`),
    );
  }
}

/** What shellcheck found, for the failure message. */
function findings(what: string, result: Run): string {
  return `shellcheck findings in ${what}:\n${result.stdout}${result.stderr}`;
}

function e2eDocuments(file: string): Record<string, unknown>[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.join("; ")}`);
    return doc.toJS() as Record<string, unknown>;
  });
}

describe("shell scripts", () => {
  it("finds the scripts: .ci/run and test/e2e/kind.sh at least", () => {
    expect(SCRIPTS).toEqual(expect.arrayContaining([".ci/run", "test/e2e/kind.sh"]));
  });

  it("has shellcheck installed", async () => {
    await requireShellcheck();
  });

  it.each(SCRIPTS)("%s parses with bash -n", async (script) => {
    const result = await run("bash", ["-n", script]);
    expect(result.code, `bash -n ${script}:\n${result.stderr}`).toBe(0);
  });

  it.each(SCRIPTS)("%s has no shellcheck -x findings", async (script) => {
    await requireShellcheck();
    const result = await run("shellcheck", ["-x", script]);
    expect(result.code, findings(script, result)).toBe(0);
    expect(result.stdout, findings(script, result)).toBe("");
  });
});

describe("test/e2e manifests", () => {
  describe("on the API server (kubectl apply --dry-run=server)", () => {
    beforeAll(async () => {
      await installKeyPoolCrd();
      // A dry run of namespaced objects needs their namespace for real. --save-config: the dry
      // run of the file's Namespace then has nothing to warn about.
      const existing = await kubectl(["get", "namespace", E2E_NAMESPACE]);
      if (existing.code !== 0) {
        const created = await kubectl(["create", "namespace", E2E_NAMESPACE, "--save-config"]);
        if (created.code !== 0 && !created.stderr.includes("AlreadyExists")) {
          throw new Error(`kubectl create namespace ${E2E_NAMESPACE} failed: ${created.stderr}`);
        }
      }
    });

    it.each([E2E_FAKE_PROVIDER])("%s is accepted, without warnings", async (file) => {
      const objects = e2eDocuments(file).length;
      const { code, stdout, stderr } = await kubectl(["apply", "--dry-run=server", "-f", join(ROOT, file)]);
      const output = `kubectl apply --dry-run=server -f ${file} (exit ${code}):\n${stdout}${stderr}`;
      expect(code, output).toBe(0);
      expect(stderr, output).not.toMatch(/warning/i);
      // One "<kind>/<name> created|configured|unchanged (server dry run)" line per object.
      expect(stdout.match(/ \(server dry run\)$/gm)?.length, output).toBe(objects);
    });
  });
});
