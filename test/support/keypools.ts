/**
 * KeyPool and Secret helpers for integration tests: create, change and read them through the
 * real API server, and wait for a status to show something.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from "@kubernetes/client-node";
import { API_VERSION, KIND } from "../../src/api/keypool.ts";
import type { KeyPoolStatus } from "../../src/api/status.ts";
import { SECRET_LABEL } from "../../src/sources/kubernetes/secrets.ts";
import { keyPoolRef } from "./crd.ts";
import { eventually } from "./kube.ts";

export interface KeyPoolObject {
  metadata: { name: string; namespace: string; generation?: number; uid?: string };
  spec: Record<string, unknown>;
  status?: KeyPoolStatus;
}

export function poolApi(kc: KubeConfig) {
  const objects = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    async createPool(namespace: string, name: string, spec: Record<string, unknown>): Promise<KeyPoolObject> {
      return (await objects.createNamespacedCustomObject({
        ...keyPoolRef(namespace),
        body: { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec },
      })) as KeyPoolObject;
    },
    async patchPoolSpec(
      namespace: string,
      name: string,
      spec: Record<string, unknown>,
    ): Promise<KeyPoolObject> {
      return (await objects.patchNamespacedCustomObject(
        { ...keyPoolRef(namespace), name, body: { spec } },
        mergePatch,
      )) as KeyPoolObject;
    },
    async patchPoolStatus(namespace: string, name: string, status: KeyPoolStatus): Promise<void> {
      await objects.patchNamespacedCustomObjectStatus(
        { ...keyPoolRef(namespace), name, body: { status } },
        mergePatch,
      );
    },
    async readPool(namespace: string, name: string): Promise<KeyPoolObject> {
      return (await objects.getNamespacedCustomObject({ ...keyPoolRef(namespace), name })) as KeyPoolObject;
    },
    /** Polls the pool until `check` returns something truthy; returns that. */
    async waitForPool<T>(
      namespace: string,
      name: string,
      check: (pool: KeyPoolObject) => T | undefined | false,
      timeoutMs = 20_000,
    ): Promise<T> {
      let last: KeyPoolObject | undefined;
      try {
        return await eventually(
          async () => {
            last = (await objects.getNamespacedCustomObject({
              ...keyPoolRef(namespace),
              name,
            })) as KeyPoolObject;
            return check(last);
          },
          timeoutMs,
          50,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last?.status)}`, {
          cause: err,
        });
      }
    },
    async putSecret(
      namespace: string,
      name: string,
      data: Record<string, string>,
      labelled = true,
    ): Promise<V1Secret> {
      const body: V1Secret = {
        metadata: { name, ...(labelled ? { labels: { [SECRET_LABEL]: "true" } } : {}) },
        stringData: data,
      };
      try {
        return await core.createNamespacedSecret({ namespace, body });
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
        return core.replaceNamespacedSecret({ namespace, name, body: { ...body, data: {} } });
      }
    },
    async deleteSecret(namespace: string, name: string): Promise<void> {
      await core.deleteNamespacedSecret({ namespace, name });
    },
    async events(namespace: string) {
      return (await core.listNamespacedEvent({ namespace })).items;
    },
  };
}

export function condition(pool: KeyPoolObject, type: string) {
  return pool.status?.conditions?.find((c) => c.type === type);
}
