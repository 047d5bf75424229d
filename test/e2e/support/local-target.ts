/**
 * This machine's single-node cluster as the journey's target: the images built here with
 * `npm run image` (the unchanged Dockerfile on local bases, and the redis, curl and node images
 * the journey runs), the cluster brought up with test/support/cluster and the images imported
 * into its containerd. close() tears the cluster down and fails when anything of it is left on
 * the machine (processes, mounts, interfaces, iptables chains).
 */
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { down, loadImage, up } from "../../support/cluster/cluster.ts";
import { formatLeftovers } from "../../support/cluster/leftovers.ts";
import { findBinaries } from "../../support/control-plane/binaries.ts";
import type { E2ETarget } from "./target.ts";

const OPERATOR_IMAGE = "keypool-operator:e2e";
const IMAGES = {
  node: "docker.io/library/node:24-slim",
  curl: "docker.io/curlimages/curl:8.11.1",
  redis: "localhost/keypool-e2e/redis:7",
};

/** `npm run image -- <args>`, its output line by line to `log`. */
function image(args: string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["scripts/image/main.ts", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tail = "";
    const take = (d: Buffer) => {
      const text = d.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split("\n")) if (line.trim()) log(`image: ${line}`);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`npm run image -- ${args.join(" ")} exited with ${code}:\n${tail}`)),
    );
  });
}

export async function localTarget(operatorDefault: string, log: (line: string) => void): Promise<E2ETarget> {
  const dir = process.env.KEYPOOL_CLUSTER_DIR ?? join(tmpdir(), "keypool-e2e-cluster");
  const archive = `${dir}-images.tar`;
  const started = performance.now();
  await image(["build", "--tag", OPERATOR_IMAGE], log);
  await image(["build-extras"], log);
  await image(["save", OPERATOR_IMAGE, IMAGES.node, IMAGES.curl, IMAGES.redis, archive], log);
  log(`images ready after ${((performance.now() - started) / 1000).toFixed(0)} s`);
  // What an interrupted earlier run left, if anything, goes first.
  await down({ dir });
  const cluster = await up({ dir, log: (line) => log(`cluster: ${line}`) });
  try {
    const loaded = await loadImage(dir, archive);
    log(`imported into the cluster's containerd: ${loaded.join(", ")}`);
  } finally {
    await rm(archive, { force: true });
  }
  log(`cluster ready after ${((performance.now() - started) / 1000).toFixed(0)} s: ${cluster.apiServer}`);
  const binaries = await findBinaries();
  if (!binaries?.kubectl)
    throw new Error("kubectl is not in the control-plane cache (npm run cluster -- build)");
  return {
    kubeconfig: cluster.kubeconfig,
    kubectl: binaries.kubectl,
    images: { operator: OPERATOR_IMAGE, operatorDefault, ...IMAGES },
    description: `this machine's single-node cluster in ${dir} (${cluster.apiServer})`,
    async close() {
      const left = await down({ dir, log: (line) => log(`cluster: ${line}`) });
      if (left.length > 0)
        throw new Error(`left on the machine after npm run cluster -- down:\n${formatLeftovers(left)}`);
      log("cluster down; nothing of it left on the machine");
    },
  };
}
