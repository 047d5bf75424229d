import { describe, expect, it } from "vitest";
import { corednsMainGo } from "../../support/cluster/build.ts";
import { COREDNS_PLUGINS, corednsManifests, corefile } from "../../support/cluster/coredns.ts";
import { NETWORK } from "../../support/cluster/layout.ts";

const manifests = corednsManifests("keypool.local/coredns:v1.12.1");
const byKind = (kind: string): object => manifests.find((m) => m.kind === kind) ?? {};

describe("CoreDNS's Corefile", () => {
  const text = corefile();

  it("answers for the cluster domain and reverse zones from the API", () => {
    expect(text).toMatch(/^cluster\.local:53 in-addr\.arpa:53 ip6\.arpa:53 \{/);
    expect(text).toContain("kubernetes cluster.local in-addr.arpa ip6.arpa {");
  });

  it("sends nothing outside: no forward, NXDOMAIN for every other name", () => {
    expect(text).not.toMatch(/\bforward\b/);
    expect(text).toMatch(/\.:53 \{\s+errors\s+template ANY ANY \{\s+rcode NXDOMAIN/);
  });

  it("uses only plugins our build compiles in", () => {
    const directives = [...text.matchAll(/^\s{4}([a-z]+)/gm)].map((m) => m[1]);
    for (const d of directives) expect(COREDNS_PLUGINS).toContain(d);
  });
});

describe("CoreDNS's build", () => {
  it("imports coremain and exactly the Corefile's plugins", () => {
    const main = corednsMainGo();
    expect(main).toContain('"github.com/coredns/coredns/coremain"');
    for (const p of COREDNS_PLUGINS) expect(main).toContain(`_ "github.com/coredns/coredns/plugin/${p}"`);
    expect(main).not.toContain("core/plugin");
  });
});

describe("CoreDNS's objects", () => {
  it("serves the cluster DNS address through the kube-dns Service", () => {
    expect(byKind("Service")).toMatchObject({
      metadata: { name: "kube-dns", namespace: "kube-system" },
      spec: { clusterIP: NETWORK.dnsIp },
    });
  });

  it("runs our image, never pulled, with kubeadm's probes", () => {
    expect(byKind("Deployment")).toMatchObject({
      spec: {
        template: {
          spec: {
            containers: [
              {
                image: "keypool.local/coredns:v1.12.1",
                imagePullPolicy: "Never",
                readinessProbe: { httpGet: { path: "/ready", port: 8181 } },
                livenessProbe: { httpGet: { path: "/health", port: 8080 } },
              },
            ],
          },
        },
      },
    });
  });

  it("may list and watch what the kubernetes plugin reads, nothing more", () => {
    const { rules } = byKind("ClusterRole") as { rules: { verbs: string[] }[] };
    expect(new Set(rules.flatMap((r) => r.verbs))).toEqual(new Set(["list", "watch"]));
  });
});
