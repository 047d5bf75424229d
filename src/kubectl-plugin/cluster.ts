/**
 * The few API calls the plugin makes, with the user's own credentials: read KeyPools (the object
 * carries its status, and reading it needs only `get`, which keypool-view grants: the status
 * subresource would need `get keypools/status` too), merge-patch one, read the Secrets a pool
 * references. Every failure comes back as a PluginError that says what to do (errors.ts).
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../api/keypool.ts";
import type { KeyPoolSpecInput } from "../api/keypool.ts";
import type { KeyPoolStatus } from "../api/status.ts";
import { type Attempt, explainApiError } from "./errors.ts";
import type { Connection } from "./kubeconfig.ts";

/** A KeyPool as the API server returns it (spec as stored, status as the operator wrote it). */
export interface KeyPoolObject {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
  spec: Partial<KeyPoolSpecInput>;
  status?: KeyPoolStatus;
}

/** What the commands need from the cluster; tests hand in a fake. */
export interface Cluster {
  getPool(namespace: string, name: string): Promise<KeyPoolObject>;
  /** Every KeyPool in `namespace`, or in every namespace when it is undefined. */
  listPools(namespace: string | undefined): Promise<KeyPoolObject[]>;
  /** A JSON merge patch (metadata.resourceVersion in it makes it conditional). */
  patchPool(namespace: string, name: string, patch: object): Promise<KeyPoolObject>;
  /** undefined when the Secret does not exist. */
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  listSecrets(namespace: string, labelSelector: string): Promise<V1Secret[]>;
}

export function kubeCluster(connection: Connection): Cluster {
  const objects = connection.kc.makeApiClient(CustomObjectsApi);
  const core = connection.kc.makeApiClient(CoreV1Api);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  const api = { group: GROUP, version: VERSION, plural: PLURAL };
  const call = async <T>(attempt: Omit<Attempt, "kubeconfigUser" | "server">, run: () => Promise<T>) => {
    try {
      return await run();
    } catch (err) {
      throw explainApiError(err, { ...attempt, kubeconfigUser: connection.user, server: connection.server });
    }
  };
  return {
    getPool: (namespace, name) =>
      call(
        { verb: "get", resource: "keypools", namespace, name },
        async () => (await objects.getNamespacedCustomObject({ ...api, namespace, name })) as KeyPoolObject,
      ),
    listPools: (namespace) =>
      call({ verb: "list", resource: "keypools", namespace }, async () => {
        const list = (
          namespace === undefined
            ? await objects.listClusterCustomObject(api)
            : await objects.listNamespacedCustomObject({ ...api, namespace })
        ) as { items?: KeyPoolObject[] };
        return list.items ?? [];
      }),
    patchPool: (namespace, name, patch) =>
      call(
        { verb: "patch", resource: "keypools", namespace, name },
        async () =>
          (await objects.patchNamespacedCustomObject(
            { ...api, namespace, name, body: patch },
            mergePatch,
          )) as KeyPoolObject,
      ),
    getSecret: (namespace, name) =>
      call({ verb: "get", resource: "secrets", namespace, name }, async () => {
        try {
          return await core.readNamespacedSecret({ namespace, name });
        } catch (err) {
          if ((err as { code?: number }).code === 404) return undefined;
          throw err;
        }
      }),
    listSecrets: (namespace, labelSelector) =>
      call(
        { verb: "list", resource: "secrets", namespace },
        async () => (await core.listNamespacedSecret({ namespace, labelSelector })).items,
      ),
  };
}
