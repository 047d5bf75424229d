/**
 * Images get into the cluster by import, not pull (there is no registry): `ctr images import`
 * into the containerd namespace the CRI plugin serves (k8s.io), unpacked for its snapshotter.
 * Any archive `ctr` reads works: OCI layout (ours, `podman save --format oci-archive`) or
 * docker-archive (`podman save`, `docker save`). Pods then use the image with
 * imagePullPolicy IfNotPresent or Never (and a tag other than :latest).
 */
import { command } from "./command.ts";
import { type ClusterLayout, NAMES } from "./layout.ts";

/** Imports an image archive; returns the references it held. */
export async function importImage(layout: ClusterLayout, archive: string): Promise<string[]> {
  const r = await command(
    "ctr",
    ["--address", layout.containerd.socket, "-n", NAMES.containerdNamespace, "images", "import", archive],
    { timeoutMs: 600_000 },
  );
  return [...`${r.stdout}\n${r.stderr}`.matchAll(/unpacking (\S+) \(sha256:/g)].map((m) => m[1] as string);
}

/** The references of the images containerd holds for the cluster. */
export async function listImages(layout: ClusterLayout): Promise<string[]> {
  const r = await command("ctr", [
    "--address",
    layout.containerd.socket,
    "-n",
    NAMES.containerdNamespace,
    "images",
    "list",
    "-q",
  ]);
  return r.stdout.split("\n").filter((l) => l.trim() !== "");
}
