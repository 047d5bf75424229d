/**
 * Vitest globalSetup for the integration project: one real control plane per test run.
 * Tests read its admin kubeconfig with `inject("kubeconfig")`.
 */
import type { TestProject } from "vitest/node";
import { ensureBinaries } from "./control-plane/build.ts";
import { ControlPlane } from "./control-plane/control-plane.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Path of an admin kubeconfig (O=system:masters) for the shared control plane. */
    kubeconfig: string;
    /** Path of a kubectl of the same release, or "" when KUBEBUILDER_ASSETS has none. */
    kubectl: string;
    /** https://127.0.0.1:<port> */
    apiServer: string;
    /** The control plane's CA (certificate and key, PEM): tests sign client certificates with it. */
    clientCa: { cert: string; key: string };
  }
}

const log = (line: string) => process.stderr.write(`[control-plane] ${line}\n`);

export default async function setup(project: TestProject) {
  log(`node ${process.version}`);
  const binaries = await ensureBinaries({ log });
  log(`binaries from ${binaries.origin}: ${binaries.dir}`);
  const started = Date.now();
  const plane = await ControlPlane.start({ binaries, log });
  log(`kube-apiserver ${plane.version.gitVersion} ready at ${plane.server} in ${Date.now() - started} ms`);
  project.provide("kubeconfig", plane.kubeconfigPath);
  project.provide("kubectl", plane.kubectl ?? "");
  project.provide("apiServer", plane.server);
  project.provide("clientCa", plane.certs.ca);
  return async () => {
    await plane.stop();
  };
}
