/**
 * A Go command built once from the Go module proxy into a folder of the tools cache
 * (`go install <package>@<version>`), the way helm and promtool come to the tests. Several
 * processes may ask at once: one builds (a lock beside the folder), the others wait and reuse it.
 * The build goes to a GOBIN of its own and is renamed into place, so an interrupted build never
 * leaves a half-written binary behind.
 */
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Env, isExecutable } from "./control-plane/binaries.ts";
import { type Log, run, withLock } from "./control-plane/build.ts";

export interface GoTool {
  /** The binary's name, as `go install` writes it. */
  name: string;
  /** `<module>/cmd/<name>@<version>`. */
  pkg: string;
  ldflags: string;
  /** The cache folder the binary goes to. */
  dir: string;
  /** Variables for `go` on top of this process's (GOBIN is set here). */
  env: Env;
  log: Log;
  /** What to tell a person when `go` is not there. */
  missing: string;
}

/** The tool's path, after building it when it is missing. */
export async function ensureGoTool(tool: GoTool): Promise<string> {
  const binary = join(tool.dir, tool.name);
  if (await isExecutable(binary)) return binary;
  return withLock(tool.dir, tool.log, async () => {
    if (await isExecutable(binary)) return binary;
    const started = Date.now();
    tool.log(`building ${tool.name} (${tool.pkg}) from the Go module proxy into ${tool.dir}`);
    await mkdir(tool.dir, { recursive: true });
    const gobin = await mkdtemp(join(tool.dir, ".build-"));
    try {
      await run("go", ["install", "-trimpath", "-ldflags", tool.ldflags, tool.pkg], {
        cwd: tool.dir,
        env: { ...process.env, ...tool.env, GOBIN: gobin, CGO_ENABLED: "0" },
        log: tool.log,
        missing: tool.missing,
      });
      await rename(join(gobin, tool.name), binary);
    } finally {
      await rm(gobin, { recursive: true, force: true });
    }
    tool.log(`built ${tool.name} in ${Math.round((Date.now() - started) / 1000)} s`);
    return binary;
  });
}
