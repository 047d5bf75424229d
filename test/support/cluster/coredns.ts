/**
 * CoreDNS as a cluster runs it (kubeadm's manifests, trimmed): a Deployment in kube-system
 * behind the kube-dns Service at the cluster DNS address, with its RBAC and Corefile.
 *
 * The Corefile answers for cluster.local (and the reverse zones) from the API and NXDOMAIN for
 * every other name: no `forward`, so no query ever leaves the cluster. Records (and NXDOMAIN
 * for a Service not there yet) live 5 s rather than kubeadm's 30 s: tests create a Service and
 * look it up at once.
 */
import { NETWORK } from "./layout.ts";

/** The plugins our CoreDNS build compiles in (build.ts writes them into its main.go). */
export const COREDNS_PLUGINS = [
  "errors",
  "health",
  "ready",
  "kubernetes",
  "cache",
  "loadbalance",
  "template",
] as const;

export function corefile(clusterDomain: string = NETWORK.clusterDomain): string {
  // Two server blocks on one port: CoreDNS routes each query to the most specific zone. The
  // template plugin runs before kubernetes in CoreDNS's plugin order, so it cannot share a block.
  return `${clusterDomain}:53 in-addr.arpa:53 ip6.arpa:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
        pods insecure
        ttl 5
    }
    cache 30
    loadbalance
}
.:53 {
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`;
}

const labels = { "k8s-app": "kube-dns" };

/** The objects to apply, in order. */
export function corednsManifests(image: string) {
  const metadata = (name: string) => ({ name, namespace: "kube-system", labels });
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: metadata("coredns") },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns", labels },
      rules: [
        {
          apiGroups: [""],
          resources: ["endpoints", "services", "pods", "namespaces"],
          verbs: ["list", "watch"],
        },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns", labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: "kube-system" }],
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: metadata("coredns"),
      data: { Corefile: corefile() },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: metadata("coredns"),
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: "coredns",
            priorityClassName: "system-cluster-critical",
            dnsPolicy: "Default",
            tolerations: [
              { key: "CriticalAddonsOnly", operator: "Exists" },
              { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" },
            ],
            containers: [
              {
                name: "coredns",
                image,
                imagePullPolicy: "Never",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: 53, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                ],
                resources: { requests: { cpu: "50m", memory: "40Mi" }, limits: { memory: "170Mi" } },
                volumeMounts: [{ name: "config-volume", mountPath: "/etc/coredns", readOnly: true }],
                livenessProbe: {
                  httpGet: { path: "/health", port: 8080 },
                  initialDelaySeconds: 10,
                  timeoutSeconds: 5,
                  failureThreshold: 5,
                },
                readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 2 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] },
                  readOnlyRootFilesystem: true,
                },
              },
            ],
            volumes: [
              {
                name: "config-volume",
                configMap: { name: "coredns", items: [{ key: "Corefile", path: "Corefile" }] },
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { ...metadata("kube-dns"), labels: { ...labels, "kubernetes.io/name": "CoreDNS" } },
      spec: {
        selector: labels,
        clusterIP: NETWORK.dnsIp,
        ports: [
          { name: "dns", port: 53, protocol: "UDP" },
          { name: "dns-tcp", port: 53, protocol: "TCP" },
        ],
      },
    },
  ];
}
