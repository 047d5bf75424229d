/** Helpers shared by the benchmarks. */
import { execFile } from "node:child_process";
import type { ControlPlane } from "../test/support/control-plane/control-plane.ts";

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
