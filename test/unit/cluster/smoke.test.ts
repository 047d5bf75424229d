import { describe, expect, it } from "vitest";
import { smokeObjects } from "../../support/cluster/smoke.ts";

const objects = smokeObjects("cluster-smoke-x", "keypool.local/cluster-probe:1");
type PodSpec = { containers: { imagePullPolicy: string; securityContext: Record<string, unknown> }[] };
const podSpecs = objects.flatMap((o): PodSpec[] => {
  if (o.kind === "Pod") return [(o as { spec: PodSpec }).spec];
  if (o.kind === "Deployment") return [(o as { spec: { template: { spec: PodSpec } } }).spec.template.spec];
  return [];
});

describe("the smoke test's objects", () => {
  it("live in a namespace that enforces PodSecurity restricted", () => {
    expect(objects[0]).toMatchObject({
      kind: "Namespace",
      metadata: { labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
    });
  });

  it("pass it: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    expect(podSpecs).toHaveLength(2);
    for (const spec of podSpecs) {
      for (const c of spec.containers) {
        expect(c.securityContext).toMatchObject({
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
          seccompProfile: { type: "RuntimeDefault" },
        });
      }
    }
  });

  it("use the imported image and never try to pull it", () => {
    for (const spec of podSpecs) for (const c of spec.containers) expect(c.imagePullPolicy).toBe("Never");
  });
});
