import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { onlyStatusChanged } from "../../../src/controller/predicates.ts";

const pool = (over: Record<string, unknown> = {}, status: unknown = { keys: { usable: 2 } }) =>
  ({
    apiVersion: "keypool.dev/v1alpha1",
    kind: "KeyPool",
    metadata: {
      name: "pool",
      namespace: "team-a",
      generation: 3,
      resourceVersion: "100",
      annotations: { note: "x" },
      labels: { team: "a" },
      ...over,
    },
    spec: { provider: "openai" },
    status,
  }) as KubernetesObject;

describe("onlyStatusChanged", () => {
  it("is true for the operator's own status writes (new resourceVersion and status, same generation)", () => {
    expect(
      onlyStatusChanged(
        pool(),
        pool({ resourceVersion: "101", managedFields: [{ manager: "keypool" }] }, { keys: { usable: 1 } }),
      ),
    ).toBe(true);
  });

  it("is false for what the reconciler acts on: spec (generation), annotations, labels, deletion, finalizers, owners", () => {
    const changed = [
      { generation: 4 },
      { annotations: { note: "x", "keypool.dev/probe-requested-at": "2026-11-23T00:00:00Z" } },
      { annotations: undefined },
      { labels: { team: "b" } },
      { deletionTimestamp: new Date("2026-11-23T00:00:00Z") },
      { finalizers: ["keypool.dev/cleanup"] },
      { ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: "u" }] },
    ];
    for (const over of changed)
      expect(onlyStatusChanged(pool(), pool(over)), JSON.stringify(over)).toBe(false);
  });

  it("is false when it cannot tell: no metadata or no generation", () => {
    expect(onlyStatusChanged({ apiVersion: "v1", kind: "X" }, pool())).toBe(false);
    expect(onlyStatusChanged(pool({ generation: undefined }), pool({ generation: undefined }))).toBe(false);
  });
});
