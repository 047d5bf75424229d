import { describe, expect, it } from "vitest";
import { apiserverGoMod, parseKubernetesGoMod } from "../../support/control-plane/build.ts";

const goMod = `module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
	go.etcd.io/etcd/client/v3 v3.6.4
	k8s.io/api v0.0.0
)

require (
	go.etcd.io/etcd/server/v3 v3.6.4 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
)
`;

describe("reading a Kubernetes release's go.mod", () => {
  it("finds the go directive, godebug default, staging modules and etcd version", () => {
    expect(parseKubernetesGoMod(goMod)).toEqual({
      goDirective: "1.24.0",
      godebug: "default=go1.24",
      stagingModules: ["k8s.io/api", "k8s.io/apimachinery"],
      etcdVersion: "v3.6.4",
    });
  });

  it("refuses a go.mod without staging replaces instead of building something else", () => {
    expect(() => parseKubernetesGoMod("module x\n\ngo 1.24\n")).toThrow(/expected shape/);
  });

  it("pins every staging module to the matching v0.x.y in the throwaway module", () => {
    const mod = apiserverGoMod("1.34.4", parseKubernetesGoMod(goMod));
    expect(mod).toContain("require k8s.io/kubernetes v1.34.4");
    expect(mod).toContain("godebug default=go1.24");
    expect(mod).toContain("\tk8s.io/api => k8s.io/api v0.34.4");
    expect(mod).toContain("\tk8s.io/apimachinery => k8s.io/apimachinery v0.34.4");
  });
});
