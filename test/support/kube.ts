/**
 * Helpers for integration tests against the shared control plane (see global-setup.ts).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { inject } from "vitest";

/** A KubeConfig for the shared control plane's admin (O=system:masters). */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject("kubeconfig"));
  return kc;
}

/** A KubeConfig for the same API server that authenticates with a bearer token. */
export function tokenKubeConfig(token: string): KubeConfig {
  const kc = adminKubeConfig();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("admin kubeconfig has no cluster");
  const user = { name: "token-user", token };
  const context = { name: "token", cluster: cluster.name, user: user.name };
  const scoped = new KubeConfig();
  scoped.loadFromOptions({
    clusters: [cluster],
    users: [user],
    contexts: [context],
    currentContext: context.name,
  });
  return scoped;
}

/** Creates a namespace with a unique name so test files never see each other's objects. */
export async function createTestNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await kc
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name, labels: { "keypool.dev/test": prefix } } } });
  return name;
}

/** Runs the harness's kubectl against the shared control plane (admin unless a kubeconfig is given). */
export function kubectl(
  args: string[],
  options: { kubeconfig?: string; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const binary = inject("kubectl");
  if (!binary) throw new Error("no kubectl: KUBEBUILDER_ASSETS has none and the harness did not build one");
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      ["--kubeconfig", options.kubeconfig ?? inject("kubeconfig"), ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export { eventually } from "./eventually.ts";
