/**
 * Reading and running images with podman (same store as buildah): whether an image is there and
 * which inputs it was built from, its size and digest, tags, and the `podman run` arguments the
 * checks use (runc, the sandbox's ulimits, and the Deployment's hardening: read-only root, no
 * capabilities, no privilege escalation).
 */
import { INPUTS_LABEL, ociRuntime, ULIMITS } from "./buildah.ts";
import { ImageError } from "./errors.ts";
import { output, run } from "./run.ts";

export interface ImageFacts {
  id: string;
  digest: string;
  /** Bytes, uncompressed, as `podman images` counts them. */
  size: number;
  names: string[];
  user: string;
  entrypoint: string[];
  cmd: string[];
  labels: Record<string, string>;
}

interface InspectJson {
  Id: string;
  Digest: string;
  Size: number;
  RepoTags?: string[] | null;
  Config?: {
    User?: string;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Labels?: Record<string, string> | null;
  };
}

/** The image's facts, or undefined when the store has no such image. */
export async function inspectImage(ref: string): Promise<ImageFacts | undefined> {
  const result = await run("podman", ["image", "inspect", ref], { capture: true, allowFailure: true });
  if (result.code !== 0) return undefined;
  const [image] = JSON.parse(result.stdout) as InspectJson[];
  if (!image) return undefined;
  return {
    id: image.Id,
    digest: image.Digest,
    size: image.Size,
    names: image.RepoTags ?? [],
    user: image.Config?.User ?? "",
    entrypoint: image.Config?.Entrypoint ?? [],
    cmd: image.Config?.Cmd ?? [],
    labels: image.Config?.Labels ?? {},
  };
}

export async function requireImage(ref: string, hint: string): Promise<ImageFacts> {
  const facts = await inspectImage(ref);
  if (!facts) throw new ImageError("image_missing", `no image ${ref} in the local store: ${hint}`);
  return facts;
}

/** Whether `ref` is there and was built from inputs hashing to `key` (see INPUTS_LABEL). */
export async function isCurrent(ref: string, key: string): Promise<boolean> {
  return (await inspectImage(ref))?.labels[INPUTS_LABEL] === key;
}

export async function tagImage(ref: string, ...names: string[]): Promise<void> {
  await run("podman", ["tag", ref, ...names], { capture: true });
}

export async function untagImage(ref: string, name: string): Promise<void> {
  await run("podman", ["untag", ref, name], { capture: true });
}

/** "123 MB" as podman prints sizes (decimal units). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export interface RunSpec {
  /** Replaces the image's entrypoint (`""` clears it). */
  entrypoint?: string;
  args?: readonly string[];
  /** Runs in the background under this name. */
  detachAs?: string;
}

/** `podman run` arguments: hardened as the Deployment runs the operator (read-only, no capabilities). */
export function podmanRunArgs(image: string, spec: RunSpec = {}, runtime = ociRuntime()): string[] {
  return [
    "run",
    ...(spec.detachAs ? ["--detach", "--name", spec.detachAs] : ["--rm"]),
    "--runtime",
    runtime,
    ...ULIMITS,
    "--read-only",
    "--cap-drop=all",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "none",
    ...(spec.entrypoint !== undefined ? ["--entrypoint", spec.entrypoint] : []),
    image,
    ...(spec.args ?? []),
  ];
}

/** Runs an image once (hardened) and returns its exit code and output. */
export function runImage(image: string, spec: RunSpec = {}) {
  return run("podman", podmanRunArgs(image, spec), { capture: true, allowFailure: true });
}

/** The store's names for the images (`podman images` REPOSITORY:TAG), for messages. */
export async function imageNames(): Promise<string[]> {
  const out = await output("podman", ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
  return out.split("\n").filter((n) => n && !n.startsWith("<none>"));
}
