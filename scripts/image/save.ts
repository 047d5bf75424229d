/**
 * Writes images to one tar file that containerd imports (`ctr -n k8s.io images import file.tar`),
 * under the names Kubernetes asks for.
 *
 * Format: docker-archive. ctr 1.6.20 imported both podman formats here (docker-archive names the
 * images from manifest.json's RepoTags, oci-archive from org.opencontainers.image.ref.name), but
 * podman 4.3 writes several images into one archive only as docker-archive (--multi-image-archive),
 * so the operator and the end-to-end images go in with one import, their shared layers once. The
 * cost: layers are stored uncompressed (the operator alone: 236 MB, against 63 MB as oci-archive).
 *
 * Names: podman stores `keypool-operator:dev` as localhost/keypool-operator:dev, but a Pod's
 * `image: keypool-operator:dev` means docker.io/library/keypool-operator:dev, so each image is
 * written under its Docker-normalized name (tagged for the save, untagged after).
 */
import { rename, rm } from "node:fs/promises";
import { ImageError } from "./errors.ts";
import { requireImage, tagImage, untagImage } from "./podman.ts";
import { run } from "./run.ts";

/**
 * The name Kubernetes (and Docker) give a reference: docker.io/ when the first part is not a host
 * (no dot or colon, not "localhost"), library/ for a single-part name, :latest when untagged.
 */
export function normalizedName(ref: string): string {
  if (ref.includes("@")) return ref;
  const parts = ref.split("/");
  const first = parts[0] ?? "";
  const hasHost = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost");
  const named = hasHost ? ref : `docker.io/${parts.length === 1 ? "library/" : ""}${ref}`;
  const last = named.split("/").at(-1) ?? "";
  return last.includes(":") ? named : `${named}:latest`;
}

/** Saves `refs` to `file`; returns the names the archive holds. */
export async function saveImages(
  refs: readonly string[],
  file: string,
  log: (line: string) => void,
): Promise<string[]> {
  const added: [string, string][] = [];
  const names: string[] = [];
  try {
    for (const ref of refs) {
      const facts = await requireImage(ref, "build it first (npm run image -- build / build-extras)");
      const name = normalizedName(ref);
      if (!facts.names.includes(name)) {
        await tagImage(facts.id, name);
        added.push([facts.id, name]);
      }
      names.push(name);
    }
    log(`podman save --format docker-archive ${names.join(" ")} -> ${file}`);
    // podman refuses to write over an archive; write beside it and replace it whole.
    const partial = `${file}.partial-${process.pid}`;
    try {
      await run("podman", [
        "save",
        "--format",
        "docker-archive",
        ...(names.length > 1 ? ["--multi-image-archive"] : []),
        "--output",
        partial,
        ...names,
      ]);
      await rename(partial, file);
    } finally {
      await rm(partial, { force: true });
    }
  } finally {
    for (const [id, name] of added) await untagImage(id, name).catch(() => undefined);
  }
  if (names.length === 0) throw new ImageError("usage", "nothing to save");
  return names;
}
