import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { imageLayout, ociArchive } from "../../support/cluster/oci-image.ts";
import { tar, untar } from "../../support/cluster/tar.ts";

const binary = Buffer.from("#!fake static binary\n");
const spec = {
  ref: "keypool.local/pause:3.10.1",
  files: [
    { path: "tmp/", mode: 0o1777 },
    { path: "pause", data: binary, mode: 0o755 },
  ],
  entrypoint: ["/pause"],
};
const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("the tar writer", () => {
  it("round-trips files and directories with their modes", () => {
    const entries = untar(tar(spec.files));
    expect(entries.map((e) => [e.path, e.mode])).toEqual([
      ["tmp/", 0o1777],
      ["pause", 0o755],
    ]);
    expect(Buffer.from(entries[1]?.data ?? []).equals(binary)).toBe(true);
  });

  it("pads to 512-byte blocks and ends with two empty ones", () => {
    const archive = tar([{ path: "a", data: Buffer.from("x") }]);
    expect(archive.length).toBe(512 * 4);
    expect(archive.subarray(1024).every((b) => b === 0)).toBe(true);
  });

  it("splits a path longer than 100 bytes into ustar's prefix and name", () => {
    const path = `${"d".repeat(120)}/file`;
    expect(untar(tar([{ path, data: Buffer.from("y") }]))[0]?.path).toBe(path);
  });

  it("is byte for byte reproducible (mtime 0, root owner)", () => {
    expect(tar(spec.files).equals(tar(spec.files))).toBe(true);
  });
});

describe("an OCI image archive", () => {
  const entries = untar(ociArchive(spec));
  const file = (path: string) => entries.find((e) => e.path === path)?.data ?? new Uint8Array();
  const json = (path: string) => JSON.parse(Buffer.from(file(path)).toString("utf8"));

  it("is an OCI image layout: oci-layout, index.json and content-addressed blobs", () => {
    expect(json("oci-layout")).toEqual({ imageLayoutVersion: "1.0.0" });
    for (const e of entries.filter((x) => x.path.startsWith("blobs/sha256/") && x.data)) {
      expect(sha256(e.data ?? new Uint8Array())).toBe(`sha256:${e.path.slice("blobs/sha256/".length)}`);
    }
  });

  it("names the image the way ctr import reads it", () => {
    const [manifest] = json("index.json").manifests;
    expect(manifest.annotations["io.containerd.image.name"]).toBe("keypool.local/pause:3.10.1");
    expect(manifest.platform).toEqual({ architecture: "amd64", os: "linux" });
  });

  it("holds one uncompressed layer whose digest is the config's diff id, and the entrypoint", () => {
    const { layer, config, manifest } = imageLayout(spec);
    const parsedConfig = JSON.parse(config.data.toString("utf8"));
    expect(parsedConfig.rootfs.diff_ids).toEqual([layer.digest]);
    expect(parsedConfig.config.Entrypoint).toEqual(["/pause"]);
    const parsedManifest = JSON.parse(manifest.data.toString("utf8"));
    expect(parsedManifest.layers).toEqual([
      { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer.digest, size: layer.size },
    ]);
  });

  it("has the same digest every time it is built from the same files", () => {
    expect(imageLayout(spec).manifest.digest).toBe(imageLayout(spec).manifest.digest);
  });
});
