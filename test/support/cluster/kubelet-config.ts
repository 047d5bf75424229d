/**
 * The kubelet's KubeletConfiguration and flags. Everything it writes goes under the run
 * directory (root dir, pod logs, volume plugins, static pods); it listens on the node address
 * only; it authenticates callers (kube-apiserver for logs/exec) by client certificate and asks
 * kube-apiserver to authorize them; and it is set for this sandbox:
 *
 * - cgroupDriver cgroupfs under our own cgroup root: there is no systemd here.
 * - failSwapOn/failCgroupV1 false: cgroup v1 (hybrid) is what the machine has; it warns and runs.
 * - oomScoreAdj 0: negative values are forbidden here.
 * - eviction and image GC thresholds near zero: a half-full disk must not evict the test pods.
 * - resolvConf "": pods with dnsPolicy Default get no nameserver of the machine's, so DNS
 *   traffic stays inside the cluster.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { type ClusterLayout, NAMES, NETWORK, PORTS } from "./layout.ts";

export interface KubeletPaths {
  caFile: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  kubeconfig: string;
  configFile: string;
}

export function kubeletConfiguration(layout: ClusterLayout, paths: KubeletPaths) {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: NETWORK.nodeIp,
    port: PORTS.kubelet,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: PORTS.kubeletHealthz,
    tlsCertFile: paths.tlsCertFile,
    tlsPrivateKeyFile: paths.tlsKeyFile,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: paths.caFile },
    },
    authorization: { mode: "Webhook" },
    containerRuntimeEndpoint: `unix://${layout.containerd.socket}`,
    staticPodPath: layout.staticPods,
    podLogsDir: layout.podLogs,
    volumePluginDir: layout.volumePlugins,
    cgroupDriver: "cgroupfs",
    cgroupRoot: `/${NAMES.cgroupRoot}`,
    cgroupsPerQOS: true,
    failSwapOn: false,
    failCgroupV1: false,
    oomScoreAdj: 0,
    clusterDomain: NETWORK.clusterDomain,
    clusterDNS: [NETWORK.dnsIp],
    resolvConf: "",
    hairpinMode: "hairpin-veth",
    maxPods: 110,
    evictionHard: {
      "memory.available": "50Mi",
      "nodefs.available": "1%",
      "nodefs.inodesFree": "1%",
      "imagefs.available": "1%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // A static pod's file change shows up within seconds, not a minute.
    fileCheckFrequency: "5s",
    syncFrequency: "10s",
    nodeStatusUpdateFrequency: "5s",
    shutdownGracePeriod: "0s",
    logging: { format: "text" },
  };
}

export function kubeletConfigYaml(layout: ClusterLayout, paths: KubeletPaths): string {
  return stringify(kubeletConfiguration(layout, paths));
}

/** Command-line flags (what KubeletConfiguration cannot hold). */
export function kubeletFlags(layout: ClusterLayout, paths: KubeletPaths): string[] {
  return [
    `--config=${paths.configFile}`,
    `--kubeconfig=${paths.kubeconfig}`,
    `--root-dir=${layout.kubeletRoot}`,
    `--cert-dir=${join(layout.kubeletRoot, "pki")}`,
    `--hostname-override=${NAMES.nodeName}`,
    `--node-ip=${NETWORK.nodeIp}`,
    "--v=1",
  ];
}
