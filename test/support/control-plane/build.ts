/**
 * Builds kube-apiserver, kubectl and etcd from the official Go modules into the cache folder.
 *
 * kube-apiserver and kubectl: a throwaway module that requires k8s.io/kubernetes at the release
 * and pins every staging module (k8s.io/api, k8s.io/apimachinery, ...) with `replace` directives
 * to the matching v0.x.y. The replace list, the `go` line and the `godebug default=` line are read
 * from that release's own go.mod, so a version bump needs no hand-edited list.
 *
 * etcd: a second throwaway module requiring go.etcd.io/etcd/server/v3 at the version the same
 * Kubernetes release requires, with a three-line main calling etcdmain.Main.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  type ControlPlaneBinaries,
  cacheDir,
  type Env,
  findBinaries,
  KUBERNETES_VERSION,
} from "./binaries.ts";
import { isAlive } from "./processes.ts";

export type Log = (line: string) => void;

export interface BuildOptions {
  version?: string;
  env?: Env;
  log?: Log;
}

export class BuildError extends Error {
  override name = "BuildError";
  readonly code = "control_plane_build_failed";
}

/** What a Kubernetes release's go.mod tells us. */
export interface KubernetesModuleFacts {
  goDirective: string;
  godebug: string | undefined;
  stagingModules: string[];
  etcdVersion: string;
}

/** Parses the parts of k8s.io/kubernetes' go.mod the build needs. Exported for its unit test. */
export function parseKubernetesGoMod(goMod: string): KubernetesModuleFacts {
  const goDirective = /^go\s+(\S+)\s*$/m.exec(goMod)?.[1];
  const godebug = /^godebug\s+(.+?)\s*$/m.exec(goMod)?.[1];
  const stagingModules = [...goMod.matchAll(/^\s*(\S+)\s*=>\s*\.\/staging\/src\/\S+\s*$/gm)].map(
    (m) => m[1] as string,
  );
  const etcdVersion = /^\s*go\.etcd\.io\/etcd\/server\/v3\s+(v\S+)/m.exec(goMod)?.[1];
  if (!goDirective || stagingModules.length === 0 || !etcdVersion) {
    throw new BuildError(
      "k8s.io/kubernetes go.mod does not have the expected shape (go directive, staging replaces, etcd server)",
    );
  }
  return { goDirective, godebug, stagingModules, etcdVersion };
}

/** The go.mod of the throwaway kube-apiserver/kubectl module. */
export function apiserverGoMod(version: string, facts: KubernetesModuleFacts): string {
  const staging = `v0.${version.split(".").slice(1).join(".")}`;
  return [
    "module keypool.local/kube-apiserver-build",
    "",
    `go ${facts.goDirective}`,
    "",
    ...(facts.godebug ? [`godebug ${facts.godebug}`, ""] : []),
    `require k8s.io/kubernetes v${version}`,
    "",
    "replace (",
    ...facts.stagingModules.map((m) => `\t${m} => ${m} ${staging}`),
    ")",
    "",
  ].join("\n");
}

/** `-ldflags` stamping the release into a Kubernetes binary (what `--version` and /version report). */
export function versionLdflags(version: string): string {
  const [major, minor] = version.split(".");
  const vars = {
    "k8s.io/component-base/version.gitVersion": `v${version}`,
    "k8s.io/component-base/version.gitMajor": major,
    "k8s.io/component-base/version.gitMinor": minor,
    "k8s.io/component-base/version.gitTreeState": "clean",
    "k8s.io/client-go/pkg/version.gitVersion": `v${version}`,
    "k8s.io/client-go/pkg/version.gitMajor": major,
    "k8s.io/client-go/pkg/version.gitMinor": minor,
  };
  return ["-s", "-w", ...Object.entries(vars).map(([k, v]) => `-X ${k}=${v}`)].join(" ");
}

/**
 * Runs a command, streaming its output to `log`, and returns its stdout. `missing` is the
 * message when the command is not on PATH (default: what building the control plane needs).
 */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; log: Log; quiet?: boolean; missing?: string },
) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    createInterface({ input: child.stderr }).on("line", (line) => {
      if (!opts.quiet) opts.log(`    ${line}`);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      reject(
        err.code === "ENOENT"
          ? new BuildError(
              opts.missing ??
                `"${cmd}" was not found on PATH. Building the control plane needs the Go toolchain (go >= 1.24); ` +
                  "install it, or set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd.",
            )
          : err,
      );
    });
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new BuildError(`${cmd} ${args.join(" ")} failed with exit code ${code} (in ${opts.cwd})`));
    });
  });
}

/** A cross-process lock (mkdir is atomic), so two test runs never build into the cache at once. */
export async function withLock<T>(dir: string, log: Log, fn: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  await mkdir(join(dir, ".."), { recursive: true });
  for (let waitedMs = 0; ; waitedMs += 2000) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number(await readFile(join(lock, "pid"), "utf8").catch(() => "0"));
      if (!owner || !isAlive(owner)) {
        const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
        if (owner || age > 10_000) await rm(lock, { recursive: true, force: true });
      } else if (waitedMs % 30_000 === 0) {
        log(`waiting for another build (pid ${owner}) holding ${lock}`);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/**
 * Builds the binaries into the cache unless they are already there. Safe to call from several
 * processes at once. Returns where they are.
 */
export async function buildBinaries(options: BuildOptions = {}): Promise<ControlPlaneBinaries> {
  const version = options.version ?? KUBERNETES_VERSION;
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const target = cacheDir(env, version);

  return withLock(target, log, async () => {
    const existing = await findBinaries({ ...env, KUBEBUILDER_ASSETS: undefined });
    if (existing && existing.dir === target) return existing;

    const started = Date.now();
    // Build next to the cache so the final rename never crosses file systems.
    const work = await mkdtemp(`${target}.build-`);
    const goEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...env,
      GOFLAGS: "-mod=mod -buildvcs=false",
      CGO_ENABLED: "0",
    };
    try {
      log(`[1/4] reading k8s.io/kubernetes@v${version}'s go.mod from the Go module proxy`);
      const info = JSON.parse(
        await run("go", ["mod", "download", "-json", `k8s.io/kubernetes@v${version}`], {
          cwd: work,
          env: goEnv,
          log,
        }),
      ) as { GoMod?: string; Error?: string };
      if (!info.GoMod)
        throw new BuildError(`go mod download k8s.io/kubernetes@v${version}: ${info.Error ?? "no go.mod"}`);
      const facts = parseKubernetesGoMod(await readFile(info.GoMod, "utf8"));
      log(
        `      ${facts.stagingModules.length} staging modules pinned to v0.${version.split(".").slice(1).join(".")}, ` +
          `etcd ${facts.etcdVersion}, godebug ${facts.godebug ?? "(none)"}`,
      );

      const apiserverDir = join(work, "kube-apiserver");
      const etcdDir = join(work, "etcd");
      const out = join(work, "out");
      await Promise.all([mkdir(apiserverDir), mkdir(etcdDir), mkdir(out)]);
      await writeFile(join(apiserverDir, "go.mod"), apiserverGoMod(version, facts));
      const ldflags = versionLdflags(version);

      log(
        "[2/4] building kube-apiserver (the first build downloads modules and compiles for several minutes)",
      );
      await run(
        "go",
        [
          "build",
          "-trimpath",
          "-ldflags",
          ldflags,
          "-o",
          join(out, "kube-apiserver"),
          "k8s.io/kubernetes/cmd/kube-apiserver",
        ],
        { cwd: apiserverDir, env: goEnv, log },
      );
      log("[3/4] building kubectl");
      await run(
        "go",
        [
          "build",
          "-trimpath",
          "-ldflags",
          ldflags,
          "-o",
          join(out, "kubectl"),
          "k8s.io/kubernetes/cmd/kubectl",
        ],
        { cwd: apiserverDir, env: goEnv, log },
      );

      log(`[4/4] building etcd ${facts.etcdVersion}`);
      await writeFile(
        join(etcdDir, "go.mod"),
        `module keypool.local/etcd-build\n\ngo ${facts.goDirective}\n\nrequire go.etcd.io/etcd/server/v3 ${facts.etcdVersion}\n`,
      );
      await writeFile(
        join(etcdDir, "main.go"),
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n',
      );
      await run("go", ["mod", "tidy"], { cwd: etcdDir, env: goEnv, log });
      await run("go", ["build", "-trimpath", "-ldflags", "-s -w", "-o", join(out, "etcd"), "."], {
        cwd: etcdDir,
        env: goEnv,
        log,
      });

      await mkdir(target, { recursive: true });
      for (const name of ["kube-apiserver", "kubectl", "etcd"])
        await rename(join(out, name), join(target, name));
      await writeFile(
        join(target, "versions.json"),
        `${JSON.stringify({ kubernetes: `v${version}`, etcd: facts.etcdVersion, builtAt: new Date().toISOString() }, null, 2)}\n`,
      );
      log(`built into ${target} in ${Math.round((Date.now() - started) / 1000)} s`);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const built = await findBinaries({ ...env, KUBEBUILDER_ASSETS: undefined });
    if (!built) throw new BuildError(`build finished but ${target} is incomplete`);
    return built;
  });
}

/** The binaries from KUBEBUILDER_ASSETS or the cache, building them first when neither has them. */
export async function ensureBinaries(options: BuildOptions = {}): Promise<ControlPlaneBinaries> {
  const found = await findBinaries(options.env ?? process.env);
  return found ?? buildBinaries(options);
}
