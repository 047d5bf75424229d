import { describe, expect, it } from "vitest";
import { imageSpecs, parseKubeadmVersions } from "../../support/cluster/build.ts";

describe("reading kubeadm's versions from a Kubernetes release", () => {
  it("finds the CoreDNS and pause versions it deploys", () => {
    const constants = `
	// CoreDNSVersion is the version of CoreDNS to be deployed if it is used
	CoreDNSVersion = "v1.12.1"

	// PauseVersion indicates the default pause image version for kubeadm
	PauseVersion = "3.10.1"
`;
    expect(parseKubeadmVersions(constants)).toEqual({ coredns: "v1.12.1", pause: "3.10.1" });
  });

  it("refuses a file without them instead of guessing", () => {
    expect(() => parseKubeadmVersions("package constants\n")).toThrow(/CoreDNSVersion/);
  });
});

describe("the images the build writes", () => {
  const specs = imageSpecs(
    { pause: Buffer.from("p"), coredns: Buffer.from("c"), probe: Buffer.from("x") },
    { kubernetes: "v1.34.4", coredns: "v1.12.1", pause: "3.10.1" },
  );

  it.each([
    ["pause", "keypool.local/pause:3.10.1", ["/pause"]],
    ["coredns", "keypool.local/coredns:v1.12.1", ["/coredns"]],
    ["probe", "keypool.local/cluster-probe:1", ["/probe"]],
  ] as const)("%s is %s, running %j", (name, ref, entrypoint) => {
    expect(specs[name].ref).toBe(ref);
    expect(specs[name].entrypoint).toEqual(entrypoint);
    expect(specs[name].files.map((f) => f.path)).toContain(entrypoint[0].slice(1));
  });
});
