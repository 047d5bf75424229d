/**
 * Where the control-plane binaries (kube-apiserver, etcd, kubectl) come from.
 *
 * 1. `$KUBEBUILDER_ASSETS` (envtest's convention): a folder that already holds them.
 * 2. Otherwise a per-version cache outside the repository, filled once by `buildBinaries()`
 *    from the official Go modules (see build.ts).
 */
import { access, constants } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

/** The Kubernetes release the harness builds and tests against. */
export const KUBERNETES_VERSION = "1.34.4";

export interface ControlPlaneBinaries {
  /** Folder the binaries were found in. */
  dir: string;
  kubeApiserver: string;
  etcd: string;
  /** kubectl is optional in KUBEBUILDER_ASSETS; the built cache always has it. */
  kubectl: string | undefined;
  /** Where they came from, for the start-up banner. */
  origin: "KUBEBUILDER_ASSETS" | "cache";
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The cache folder for one Kubernetes version: `$KEYPOOL_CACHE_DIR` or `$XDG_CACHE_HOME` or `~/.cache`. */
export function cacheDir(env: Env = process.env, version = KUBERNETES_VERSION): string {
  return join(cacheRoot(env), "control-plane", `v${version}`);
}

/** The project's cache folder for tools built on demand (outside the repository). */
export function cacheRoot(env: Env = process.env): string {
  return env.KEYPOOL_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "keypool-operator");
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export class MissingBinariesError extends Error {
  override name = "MissingBinariesError";
  readonly code = "control_plane_binaries_missing";
}

/**
 * Finds the binaries without building anything. Returns undefined when the cache is empty;
 * throws when KUBEBUILDER_ASSETS is set but incomplete (the user asked for that folder, so
 * silently building something else would hide their mistake).
 */
export async function findBinaries(env: Env = process.env): Promise<ControlPlaneBinaries | undefined> {
  const assets = env.KUBEBUILDER_ASSETS;
  if (assets) {
    const found = await inspect(assets, "KUBEBUILDER_ASSETS");
    const missing = [
      ["kube-apiserver", found.kubeApiserver],
      ["etcd", found.etcd],
    ].filter(([, ok]) => !ok);
    if (missing.length > 0) {
      throw new MissingBinariesError(
        `KUBEBUILDER_ASSETS=${assets} has no executable ${missing.map(([n]) => n).join(" or ")}. ` +
          "Point it at a folder holding kube-apiserver and etcd (envtest's layout), or unset it so " +
          "the harness builds them with Go (npm run control-plane -- build).",
      );
    }
    return found.binaries;
  }
  const found = await inspect(cacheDir(env), "cache");
  return found.kubeApiserver && found.etcd && found.binaries.kubectl ? found.binaries : undefined;
}

async function inspect(dir: string, origin: ControlPlaneBinaries["origin"]) {
  const kubeApiserver = join(dir, "kube-apiserver");
  const etcd = join(dir, "etcd");
  const kubectl = join(dir, "kubectl");
  const [hasApiserver, hasEtcd, hasKubectl] = await Promise.all(
    [kubeApiserver, etcd, kubectl].map(isExecutable),
  );
  return {
    kubeApiserver: hasApiserver,
    etcd: hasEtcd,
    binaries: {
      dir,
      kubeApiserver,
      etcd,
      kubectl: hasKubectl ? kubectl : undefined,
      origin,
    } satisfies ControlPlaneBinaries,
  };
}
