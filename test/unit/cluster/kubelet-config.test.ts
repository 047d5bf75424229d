import { describe, expect, it } from "vitest";
import { kubeletConfiguration, kubeletFlags } from "../../support/cluster/kubelet-config.ts";
import { clusterLayout, NAMES, NETWORK } from "../../support/cluster/layout.ts";

const layout = clusterLayout("/run-dir");
const paths = {
  caFile: "/run-dir/pki/ca.crt",
  tlsCertFile: "/run-dir/pki/kubelet-serving.crt",
  tlsKeyFile: "/run-dir/pki/kubelet-serving.key",
  kubeconfig: "/run-dir/kubeconfigs/kubelet.kubeconfig",
  configFile: "/run-dir/config/kubelet.yaml",
};
const config = kubeletConfiguration(layout, paths);

describe("the kubelet's configuration", () => {
  it.each([
    ["there is no systemd: cgroupfs", "cgroupDriver", "cgroupfs"],
    ["it runs on this machine's cgroup v1 and swap", "failCgroupV1", false],
    ["swap does not stop it", "failSwapOn", false],
    ["negative OOM scores are forbidden here", "oomScoreAdj", 0],
    ["pods get cgroups under our own root", "cgroupRoot", `/${NAMES.cgroupRoot}`],
    ["it listens on the node address only", "address", NETWORK.nodeIp],
    ["no unauthenticated read-only port", "readOnlyPort", 0],
    ["pods resolve names through cluster DNS", "clusterDNS", [NETWORK.dnsIp]],
    ["the machine's resolvers are not handed to pods", "resolvConf", ""],
  ])("%s", (_, key, value) => {
    expect((config as Record<string, unknown>)[key]).toEqual(value);
  });

  it("authenticates callers by certificate and asks kube-apiserver to authorize them", () => {
    expect(config.authentication).toEqual({
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: paths.caFile },
    });
    expect(config.authorization).toEqual({ mode: "Webhook" });
  });

  it("writes pod logs, static pods and volume plugins under the run directory", () => {
    for (const key of ["podLogsDir", "staticPodPath", "volumePluginDir"] as const) {
      expect(config[key].startsWith("/run-dir/")).toBe(true);
    }
    expect(config.containerRuntimeEndpoint).toBe("unix:///run-dir/containerd/containerd.sock");
  });

  it("does not evict the test pods from a half-full disk", () => {
    expect(config.evictionHard["nodefs.available"]).toBe("1%");
    expect(config.imageGCHighThresholdPercent).toBe(100);
  });

  it("registers as the node its client certificate names, at the node address", () => {
    const flags = kubeletFlags(layout, paths);
    expect(flags).toContain(`--hostname-override=${NAMES.nodeName}`);
    expect(flags).toContain(`--node-ip=${NETWORK.nodeIp}`);
    expect(flags).toContain("--root-dir=/run-dir/kubelet");
  });
});
