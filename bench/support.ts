/** Helpers shared by the benchmarks. */
import { execFile } from "node:child_process";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { GROUP, PLURAL } from "../src/api/keypool.ts";
import { ensureBinaries } from "../test/support/control-plane/build.ts";
import { ControlPlane } from "../test/support/control-plane/control-plane.ts";

/** Runs the harness's kubectl against `plane` as admin; throws with stderr on failure. */
export function kubectlAt(plane: ControlPlane, args: string[]): Promise<string> {
  const kubectl = plane.kubectl;
  if (!kubectl) throw new Error("no kubectl next to the control-plane binaries");
  return new Promise((resolve, reject) => {
    execFile(kubectl, ["--kubeconfig", plane.kubeconfigPath, ...args], (err, stdout, stderr) =>
      err ? reject(new Error(`kubectl ${args.join(" ")}: ${stderr}`)) : resolve(stdout),
    );
  });
}

/**
 * A control plane for a benchmark: started (binaries built if needed), the KeyPool CRD
 * installed, and `namespace` created. Stop it with `plane.stop()`.
 */
export async function benchControlPlane(namespace: string, log: (line: string) => void) {
  const plane = await ControlPlane.start({ binaries: await ensureBinaries({ log }) });
  log(`control plane ${plane.version.gitVersion} at ${plane.server}`);
  await kubectlAt(plane, ["apply", "--server-side", "-f", "crds/keypool.dev_keypools.yaml"]);
  await kubectlAt(plane, ["wait", "--for=condition=Established", `crd/${PLURAL}.${GROUP}`]);
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  return { plane, kc, core };
}
