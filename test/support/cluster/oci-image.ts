/**
 * Writes an OCI image archive (an OCI image layout in a tar, what `ctr images import` and
 * `podman load` read) holding one single-layer linux/amd64 image: our static binaries need
 * nothing else (no shell, no libc). The image is named by the `io.containerd.image.name`
 * annotation, which `ctr images import` uses as its reference.
 */
import { createHash } from "node:crypto";
import { type TarEntry, tar } from "./tar.ts";

export interface ImageSpec {
  /** Full reference, e.g. "keypool.local/pause:3.10.1". */
  ref: string;
  /** The layer's files (paths without a leading slash). */
  files: readonly TarEntry[];
  entrypoint: readonly string[];
  cmd?: readonly string[];
  /** Numeric "uid[:gid]"; default root. */
  user?: string;
  env?: readonly string[];
  /** Ports the image documents (e.g. "53/udp"). */
  exposedPorts?: readonly string[];
}

const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
} as const;

interface Blob {
  digest: string;
  size: number;
  data: Buffer;
}

function blob(data: Buffer | string): Blob {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
  return {
    digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    size: bytes.length,
    data: bytes,
  };
}

/** The image's parts: layer, config, manifest, index (exported for tests). */
export function imageLayout(spec: ImageSpec) {
  const layer = blob(tar(spec.files));
  const config = blob(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {
        Entrypoint: spec.entrypoint,
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        ...(spec.user ? { User: spec.user } : {}),
        Env: spec.env ?? ["PATH=/"],
        ...(spec.exposedPorts
          ? { ExposedPorts: Object.fromEntries(spec.exposedPorts.map((p) => [p, {}])) }
          : {}),
      },
      // An uncompressed layer's diff id is its digest.
      rootfs: { type: "layers", diff_ids: [layer.digest] },
      history: [{ created_by: "keypool test/support/cluster/oci-image.ts" }],
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, digest: config.digest, size: config.size },
      layers: [{ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size }],
    }),
  );
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [
      {
        mediaType: MEDIA.manifest,
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: "amd64", os: "linux" },
        annotations: {
          "io.containerd.image.name": spec.ref,
          "org.opencontainers.image.ref.name": spec.ref,
        },
      },
    ],
  };
  return { layer, config, manifest, index };
}

/** The archive's bytes. */
export function ociArchive(spec: ImageSpec): Buffer {
  const { layer, config, manifest, index } = imageLayout(spec);
  const blobEntry = (b: Blob): TarEntry => ({
    path: `blobs/sha256/${b.digest.slice("sha256:".length)}`,
    data: b.data,
  });
  return tar([
    { path: "oci-layout", data: Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })) },
    { path: "index.json", data: Buffer.from(JSON.stringify(index)) },
    { path: "blobs/" },
    { path: "blobs/sha256/" },
    blobEntry(layer),
    blobEntry(config),
    blobEntry(manifest),
  ]);
}
