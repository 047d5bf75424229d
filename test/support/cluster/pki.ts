/**
 * Identities of the cluster's components, all signed by the control plane's CA, and the
 * kubeconfigs that carry them:
 *
 * - kubelet: client CN=system:node:<node>, O=system:nodes (Node authorizer, NodeRestriction)
 *   and a serving certificate for the node address (kube-apiserver verifies it for logs/exec);
 * - kube-apiserver → kubelet: a client certificate in system:masters;
 * - kube-controller-manager, kube-scheduler, kube-proxy: the users the default RBAC names.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import { issueClientCert, issueServingCert, type Pem } from "../control-plane/certs.ts";
import { NAMES, NETWORK } from "./layout.ts";

/** Who each component is to kube-apiserver (the subjects the bootstrap RBAC policy expects). */
export const SUBJECTS = {
  kubelet: `CN=system:node:${NAMES.nodeName}, O=system:nodes`,
  apiServerKubeletClient: "CN=kube-apiserver-kubelet-client, O=system:masters",
  controllerManager: "CN=system:kube-controller-manager",
  scheduler: "CN=system:kube-scheduler",
  kubeProxy: "CN=system:kube-proxy",
} as const;

export type Identity = keyof typeof SUBJECTS;

/** A kubeconfig for `server`, trusting `caCert`, as the holder of `client`. */
export function kubeconfigYaml(server: string, caCert: string, user: string, client: Pem): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "keypool", cluster: { server, "certificate-authority-data": b64(caCert) } }],
    users: [
      {
        name: user,
        user: { "client-certificate-data": b64(client.cert), "client-key-data": b64(client.key) },
      },
    ],
    contexts: [{ name: "keypool", context: { cluster: "keypool", user } }],
    "current-context": "keypool",
  });
}

/** The files writeClusterPki() writes. */
export interface ClusterPki {
  caFile: string;
  caKeyFile: string;
  kubeletServingCert: string;
  kubeletServingKey: string;
  apiServerKubeletClientCert: string;
  apiServerKubeletClientKey: string;
  /** Kubeconfig path per component (written by writeKubeconfigs once the server's port is known). */
  kubeconfigs: Record<KubeconfigIdentity, string>;
}

type KubeconfigIdentity = Exclude<Identity, "apiServerKubeletClient">;

export function pkiPaths(dirs: { pki: string; kubeconfigs: string }): ClusterPki {
  const p = (name: string) => join(dirs.pki, name);
  const k = (name: string) => join(dirs.kubeconfigs, `${name}.kubeconfig`);
  return {
    caFile: p("ca.crt"),
    caKeyFile: p("ca.key"),
    kubeletServingCert: p("kubelet-serving.crt"),
    kubeletServingKey: p("kubelet-serving.key"),
    apiServerKubeletClientCert: p("apiserver-kubelet-client.crt"),
    apiServerKubeletClientKey: p("apiserver-kubelet-client.key"),
    kubeconfigs: {
      kubelet: k("kubelet"),
      controllerManager: k("controller-manager"),
      scheduler: k("scheduler"),
      kubeProxy: k("kube-proxy"),
    },
  };
}

export type ClusterCerts = Record<Identity, Pem> & { kubeletServing: Pem };

/** Issues every component's certificate with the CA. */
export async function issueClusterCerts(ca: Pem): Promise<ClusterCerts> {
  const [kubelet, kubeletServing, apiServerKubeletClient, controllerManager, scheduler, kubeProxy] =
    await Promise.all([
      issueClientCert(ca, SUBJECTS.kubelet),
      issueServingCert(ca, `CN=${NAMES.nodeName}`, { ips: [NETWORK.nodeIp], dns: [NAMES.nodeName] }),
      issueClientCert(ca, SUBJECTS.apiServerKubeletClient),
      issueClientCert(ca, SUBJECTS.controllerManager),
      issueClientCert(ca, SUBJECTS.scheduler),
      issueClientCert(ca, SUBJECTS.kubeProxy),
    ]);
  return { kubelet, kubeletServing, apiServerKubeletClient, controllerManager, scheduler, kubeProxy };
}

const write = (path: string, text: string) => writeFile(path, text, { mode: 0o600 });

/** Writes the CA, its key and the certificates files name (kube-apiserver's and the kubelet's). */
export async function writeClusterPki(ca: Pem, certs: ClusterCerts, pki: ClusterPki): Promise<void> {
  await mkdir(dirname(pki.caFile), { recursive: true });
  await Promise.all([
    write(pki.caFile, ca.cert),
    write(pki.caKeyFile, ca.key),
    write(pki.kubeletServingCert, certs.kubeletServing.cert),
    write(pki.kubeletServingKey, certs.kubeletServing.key),
    write(pki.apiServerKubeletClientCert, certs.apiServerKubeletClient.cert),
    write(pki.apiServerKubeletClientKey, certs.apiServerKubeletClient.key),
  ]);
}

/** The user name a subject's CN gives. */
export function userOf(subject: string): string {
  const cn = /CN=([^,]+)/.exec(subject)?.[1];
  if (!cn) throw new Error(`no CN in ${subject}`);
  return cn;
}

/** Writes each component's kubeconfig for `server`. */
export async function writeKubeconfigs(
  server: string,
  ca: Pem,
  certs: ClusterCerts,
  pki: ClusterPki,
): Promise<void> {
  await mkdir(dirname(pki.kubeconfigs.kubelet), { recursive: true });
  await Promise.all(
    (Object.keys(pki.kubeconfigs) as KubeconfigIdentity[]).map((id) =>
      write(pki.kubeconfigs[id], kubeconfigYaml(server, ca.cert, userOf(SUBJECTS[id]), certs[id])),
    ),
  );
}
