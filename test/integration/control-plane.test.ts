/**
 * Smoke test: the harness runs a real kube-apiserver + etcd, not a mock. Custom resources with a
 * status subresource, watches, ServiceAccount tokens, TokenReview and RBAC all behave as in a
 * cluster.
 */
import {
  ApiException,
  ApiextensionsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubernetesObject,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  Watch,
} from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import {
  adminKubeConfig,
  createTestNamespace,
  eventually,
  kubectl,
  tokenKubeConfig,
} from "../support/kube.ts";

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
let namespace: string;

beforeAll(async () => {
  namespace = await createTestNamespace(kc, "smoke");
});

const GROUP = "smoke.keypool.dev";
const widgetCrd: V1CustomResourceDefinition = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `widgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", properties: { size: { type: "integer", minimum: 1 } } },
              status: { type: "object", properties: { phase: { type: "string" } } },
            },
          },
        },
      },
    ],
  },
};

type Widget = KubernetesObject & { spec?: { size?: number }; status?: { phase?: string } };

describe("the control plane", () => {
  it("reports its version and readiness like a real API server", async () => {
    const { code, stdout } = await kubectl(["version", "-o", "json"]);
    expect(code).toBe(0);
    const version = JSON.parse(stdout) as { serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+/);
  });

  it("serves a CustomResourceDefinition whose status is written only through the status subresource", async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: widgetCrd }).catch((err: unknown) => {
      if (!(err instanceof ApiException && err.code === 409)) throw err;
    });
    await eventually(async () => {
      const crd = await ext.readCustomResourceDefinition({ name: `widgets.${GROUP}` });
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });

    const objects = kc.makeApiClient(CustomObjectsApi);
    const ref = { group: GROUP, version: "v1", namespace, plural: "widgets" };
    await eventually(() =>
      objects.createNamespacedCustomObject({
        ...ref,
        body: { apiVersion: `${GROUP}/v1`, kind: "Widget", metadata: { name: "w1" }, spec: { size: 3 } },
      }),
    );

    // The schema is enforced by the server.
    await expect(
      objects.createNamespacedCustomObject({
        ...ref,
        body: { apiVersion: `${GROUP}/v1`, kind: "Widget", metadata: { name: "bad" }, spec: { size: 0 } },
      }),
    ).rejects.toMatchObject({ code: 422 });

    // A status written through the main resource is dropped...
    await objects.patchNamespacedCustomObject(
      { ...ref, name: "w1", body: { status: { phase: "Ignored" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    // ...and one written through the status subresource sticks, without touching spec.
    await objects.patchNamespacedCustomObjectStatus(
      { ...ref, name: "w1", body: { status: { phase: "Ready" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const widget = (await objects.getNamespacedCustomObject({ ...ref, name: "w1" })) as Widget;
    expect(widget.status).toEqual({ phase: "Ready" });
    expect(widget.spec).toEqual({ size: 3 });
  });

  it("delivers watch events: a new Secret arrives as ADDED", async () => {
    const events: Array<{ type: string; name: string | undefined }> = [];
    const watch = new Watch(kc);
    const controller = await watch.watch(
      `/api/v1/namespaces/${namespace}/secrets`,
      {},
      (type: string, obj: KubernetesObject) => events.push({ type, name: obj.metadata?.name }),
      () => {},
    );
    try {
      await core.createNamespacedSecret({
        namespace,
        body: { metadata: { name: "watched" }, stringData: { key: "value" } },
      });
      await eventually(async () => events.some((e) => e.type === "ADDED" && e.name === "watched"));
    } finally {
      controller.abort();
    }
  });

  it("issues ServiceAccount tokens, authenticates them with TokenReview, and enforces RBAC", async () => {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "reader" } } });
    const { status } = await core.createNamespacedServiceAccountToken({
      namespace,
      name: "reader",
      body: { spec: { audiences: ["keypool"], expirationSeconds: 600 } },
    });
    const token = status?.token ?? "";
    expect(token).not.toBe("");

    const auth = kc.makeApiClient(AuthenticationV1Api);
    const review = await auth.createTokenReview({ body: { spec: { token, audiences: ["keypool"] } } });
    expect(review.status?.authenticated).toBe(true);
    expect(review.status?.user?.username).toBe(`system:serviceaccount:${namespace}:reader`);

    const otherAudience = await auth.createTokenReview({
      body: { spec: { token, audiences: ["someone-else"] } },
    });
    expect(otherAudience.status?.authenticated).toBeFalsy();
    const garbage = await auth.createTokenReview({ body: { spec: { token: "not-a-token" } } });
    expect(garbage.status?.authenticated).toBeFalsy();

    // A token for the API server's own audience, used as the ServiceAccount's credentials.
    const apiToken = (
      await core.createNamespacedServiceAccountToken({ namespace, name: "reader", body: { spec: {} } })
    ).status?.token as string;
    const asReader = tokenKubeConfig(apiToken).makeApiClient(CoreV1Api);
    await expect(asReader.readNamespacedSecret({ namespace, name: "watched" })).rejects.toMatchObject({
      code: 403,
    });

    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "read-watched" },
        rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: ["watched"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "reader-reads-watched" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "read-watched" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace }],
      },
    });
    const secret = await eventually(() => asReader.readNamespacedSecret({ namespace, name: "watched" }));
    expect(secret.metadata?.name).toBe("watched");
    // The grant is exactly that Secret, nothing more.
    await expect(asReader.listNamespacedSecret({ namespace })).rejects.toMatchObject({ code: 403 });
  });
});
