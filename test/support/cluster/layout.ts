/**
 * The fixed facts of the single-node cluster: its address ranges, names and ports, and where
 * everything lives in its run directory. Every other module takes a `ClusterLayout` instead of
 * inventing a path or an address, so teardown and leftovers() look exactly where up put things.
 *
 * Addresses come from 198.18.0.0/15 only (RFC 2544, benchmarking: no real network uses it):
 * pods 198.18.0.0/16 (this node's 198.18.0.0/24), Services 198.19.0.0/16. The node's own
 * address is the pod bridge's gateway, 198.18.0.1: kube-apiserver and the kubelet listen there,
 * so pods reach them without anything listening on the machine's real interfaces.
 */
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Env } from "../control-plane/binaries.ts";

export const NETWORK = {
  /** All pods of the cluster (kube-proxy's --cluster-cidr). */
  clusterCidr: "198.18.0.0/16",
  /** This node's pods (CNI host-local range). */
  podCidr: "198.18.0.0/24",
  /** The bridge's address: the pods' gateway and the node's InternalIP. */
  nodeIp: "198.18.0.1",
  /** --service-cluster-ip-range. Its first address is the `kubernetes` Service. */
  serviceCidr: "198.19.0.0/16",
  /** The kube-dns Service (CoreDNS). */
  dnsIp: "198.19.0.10",
  clusterDomain: "cluster.local",
} as const;

export const NAMES = {
  nodeName: "keypool-node",
  /** The Linux bridge the CNI bridge plugin attaches pods to (ours alone: not cni0/podman's). */
  bridge: "kpbr0",
  /** The CNI network name: host-local's state, libcni's cache files and iptables comments carry it. */
  cniNetwork: "keypool",
  /** The kubelet's --cgroup-root, created in every cgroup v1 hierarchy (and the unified one). */
  cgroupRoot: "keypool-cluster",
  /** containerd's namespace for the CRI plugin (where `ctr -n` must import images). */
  containerdNamespace: "k8s.io",
} as const;

/** Fixed ports (one cluster per machine); the API server's is chosen free at start. */
export const PORTS = {
  kubelet: 10250,
  kubeletHealthz: 10248,
  kubeProxyMetrics: 10249,
  kubeProxyHealthz: 10256,
  controllerManager: 10257,
  scheduler: 10259,
} as const;

/** Image references of the images the build writes (see images.ts, build.ts). */
export function imageRefs(versions: { pause: string; coredns: string }) {
  return {
    pause: `keypool.local/pause:${versions.pause}`,
    coredns: `keypool.local/coredns:${versions.coredns}`,
    probe: "keypool.local/cluster-probe:1",
  } as const;
}

export interface ClusterLayout {
  /** The run directory: everything the cluster writes, except what the kernel keeps elsewhere. */
  dir: string;
  stateFile: string;
  daemonLog: string;
  /** The admin kubeconfig up writes. */
  kubeconfig: string;
  /** ControlPlane's kept directory (etcd data, its certificates and logs). */
  controlPlane: string;
  pki: string;
  kubeconfigs: string;
  logs: string;
  pids: string;
  configs: string;
  containerd: {
    root: string;
    state: string;
    socket: string;
    runcRoot: string;
    opt: string;
  };
  cniConfDir: string;
  cniIpamDir: string;
  kubeletRoot: string;
  staticPods: string;
  podLogs: string;
  volumePlugins: string;
  /** kubectl's discovery cache for our own kubectl calls. */
  kubectlCache: string;
}

/** The run directory: `--dir`, else $KEYPOOL_CLUSTER_DIR, else <tmp>/keypool-cluster. */
export function runDir(env: Env = process.env, override?: string): string {
  return resolve(override ?? env.KEYPOOL_CLUSTER_DIR ?? join(tmpdir(), "keypool-cluster"));
}

export function clusterLayout(dir: string): ClusterLayout {
  const at = (...parts: string[]) => join(dir, ...parts);
  return {
    dir,
    stateFile: at("state.json"),
    daemonLog: at("logs", "daemon.log"),
    kubeconfig: at("admin.kubeconfig"),
    controlPlane: at("control-plane"),
    pki: at("pki"),
    kubeconfigs: at("kubeconfigs"),
    logs: at("logs"),
    pids: at("pids"),
    configs: at("config"),
    containerd: {
      root: at("containerd", "root"),
      state: at("containerd", "state"),
      socket: at("containerd", "containerd.sock"),
      runcRoot: at("containerd", "runc"),
      opt: at("containerd", "opt"),
    },
    cniConfDir: at("cni", "net.d"),
    cniIpamDir: at("cni", "ipam"),
    kubeletRoot: at("kubelet"),
    staticPods: at("manifests"),
    podLogs: at("pod-logs"),
    volumePlugins: at("volume-plugins"),
    kubectlCache: at("kubectl-cache"),
  };
}
