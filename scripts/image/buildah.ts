/**
 * Making images with buildah, no Dockerfile: a working container (`buildah from scratch` or from a
 * local base), its filesystem mounted and written directly (buildah mount, as root), configured
 * (`buildah config`) and committed. Also the flags every container here needs: runc, because crun
 * refuses this machine's hybrid cgroup layout, and ulimits within the sandbox's hard nofile 20000.
 */
import { existsSync } from "node:fs";
import { output, pipe, run } from "./run.ts";

/** runc where Debian puts it (crun, podman's default here, fails on hybrid cgroups v1/v2). */
export function ociRuntime(exists: (path: string) => boolean = existsSync): string {
  return ["/usr/sbin/runc", "/usr/bin/runc"].find(exists) ?? "runc";
}

/**
 * Limits for every container run here. The defaults (nofile 1048576, buildah's nproc 32768) exceed
 * the hard limits some sandboxes set (nofile 20000), and runc then fails to start the container.
 */
export const ULIMITS: readonly string[] = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"];

/** The label holding a hash of an image's inputs: equal hash, same image, nothing to rebuild. */
export const INPUTS_LABEL = "io.keypool.image.inputs";

export interface ImageConfig {
  user?: string;
  env?: Readonly<Record<string, string>>;
  workingDir?: string;
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  ports?: readonly number[];
  labels?: Readonly<Record<string, string>>;
}

/** `buildah config` arguments for `config` (entrypoint and cmd in JSON form, so no shell wraps them). */
export function configArgs(config: ImageConfig): string[] {
  return [
    ...(config.user !== undefined ? ["--user", config.user] : []),
    ...Object.entries(config.env ?? {}).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
    ...(config.workingDir !== undefined ? ["--workingdir", config.workingDir] : []),
    // buildah 1.28 warns `cmd "bash" exists and will be passed to entrypoint` when an image on the
    // debian base gets an entrypoint, even with --cmd in the same call; the committed cmd is right.
    ...(config.cmd !== undefined ? ["--cmd", JSON.stringify(config.cmd)] : []),
    ...(config.entrypoint !== undefined ? ["--entrypoint", JSON.stringify(config.entrypoint)] : []),
    ...(config.ports ?? []).flatMap((p) => ["--port", String(p)]),
    ...Object.entries(config.labels ?? {}).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
  ];
}

export interface WorkingContainer {
  id: string;
  /** Mounts the container's filesystem (root only) and returns where. */
  mount(): Promise<string>;
  /** Runs a shell script inside (the base must have /bin/sh); the default network reaches apt mirrors. */
  sh(script: string): Promise<void>;
  config(config: ImageConfig): Promise<void>;
  /** Commits to `tag` and returns the image id. */
  commit(tag: string, options?: { timestamp?: number }): Promise<string>;
}

/** Runs `work` on a new working container from `from` ("scratch" or a local image), removed afterwards. */
export async function withWorkingContainer<T>(
  from: string,
  work: (c: WorkingContainer) => Promise<T>,
): Promise<T> {
  const id = await output("buildah", ["from", "--pull=never", ...ULIMITS, from]);
  const container: WorkingContainer = {
    id,
    mount: () => output("buildah", ["mount", id]),
    sh: async (script) => {
      await run("buildah", ["run", "--runtime", ociRuntime(), id, "--", "/bin/sh", "-euc", script]);
    },
    config: async (config) => {
      await run("buildah", ["config", ...configArgs(config), id]);
    },
    commit: async (tag, options = {}) => {
      const timestamp = options.timestamp !== undefined ? ["--timestamp", String(options.timestamp)] : [];
      const out = await output("buildah", ["commit", "--quiet", ...timestamp, id, tag]);
      return out.split("\n").at(-1) ?? out;
    },
  };
  try {
    return await work(container);
  } finally {
    await run("buildah", ["rm", id], { capture: true, allowFailure: true });
  }
}

/**
 * Copies the tree `from` into `to` with tar, keeping owners, modes, links and special files;
 * `exclude` patterns are relative (`./dev/*`).
 */
export async function copyTree(from: string, to: string, exclude: readonly string[] = []): Promise<void> {
  await pipe(
    ["tar", ["--numeric-owner", ...exclude.map((p) => `--exclude=${p}`), "-C", from, "-cf", "-", "."]],
    ["tar", ["--numeric-owner", "-C", to, "-xpf", "-"]],
  );
}
