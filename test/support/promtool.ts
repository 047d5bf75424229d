/**
 * promtool, the real one, for the monitoring tests: `promtool check rules` and `promtool test
 * rules` on deploy/monitoring/keypool-operator.rules.yaml, `promtool check metrics` on the
 * operator's /metrics. Built from the Prometheus Go module
 * (`go install github.com/prometheus/prometheus/cmd/promtool@<version>`) once into the project's
 * cache, outside the repository
 * (`${KEYPOOL_CACHE_DIR or XDG_CACHE_HOME or ~/.cache}/keypool-operator/tools/promtool-<version>/`),
 * under the control-plane build's cross-process lock, so test files starting at once build it once.
 *
 * The module's tags are v0.3MM.P for Prometheus 3.MM.P (Go modules cannot take a v3 major version
 * without renaming the module); PROMETHEUS_VERSION is the latest that builds with Go 1.26. The
 * build stamps the release the way Prometheus's own Makefile does, so `promtool --version` says it.
 *
 * Building needs the Go toolchain (go >= 1.26, or an older go with GOTOOLCHAIN=auto, which fetches
 * it) and the Go module proxy: about 4.5 min on 2 cores with a cold module cache, longer than a
 * test's timeout, so call ensurePromtool() in a `beforeAll` with a long timeout (900_000) first.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { cacheRoot, type Env } from "./control-plane/binaries.ts";
import type { Log } from "./control-plane/build.ts";
import { ensureGoTool } from "./go-tool.ts";

/** The github.com/prometheus/prometheus module version promtool is built from (Prometheus 3.16.0). */
export const PROMETHEUS_VERSION = "v0.316.0";

const MODULE = "github.com/prometheus/prometheus";
const stderrLog: Log = (line) => process.stderr.write(`[promtool] ${line}\n`);

/** The Prometheus release a module version stands for: v0.316.0 is 3.16.0. */
export function prometheusRelease(moduleVersion: string): string {
  const match = /^v0\.(\d+)(\d\d)\.(\d+)$/.exec(moduleVersion);
  if (!match) throw new Error(`not a Prometheus 3 module version: ${moduleVersion} (want v0.3MM.P)`);
  const [, major, minor, patch] = match;
  return `${Number(major)}.${Number(minor)}.${patch}`;
}

/** Where a promtool version is built to. */
export function promtoolDir(version: string, env: Env = process.env): string {
  return join(cacheRoot(env), "tools", `promtool-${version}`);
}

/**
 * The promtool binary of `version` (default PROMETHEUS_VERSION), building it first when it is
 * missing. Safe to call from several processes at once.
 */
export async function ensurePromtool(
  options: { version?: string; env?: Env; log?: Log } = {},
): Promise<string> {
  const version = options.version ?? PROMETHEUS_VERSION;
  const env = options.env ?? process.env;
  const stamp = `github.com/prometheus/common/version`;
  return ensureGoTool({
    name: "promtool",
    pkg: `${MODULE}/cmd/promtool@${version}`,
    ldflags: [
      "-s -w",
      `-X ${stamp}.Version=${prometheusRelease(version)}`,
      `-X ${stamp}.Revision=${version}`,
      `-X ${stamp}.Branch=${version}`,
    ].join(" "),
    dir: promtoolDir(version, env),
    // GOWORK=off and GOFLAGS without -mod: `go install pkg@version` ignores any go.mod around.
    env: { ...env, GOWORK: "off", GOFLAGS: "-buildvcs=false" },
    log: options.log ?? stderrLog,
    missing:
      `Building promtool ${version} for the monitoring tests needs the Go toolchain on PATH (go >= 1.26, ` +
      "or an older go with GOTOOLCHAIN=auto) and the Go module proxy. Install Go (https://go.dev/dl/), then run the tests again.",
  });
}

export interface PromtoolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs promtool; never rejects for a non-zero exit (the result has the code and both outputs). */
export function runPromtool(
  binary: string,
  args: string[],
  options: { cwd?: string; input?: string } = {},
): Promise<PromtoolResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      { cwd: options.cwd, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ code: err ? (typeof code === "number" ? code : 1) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}
