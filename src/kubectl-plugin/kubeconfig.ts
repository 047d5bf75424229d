/**
 * The kubeconfig the way kubectl finds it: --kubeconfig, else every file in $KUBECONFIG (merged:
 * the first file to name a cluster, user or context wins, and the first current-context), else
 * ~/.kube/config, else the in-cluster ServiceAccount; then --context. The namespace is
 * --namespace, else the context's, else "default".
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { PluginError } from "./errors.ts";

type Env = Readonly<Record<string, string | undefined>>;

export interface ConnectionFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface Connection {
  kc: KubeConfig;
  /** The namespace commands act in (--namespace, the context's, "default"). */
  namespace: string;
  context: string;
  /** The kubeconfig's name of the user (what a 403 names when the API server does not). */
  user: string | undefined;
  server: string;
}

/** The kubeconfig files kubectl would read, in order (none: in-cluster, or nothing). */
export function kubeconfigFiles(flags: ConnectionFlags, env: Env, home = homedir()): string[] {
  if (flags.kubeconfig) return [flags.kubeconfig];
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter((file) => file && existsSync(file));
  const fallback = join(env.HOME || home, ".kube", "config");
  return existsSync(fallback) ? [fallback] : [];
}

/** Several kubeconfigs as one, by kubectl's rule: the first to set a name (or the current context) wins. */
function merge(configs: KubeConfig[]): KubeConfig {
  const [first, ...rest] = configs;
  if (!first) return new KubeConfig();
  if (!rest.length) return first;
  const firstByName = <T extends { name: string }>(lists: T[][]) => {
    const seen = new Map<string, T>();
    for (const item of lists.flat()) if (!seen.has(item.name)) seen.set(item.name, item);
    return [...seen.values()];
  };
  const merged = new KubeConfig();
  merged.loadFromOptions({
    clusters: firstByName(configs.map((c) => c.getClusters())),
    users: firstByName(configs.map((c) => c.getUsers())),
    contexts: firstByName(configs.map((c) => c.getContexts())),
    currentContext: configs.map((c) => c.getCurrentContext()).find(Boolean) ?? "",
  });
  return merged;
}

/** Loads the kubeconfig and picks the context and namespace, or throws a PluginError saying why not. */
export function connect(flags: ConnectionFlags, env: Env): Connection {
  const files = kubeconfigFiles(flags, env);
  let kc: KubeConfig;
  if (files.length) {
    kc = merge(
      files.map((file) => {
        const one = new KubeConfig();
        try {
          one.loadFromFile(file);
        } catch (err) {
          throw new PluginError("usage", `cannot read kubeconfig ${file}: ${(err as Error).message}`);
        }
        return one;
      }),
    );
  } else if (env.KUBERNETES_SERVICE_HOST) {
    kc = new KubeConfig();
    kc.loadFromCluster();
  } else {
    throw new PluginError(
      "usage",
      "no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config",
    );
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context))
      throw new PluginError("usage", `context "${flags.context}" is not in the kubeconfig`);
    kc.setCurrentContext(flags.context);
  }
  const context = kc.getContextObject(kc.getCurrentContext());
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new PluginError(
      "usage",
      kc.getCurrentContext()
        ? `the kubeconfig's context "${kc.getCurrentContext()}" names no known cluster`
        : "the kubeconfig has no current context: pass --context",
    );
  }
  return {
    kc,
    namespace: flags.namespace || context?.namespace || "default",
    context: kc.getCurrentContext(),
    user: kc.getCurrentUser()?.name,
    server: cluster.server,
  };
}
