import { describe, expect, it } from "vitest";
import { firstServiceIp } from "../../support/control-plane/control-plane.ts";
import { clusterLayout, NETWORK } from "../../support/cluster/layout.ts";

function toInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

function range(cidr: string): [number, number] {
  const [ip = "", bits = "32"] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(toInt(ip) / size) * size;
  return [start, start + size - 1];
}

const within = (inner: string, outer: string) => {
  const [a, b] = range(inner.includes("/") ? inner : `${inner}/32`);
  const [c, d] = range(outer);
  return a >= c && b <= d;
};

const BENCHMARK_RANGE = "198.18.0.0/15";

describe("the cluster's addresses", () => {
  it.each([
    ["pods", NETWORK.clusterCidr],
    ["this node's pods", NETWORK.podCidr],
    ["the node", NETWORK.nodeIp],
    ["Services", NETWORK.serviceCidr],
    ["cluster DNS", NETWORK.dnsIp],
  ])("%s come from 198.18.0.0/15, which no real network uses", (_, cidr) => {
    expect(within(cidr, BENCHMARK_RANGE)).toBe(true);
  });

  it.each([
    ["the node's pod range lies in the cluster's", NETWORK.podCidr, NETWORK.clusterCidr],
    ["the node address is the gateway of its pod range", NETWORK.nodeIp, NETWORK.podCidr],
    ["cluster DNS is a Service address", NETWORK.dnsIp, NETWORK.serviceCidr],
  ])("%s", (_, inner, outer) => {
    expect(within(inner, outer)).toBe(true);
  });

  it("keeps pods and Services apart", () => {
    const [a, b] = range(NETWORK.clusterCidr);
    const [c, d] = range(NETWORK.serviceCidr);
    expect(b < c || d < a).toBe(true);
  });

  it("leaves the kubernetes Service its address (the first), not cluster DNS", () => {
    expect(firstServiceIp(NETWORK.serviceCidr)).not.toBe(NETWORK.dnsIp);
  });
});

describe("the run directory", () => {
  it("holds every path the cluster writes, containerd's socket short enough for a unix socket", () => {
    const layout = clusterLayout("/tmp/keypool-cluster");
    const paths = [
      layout.stateFile,
      layout.kubeconfig,
      layout.controlPlane,
      layout.containerd.root,
      layout.containerd.state,
      layout.containerd.socket,
      layout.containerd.runcRoot,
      layout.cniConfDir,
      layout.cniIpamDir,
      layout.kubeletRoot,
      layout.podLogs,
      layout.volumePlugins,
      layout.kubectlCache,
    ];
    for (const p of paths) expect(p.startsWith("/tmp/keypool-cluster/")).toBe(true);
    // sockaddr_un's sun_path is 108 bytes; the ttrpc socket adds ".ttrpc".
    expect(`${layout.containerd.socket}.ttrpc`.length).toBeLessThan(108);
  });
});
