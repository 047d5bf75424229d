/**
 * Which cluster the journey runs on, and with which images.
 *
 * - KEYPOOL_E2E_KUBECONFIG set (test/e2e/kind.sh does): that cluster, with the images its
 *   nodes already have or can pull (KEYPOOL_E2E_OPERATOR_IMAGE and friends, defaults below).
 * - Otherwise (`npm run test:e2e`): this machine's single-node cluster (test/support/cluster),
 *   brought up for the run and torn down after it, with images built here (scripts/image).
 */
import { readFile } from "node:fs/promises";
import { localTarget } from "./local-target.ts";

export interface E2EImages {
  operator: string;
  /** The image deploy/base/deployment.yaml names: no `kubectl set image` when operator is this. */
  operatorDefault: string;
  /** Node 24 with a `node` user 1000, as node:24-slim (the fake provider). */
  node: string;
  /** curl and a POSIX shell, as curlimages/curl (examples/client.yaml). */
  curl: string;
  /** redis-server as the entrypoint (deploy/ha/). */
  redis: string;
}

export interface E2ETarget {
  kubeconfig: string;
  /** kubectl's path. */
  kubectl: string;
  images: E2EImages;
  description: string;
  /** Tears down what the target brought up; throws when something of it is left behind. */
  close(): Promise<void>;
}

/** The image deploy/base/deployment.yaml runs. */
export async function deployedImage(): Promise<string> {
  const deployment = await readFile("deploy/base/deployment.yaml", "utf8");
  const image = /^\s*image:\s*(\S+)\s*$/m.exec(deployment)?.[1];
  if (!image) throw new Error("deploy/base/deployment.yaml names no image");
  return image;
}

export async function e2eTarget(log: (line: string) => void): Promise<E2ETarget> {
  const env = process.env;
  const operatorDefault = await deployedImage();
  if (env.KEYPOOL_E2E_KUBECONFIG) {
    return {
      kubeconfig: env.KEYPOOL_E2E_KUBECONFIG,
      kubectl: env.KUBECTL ?? "kubectl",
      images: {
        operator: env.KEYPOOL_E2E_OPERATOR_IMAGE ?? "keypool-operator:e2e",
        operatorDefault,
        node: env.KEYPOOL_E2E_NODE_IMAGE ?? "node:24-slim",
        curl: env.KEYPOOL_E2E_CURL_IMAGE ?? "curlimages/curl:8.11.1",
        redis: env.KEYPOOL_E2E_REDIS_IMAGE ?? "redis:7",
      },
      description: `the cluster of ${env.KEYPOOL_E2E_KUBECONFIG}`,
      close: async () => undefined,
    };
  }
  return localTarget(operatorDefault, log);
}
