import { describe, expect, it } from "vitest";
import {
  apiServerClusterFlags,
  controllerManagerFlags,
  kubeProxyConfiguration,
  schedulerFlags,
} from "../../support/cluster/components-config.ts";
import { NETWORK, PORTS } from "../../support/cluster/layout.ts";

const cm = controllerManagerFlags({
  kubeconfig: "/r/cm.kubeconfig",
  caFile: "/r/ca.crt",
  caKeyFile: "/r/ca.key",
  serviceAccountKeyFile: "/r/sa.key",
  flexVolumeDir: "/r/volume-plugins",
});

describe("kube-apiserver in a cluster with a kubelet", () => {
  const flags = apiServerClusterFlags({
    kubeletClientCert: "/r/c.crt",
    kubeletClientKey: "/r/c.key",
    caFile: "/r/ca.crt",
  });

  it("adds NodeRestriction to the default admission plugins, as kubeadm does", () => {
    expect(flags).toContain("--enable-admission-plugins=NodeRestriction");
    expect(flags.some((f) => f.startsWith("--disable-admission-plugins"))).toBe(false);
  });

  it("reaches kubelets with a client certificate and verifies theirs", () => {
    expect(flags).toEqual(
      expect.arrayContaining([
        "--kubelet-client-certificate=/r/c.crt",
        "--kubelet-client-key=/r/c.key",
        "--kubelet-certificate-authority=/r/ca.crt",
      ]),
    );
  });
});

describe("kube-controller-manager", () => {
  it.each([
    ["runs each controller under its own ServiceAccount", "--use-service-account-credentials=true"],
    [
      "signs ServiceAccount tokens with the key kube-apiserver verifies",
      "--service-account-private-key-file=/r/sa.key",
    ],
    ["signs CSRs with the cluster CA", "--cluster-signing-key-file=/r/ca.key"],
    ["listens on loopback only", "--bind-address=127.0.0.1"],
    ["knows the Service range", `--service-cluster-ip-range=${NETWORK.serviceCidr}`],
    ["keeps FlexVolume out of /usr/libexec", "--flex-volume-plugin-dir=/r/volume-plugins"],
  ])("%s", (_, flag) => {
    expect(cm).toContain(flag);
  });
});

describe("kube-scheduler", () => {
  it("listens on loopback at its usual port and does not elect a leader", () => {
    expect(schedulerFlags("/r/s.kubeconfig")).toEqual(
      expect.arrayContaining([
        "--bind-address=127.0.0.1",
        `--secure-port=${PORTS.scheduler}`,
        "--leader-elect=false",
      ]),
    );
  });
});

describe("kube-proxy", () => {
  const config = kubeProxyConfiguration("node", "/r/p.kubeconfig");

  it("runs in iptables mode for the cluster's pod range", () => {
    expect(config).toMatchObject({
      mode: "iptables",
      clusterCIDR: NETWORK.clusterCidr,
      hostnameOverride: "node",
    });
  });

  it("opens NodePorts on the node address only, not on the machine's interfaces or loopback", () => {
    expect(config.nodePortAddresses).toEqual([`${NETWORK.nodeIp}/32`]);
    expect(config.iptables.localhostNodePorts).toBe(false);
  });

  it("leaves the machine's conntrack sysctls alone", () => {
    expect(config.conntrack).toEqual({
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: "0s",
      tcpCloseWaitTimeout: "0s",
    });
  });

  it("serves health and metrics on loopback", () => {
    expect(config.healthzBindAddress).toBe(`127.0.0.1:${PORTS.kubeProxyHealthz}`);
    expect(config.metricsBindAddress).toBe(`127.0.0.1:${PORTS.kubeProxyMetrics}`);
  });
});
