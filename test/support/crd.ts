/**
 * The KeyPool CRD on the shared control plane. Any test file may call installKeyPoolCrd(); test
 * files run in parallel, so installing is idempotent (server-side apply) and waits until the API
 * server serves the resource and kubectl can resolve it.
 */
import { CRD_PATH } from "../../src/api/crd-yaml.ts";
import { GROUP, PLURAL, VERSION } from "../../src/api/keypool.ts";
import { eventually, kubectl } from "./kube.ts";

export const KEYPOOL_CRD_NAME = `${PLURAL}.${GROUP}`;

/** The arguments CustomObjectsApi needs for KeyPools in `namespace`. */
export function keyPoolRef(namespace: string) {
  return { group: GROUP, version: VERSION, namespace, plural: PLURAL };
}

/** Runs kubectl; true on success, so it fits eventually(). */
async function run(args: string[]): Promise<true> {
  const { code, stderr } = await kubectl(args);
  if (code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${code}): ${stderr.trim()}`);
  return true;
}

/**
 * Installs (or updates) the generated CRD from crds/ and resolves once it is Established and
 * `kubectl get keypools` works.
 */
export async function installKeyPoolCrd(): Promise<void> {
  // Server-side apply with one field manager: safe to repeat, and to race with other test files.
  await eventually(
    () =>
      run(["apply", "--server-side", "--force-conflicts", "--field-manager=keypool-tests", "-f", CRD_PATH]),
    30_000,
    250,
  );
  await run(["wait", "--for=condition=Established", "--timeout=60s", `crd/${KEYPOOL_CRD_NAME}`]);
  // Established comes a moment before discovery shows the resource to clients.
  await eventually(() => run(["get", PLURAL, "--all-namespaces"]), 30_000, 250);
}
