/**
 * kstatus, the real one: what sigs.k8s.io/cli-utils' `status.Compute` says about objects, for
 * tests that check KeyPool conditions against what kstatus-based tools (Flux's health checks,
 * `kpt live status`, cli-utils' pollers) will show. The Go program in test/support/kstatus/ is
 * built once into the project's cache, outside the repository
 * (`${KEYPOOL_CACHE_DIR or XDG_CACHE_HOME or ~/.cache}/keypool-operator/tools/kstatus-<version>/`),
 * under the control-plane build's lock, so parallel test files build it once; it is rebuilt when
 * its sources (main.go, go.mod, go.sum) change. Building needs the Go toolchain and the Go module
 * proxy: about 20 s with a warm Go build cache, 100 s with a cold one on 2 cores, longer than a
 * test's timeout, so call `ensureKstatus()` in a `beforeAll` with a long timeout (600_000) first.
 *
 * The rules kstatus applies to a custom resource (cli-utils v0.37.2, pkg/kstatus/status: generic.go
 * checkGenericProperties, status.go Compute and checkReadyCondition), first match wins:
 * 1. metadata.deletionTimestamp set: Terminating ("Resource scheduled for deletion").
 * 2. metadata.generation and status.observedGeneration both present and different: InProgress
 *    ("<Kind> generation is 2, but latest observed generation is 1"). Without
 *    status.observedGeneration there is no such check; conditions' own observedGeneration is
 *    never read.
 * 3. status.conditions, in list order: the first Reconciling=True gives InProgress, the first
 *    Stalled=True gives Failed, each with that condition's message (so with both True, whichever
 *    comes first in the list decides).
 * 4. (Built-in kinds such as Deployment or Pod have their own rules here; custom resources none.)
 * 5. A Ready condition: True gives Current ("Resource is Ready"); False or Unknown gives
 *    InProgress with Ready's message, never Failed: only Stalled=True makes a resource Failed.
 * 6. Otherwise Current ("Resource is current"). Any other condition type (Degraded, say) is
 *    ignored. Compute itself never answers NotFound or Unknown: those come from cli-utils' pollers,
 *    for objects missing from the cluster or unreadable.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot, type Env, isExecutable } from "./control-plane/binaries.ts";
import { type Log, run, withLock } from "./control-plane/build.ts";

/** The Go module of the tool: main.go, go.mod, go.sum (source; the binary never lives here). */
const SOURCE_DIR = fileURLToPath(new URL("./kstatus/", import.meta.url));
const SOURCES = ["main.go", "go.mod", "go.sum"];

export type KstatusStatus = "Current" | "InProgress" | "Failed" | "Terminating" | "NotFound" | "Unknown";

export interface KstatusResult {
  status: KstatusStatus;
  message: string;
}

/** The sigs.k8s.io/cli-utils version test/support/kstatus/go.mod requires. */
export async function cliUtilsVersion(): Promise<string> {
  const goMod = await readFile(join(SOURCE_DIR, "go.mod"), "utf8");
  const version = /^\s*sigs\.k8s\.io\/cli-utils\s+(v\S+)/m.exec(goMod)?.[1];
  if (!version) throw new Error(`${join(SOURCE_DIR, "go.mod")} does not require sigs.k8s.io/cli-utils`);
  return version;
}

async function sourceHash(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of SOURCES) hash.update(`${file}\n`).update(await readFile(join(SOURCE_DIR, file)));
  return hash.digest("hex");
}

const stderrLog: Log = (line) => process.stderr.write(`[kstatus] ${line}\n`);

/**
 * The kstatus binary's path, building it first when it is missing or older than its sources.
 * Safe to call from several processes at once.
 */
export async function ensureKstatus(options: { env?: Env; log?: Log } = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? stderrLog;
  const dir = join(cacheRoot(env), "tools", `kstatus-${await cliUtilsVersion()}`);
  const binary = join(dir, "kstatus");
  const stamp = join(dir, "source.sha256");
  const wanted = await sourceHash();
  const upToDate = async () =>
    (await isExecutable(binary)) && (await readFile(stamp, "utf8").catch(() => "")) === wanted;
  if (await upToDate()) return binary;
  // The control-plane build's lock: test files starting at once build it once.
  return withLock(dir, log, async () => {
    if (await upToDate()) return binary;
    log(`building ${SOURCE_DIR} (sigs.k8s.io/cli-utils kstatus) into ${dir}`);
    await mkdir(dir, { recursive: true });
    const partial = `${binary}.${process.pid}.partial`;
    try {
      await run("go", ["build", "-trimpath", "-ldflags", "-s -w", "-o", partial, "."], {
        cwd: SOURCE_DIR,
        env: { ...process.env, ...env, GOFLAGS: "-mod=readonly -buildvcs=false", CGO_ENABLED: "0" },
        log,
        missing:
          "Building the kstatus test tool (test/support/kstatus/) needs the Go toolchain (go >= 1.24) on PATH and the Go module proxy.",
      });
      await rename(partial, binary);
      await writeFile(stamp, wanted);
    } finally {
      await rm(partial, { force: true });
    }
    return binary;
  });
}

/**
 * What kstatus computes for each object (complete objects with metadata and status, as read
 * from the API server), in order. Rejects when kstatus cannot read one (its error says which).
 */
export async function kstatusOf(objects: object[]): Promise<KstatusResult[]> {
  const binary = await ensureKstatus();
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`kstatus exited with ${code}: ${err.trim()}`)),
    );
    child.stdin.end(objects.map((o) => JSON.stringify(o)).join("\n"));
  });
  const results = stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as KstatusResult);
  if (results.length !== objects.length)
    throw new Error(`kstatus answered ${results.length} results for ${objects.length} objects`);
  return results;
}
