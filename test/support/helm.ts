/**
 * helm for the chart tests (charts/keypool-operator), built from its official Go module the way
 * the control plane is (see control-plane/build.ts): `go install helm.sh/helm/v4/cmd/helm@<version>`
 * once into the project's cache, outside the repository
 * (`${KEYPOOL_CACHE_DIR or XDG_CACHE_HOME or ~/.cache}/keypool-operator/tools/helm-<version>/`),
 * under the control-plane build's cross-process lock, so test files starting at once build it once.
 * Helm 3 is built the same way (HELM3_VERSION): the chart must work with both.
 *
 * Building needs the Go toolchain (go >= 1.26, or an older go with GOTOOLCHAIN=auto, which fetches
 * it) and the Go module proxy: about 3 min on 2 cores with a cold module cache, longer than a
 * test's timeout, so call ensureHelm() in a `beforeAll` with a long timeout (900_000) first.
 *
 * runHelm() gives helm a configuration, cache and data folder of its own per process, so the tests
 * never read or write the user's ~/.config/helm (repositories, registries, plugins).
 * renderedObjects() and withoutHelmLabels() read `helm template` (and `kubectl kustomize`) output
 * for comparing the chart with deploy/.
 */
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { cacheRoot, type Env } from "./control-plane/binaries.ts";
import type { Log } from "./control-plane/build.ts";
import { ensureGoTool } from "./go-tool.ts";

/** The Helm release the chart is tested with: the latest v4 on the Go module proxy. */
export const HELM_VERSION = "v4.3.2";
/** The latest Helm 3, which the chart supports too. */
export const HELM3_VERSION = "v3.22.0";

const stderrLog: Log = (line) => process.stderr.write(`[helm] ${line}\n`);

/** The Go module of a Helm release: helm.sh/helm/v4 for v4.x.y. */
export function helmModule(version: string): string {
  const major = /^v(\d+)\.\d+\.\d+$/.exec(version)?.[1];
  if (!major) throw new Error(`not a Helm release version: ${version} (want vX.Y.Z)`);
  return `helm.sh/helm/v${major}`;
}

/** Where a Helm release is built to. */
export function helmDir(version: string, env: Env = process.env): string {
  return join(cacheRoot(env), "tools", `helm-${version}`);
}

/**
 * The helm binary of `version` (default HELM_VERSION), building it first when it is missing.
 * Safe to call from several processes at once.
 */
export async function ensureHelm(options: { version?: string; env?: Env; log?: Log } = {}): Promise<string> {
  const version = options.version ?? HELM_VERSION;
  const env = options.env ?? process.env;
  const module = helmModule(version);
  return ensureGoTool({
    name: "helm",
    pkg: `${module}/cmd/helm@${version}`,
    // What Helm's Makefile stamps: `helm version` says the release, not "v4.3".
    ldflags: `-s -w -X ${module}/internal/version.version=${version}`,
    dir: helmDir(version, env),
    env: { ...env, GOFLAGS: "-mod=mod" },
    log: options.log ?? stderrLog,
    missing:
      `Building helm ${version} for the chart tests needs the Go toolchain on PATH (go >= 1.26, or an older ` +
      "go with GOTOOLCHAIN=auto) and the Go module proxy. Install Go (https://go.dev/dl/), then run the tests again.",
  });
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

let homes: Promise<Record<string, string>> | undefined;

/** HELM_CONFIG_HOME, HELM_CACHE_HOME and HELM_DATA_HOME in a temporary folder of this process. */
function helmHomes(): Promise<Record<string, string>> {
  homes ??= mkdtemp(join(tmpdir(), "keypool-helm-")).then((root) => ({
    HELM_CONFIG_HOME: join(root, "config"),
    HELM_CACHE_HOME: join(root, "cache"),
    HELM_DATA_HOME: join(root, "data"),
  }));
  return homes;
}

/** Runs helm; never rejects for a non-zero exit (the result has the code and both outputs). */
export async function runHelm(binary: string, args: string[], options: { timeoutMs?: number } = {}) {
  const env = { ...process.env, ...(await helmHomes()), HELM_DEBUG: "false" };
  return new Promise<HelmResult>((resolve) => {
    execFile(
      binary,
      args,
      { env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        resolve({ code: err ? (typeof code === "number" ? code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** A Kubernetes object as the chart and kustomize render it. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** One object of `helm template` output and the template it came from ("templates/rbac.yaml"). */
export interface Rendered {
  source: string;
  object: RenderedObject;
}

/**
 * The objects of a multi-document YAML stream (helm template or kubectl kustomize output), each
 * with the template named by helm's `# Source: <chart>/<path>` line ("" when there is none).
 */
export function renderedObjects(yaml: string): Rendered[] {
  return yaml
    .split(/^---\s*$/m)
    .map((chunk) => ({
      source: /^# Source: [^/]+\/(.+)$/m.exec(chunk)?.[1] ?? "",
      object: parse(chunk) as RenderedObject | null,
    }))
    .filter((r): r is Rendered => r.object !== null && typeof r.object === "object");
}

/** kind/namespace/name: what identifies an object in a cluster. */
export const identity = (o: RenderedObject) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/**
 * Labels Helm's conventions add and deploy/ does not have: the release (instance), the tool
 * (managed-by), the chart and the app version.
 */
export const HELM_LABELS = [
  "app.kubernetes.io/instance",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/version",
  "helm.sh/chart",
] as const;

/** A copy of `object` without HELM_LABELS on it and on its pod template. */
export function withoutHelmLabels(object: RenderedObject): RenderedObject {
  const copy = structuredClone(object);
  const strip = (labels: Record<string, string> | undefined) =>
    labels &&
    Object.fromEntries(
      Object.entries(labels).filter(([k]) => !(HELM_LABELS as readonly string[]).includes(k)),
    );
  copy.metadata.labels = strip(copy.metadata.labels);
  if (copy.metadata.labels === undefined) delete copy.metadata.labels;
  const template = (
    copy.spec as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined
  )?.template;
  if (template?.metadata?.labels) template.metadata.labels = strip(template.metadata.labels);
  return copy;
}
