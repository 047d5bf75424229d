/**
 * Flags and configuration files of the control-plane components around the harness's
 * kube-apiserver: the API server's extra flags for a cluster with a kubelet, and
 * kube-controller-manager, kube-scheduler and kube-proxy (iptables mode). All of them listen on
 * loopback or the node address only.
 */
import { stringify } from "yaml";
import { NETWORK, PORTS } from "./layout.ts";

export interface ApiServerKubeletPaths {
  /** Client certificate kube-apiserver presents to kubelets (logs, exec, port-forward). */
  kubeletClientCert: string;
  kubeletClientKey: string;
  /** The CA that signed the kubelet's serving certificate. */
  caFile: string;
}

/** Admission plugins a real cluster (kubeadm) enables on top of the defaults. */
export const EXTRA_ADMISSION_PLUGINS = ["NodeRestriction"] as const;

/**
 * What kube-apiserver needs beyond the harness's flags. Its defaults already include
 * NamespaceLifecycle, LimitRanger, ServiceAccount, PodSecurity, Priority, ResourceQuota,
 * DefaultTolerationSeconds, the webhooks and the rest; NodeRestriction is the one kubeadm adds.
 */
export function apiServerClusterFlags(paths: ApiServerKubeletPaths): string[] {
  return [
    `--enable-admission-plugins=${EXTRA_ADMISSION_PLUGINS.join(",")}`,
    `--kubelet-client-certificate=${paths.kubeletClientCert}`,
    `--kubelet-client-key=${paths.kubeletClientKey}`,
    `--kubelet-certificate-authority=${paths.caFile}`,
    "--kubelet-preferred-address-types=InternalIP",
    "--endpoint-reconciler-type=lease",
  ];
}

export interface ControllerManagerPaths {
  kubeconfig: string;
  caFile: string;
  caKeyFile: string;
  serviceAccountKeyFile: string;
  /** Where it looks for FlexVolume drivers (default /usr/libexec/kubernetes/...: created if missing). */
  flexVolumeDir: string;
}

export function controllerManagerFlags(paths: ControllerManagerPaths): string[] {
  return [
    `--kubeconfig=${paths.kubeconfig}`,
    `--authentication-kubeconfig=${paths.kubeconfig}`,
    `--authorization-kubeconfig=${paths.kubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${PORTS.controllerManager}`,
    "--leader-elect=false",
    "--cluster-name=keypool",
    // Each controller runs under its own ServiceAccount, as in kubeadm clusters.
    "--use-service-account-credentials=true",
    // The token controller signs with the key kube-apiserver verifies with; pods get the CA.
    `--service-account-private-key-file=${paths.serviceAccountKeyFile}`,
    `--root-ca-file=${paths.caFile}`,
    // CSR signing (kubelet serving certificates, anyone's client certificates) by the cluster CA.
    `--cluster-signing-cert-file=${paths.caFile}`,
    `--cluster-signing-key-file=${paths.caKeyFile}`,
    `--service-cluster-ip-range=${NETWORK.serviceCidr}`,
    `--cluster-cidr=${NETWORK.clusterCidr}`,
    "--allocate-node-cidrs=false",
    `--flex-volume-plugin-dir=${paths.flexVolumeDir}`,
    "--controllers=*,bootstrapsigner,tokencleaner",
    "--v=1",
  ];
}

export function schedulerFlags(kubeconfig: string): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${PORTS.scheduler}`,
    "--leader-elect=false",
    "--v=1",
  ];
}

/**
 * kube-proxy in iptables mode. Conntrack settings 0 leave the machine's sysctls alone (the
 * sandbox refuses some); NodePorts answer on the node address only, not on the machine's
 * interfaces or loopback (so no route_localnet).
 */
export function kubeProxyConfiguration(nodeName: string, kubeconfig: string) {
  return {
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "iptables",
    clusterCIDR: NETWORK.clusterCidr,
    hostnameOverride: nodeName,
    clientConnection: { kubeconfig },
    healthzBindAddress: `127.0.0.1:${PORTS.kubeProxyHealthz}`,
    metricsBindAddress: `127.0.0.1:${PORTS.kubeProxyMetrics}`,
    nodePortAddresses: [`${NETWORK.nodeIp}/32`],
    detectLocalMode: "ClusterCIDR",
    iptables: { localhostNodePorts: false, masqueradeAll: false, minSyncPeriod: "1s", syncPeriod: "30s" },
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: "0s",
      tcpCloseWaitTimeout: "0s",
    },
  };
}

export function kubeProxyConfigYaml(nodeName: string, kubeconfig: string): string {
  return stringify(kubeProxyConfiguration(nodeName, kubeconfig));
}

export function kubeProxyFlags(configFile: string): string[] {
  return [`--config=${configFile}`, "--v=1"];
}
