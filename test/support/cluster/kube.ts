/**
 * Talking to the cluster while it starts: kubectl (the harness builds it) as admin, and the
 * readiness checks `up` waits on (the Node's Ready condition, a Deployment's rollout).
 */
import { command, type CommandResult } from "./command.ts";

export interface Kubectl {
  (
    args: readonly string[],
    options?: { input?: string; allowFail?: boolean; timeoutMs?: number },
  ): Promise<CommandResult>;
  /** The command line it runs, for a long-running kubectl (port-forward) spawned by hand. */
  readonly argv: (args: readonly string[]) => [string, string[]];
}

/** kubectl as the holder of `kubeconfig`, its discovery cache in `cacheDir` (not ~/.kube/cache). */
export function kubectlFor(kubectlPath: string, kubeconfig: string, cacheDir: string): Kubectl {
  const argv = (args: readonly string[]): [string, string[]] => [
    kubectlPath,
    [`--kubeconfig=${kubeconfig}`, `--cache-dir=${cacheDir}`, ...args],
  ];
  return Object.assign((args: readonly string[], options = {}) => command(...argv(args), options), { argv });
}

interface NodeStatus {
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/** Whether the Node exists and its Ready condition is True (throws with its message if not). */
export async function nodeReady(kubectl: Kubectl, name: string): Promise<boolean> {
  const r = await kubectl(["get", "node", name, "-o", "json"], { allowFail: true });
  if (r.code !== 0) throw new Error(r.stderr.trim() || `node ${name} not found`);
  const ready = (JSON.parse(r.stdout) as NodeStatus).status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status === "True") return true;
  throw new Error(`node ${name} not Ready: ${ready?.message ?? "no Ready condition yet"}`);
}

/** Applies objects (a kubectl List). */
export async function apply(kubectl: Kubectl, objects: readonly object[]): Promise<void> {
  await kubectl(
    ["apply", "--server-side", "--force-conflicts", "--field-manager=keypool-cluster", "-f", "-"],
    {
      input: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
    },
  );
}
