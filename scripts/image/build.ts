/**
 * Builds the repository's Dockerfile, unchanged, with buildah on the local base images: the
 * Dockerfile's NODE_IMAGE and RUNTIME_IMAGE build arguments point at them and --pull=never keeps
 * buildah from looking for anything in a registry. --layers caches each step as Docker does, so a
 * second build with the same package-lock.json skips `npm ci`.
 *
 * Where the host's npm trusts an extra CA bundle (npm config `cafile`, e.g. a TLS-inspecting
 * proxy's CA added to /etc/ssl/certs), the RUN steps get it too: the bundle is bind-mounted over
 * the image's /etc/ssl/certs/ca-certificates.crt and an npmrc naming it over /usr/local/etc/npmrc
 * (npm's global config in the node image), for the build only; no image keeps them.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ociRuntime, ULIMITS } from "./buildah.ts";
import { type ImageFacts, requireImage } from "./podman.ts";
import { output, run } from "./run.ts";

/** Where the build's RUN steps see the host's CA bundle and the npmrc that points npm at it. */
const IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
const IMAGE_GLOBAL_NPMRC = "/usr/local/etc/npmrc";

export interface BudOptions {
  tag: string;
  nodeImage: string;
  runtimeImage: string;
  /** The repository root: the build context, holding the Dockerfile. */
  contextDir: string;
  /**
   * Network of the RUN steps (`npm ci` reaches the npm registry). Unset: buildah's default
   * (a private network namespace through netavark), which reaches the registry here; `host`
   * where that bridge cannot be set up.
   */
  network?: string | undefined;
  /** Rebuild every step instead of reusing cached layers. */
  noCache?: boolean;
  /** A CA bundle for the RUN steps (see the header); `npmrc` must then name it (npmrcForCa). */
  trust?: { caFile: string; npmrc: string } | undefined;
  runtime?: string;
}

/** The global npmrc that makes npm in the build trust the mounted bundle. */
export function npmrcForCa(): string {
  return `cafile=${IMAGE_CA_BUNDLE}\n`;
}

/** The host npm's `cafile` setting, when it names a file (npm prints "null" or "undefined" when unset). */
export async function hostNpmCaFile(): Promise<string | undefined> {
  const value = await output("npm", ["config", "get", "cafile"]).catch(() => "");
  return value.startsWith("/") && existsSync(value) ? value : undefined;
}

export function budArgs(options: BudOptions): string[] {
  return [
    "bud",
    "--pull=never",
    "--runtime",
    options.runtime ?? ociRuntime(),
    ...ULIMITS,
    "--layers",
    // A failed step would otherwise leave its working container (and pin its layers) behind.
    "--force-rm",
    ...(options.noCache ? ["--no-cache"] : []),
    ...(options.network ? ["--network", options.network] : []),
    ...(options.trust
      ? [
          "--volume",
          `${options.trust.caFile}:${IMAGE_CA_BUNDLE}:ro`,
          "--volume",
          `${options.trust.npmrc}:${IMAGE_GLOBAL_NPMRC}:ro`,
        ]
      : []),
    "--build-arg",
    `NODE_IMAGE=${options.nodeImage}`,
    "--build-arg",
    `RUNTIME_IMAGE=${options.runtimeImage}`,
    "--tag",
    options.tag,
    "--file",
    join(options.contextDir, "Dockerfile"),
    options.contextDir,
  ];
}

/**
 * Runs the build (buildah's output on stderr) and returns the image's facts. `caFile`: a CA bundle
 * for the RUN steps to trust (see the header), or undefined for the image's own.
 */
export async function buildOperatorImage(
  options: Omit<BudOptions, "trust">,
  caFile: string | undefined,
): Promise<ImageFacts> {
  const dir = caFile ? await mkdtemp(join(tmpdir(), "keypool-image-")) : undefined;
  try {
    let trust: BudOptions["trust"];
    if (caFile && dir) {
      trust = { caFile, npmrc: join(dir, "npmrc") };
      await writeFile(trust.npmrc, npmrcForCa());
    }
    await run("buildah", budArgs({ ...options, trust }));
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
  return requireImage(options.tag, "buildah bud reported success but the tag is missing");
}
