import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { generateControlPlaneCerts } from "../../support/control-plane/certs.ts";
import { issueClusterCerts, kubeconfigYaml, SUBJECTS, userOf } from "../../support/cluster/pki.ts";
import { NETWORK } from "../../support/cluster/layout.ts";

describe("the components' identities", () => {
  it.each([
    ["the kubelet is a node, in system:nodes", SUBJECTS.kubelet, "system:node:keypool-node"],
    ["kube-proxy is the user the default RBAC binds", SUBJECTS.kubeProxy, "system:kube-proxy"],
    ["kube-controller-manager likewise", SUBJECTS.controllerManager, "system:kube-controller-manager"],
    ["kube-scheduler likewise", SUBJECTS.scheduler, "system:kube-scheduler"],
  ])("%s", (_, subject, user) => {
    expect(userOf(subject)).toBe(user);
  });

  it("signs the kubelet's serving certificate for the node address, and its client one for system:nodes", async () => {
    const { ca } = await generateControlPlaneCerts();
    const certs = await issueClusterCerts(ca);
    const serving = new x509.X509Certificate(certs.kubeletServing.cert);
    const san = serving.getExtension(x509.SubjectAlternativeNameExtension);
    expect(san?.names.items.map((n) => n.value)).toContain(NETWORK.nodeIp);
    expect(new x509.X509Certificate(certs.kubelet.cert).subject).toBe(
      "CN=system:node:keypool-node, O=system:nodes",
    );
    expect(new x509.X509Certificate(certs.kubelet.cert).issuer).toBe("CN=keypool-test-ca");
  });
});

describe("a component's kubeconfig", () => {
  it("points at the server, trusts the CA and carries the client certificate", () => {
    const config = parse(
      kubeconfigYaml("https://198.18.0.1:6443", "CA", "system:kube-proxy", { cert: "C", key: "K" }),
    );
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    expect(config.clusters[0].cluster).toEqual({
      server: "https://198.18.0.1:6443",
      "certificate-authority-data": b64("CA"),
    });
    expect(config.users[0]).toEqual({
      name: "system:kube-proxy",
      user: { "client-certificate-data": b64("C"), "client-key-data": b64("K") },
    });
    expect(config["current-context"]).toBe("keypool");
  });
});
