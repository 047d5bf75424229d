import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import { generateControlPlaneCerts } from "../../support/control-plane/certs.ts";
import { apiServerNames, firstServiceIp } from "../../support/control-plane/control-plane.ts";

describe("the control plane's address options (used by the cluster)", () => {
  it.each([
    ["10.0.0.0/24", "10.0.0.1"],
    ["198.19.0.0/16", "198.19.0.1"],
    ["10.0.0.255/24", "10.0.0.1"],
    ["172.16.5.0/12", "172.16.0.1"],
  ])("the kubernetes Service of %s is %s", (range, ip) => {
    expect(firstServiceIp(range)).toBe(ip);
  });

  it.each(["fd00::/108", "10.0.0.0", "10.0.0.0/33", "10.0.300.0/24"])(
    "refuses %s, not an IPv4 range",
    (range) => {
      expect(() => firstServiceIp(range)).toThrow(/IPv4/);
    },
  );

  it("keeps loopback in the serving certificate and adds the bind address and the Service IP", async () => {
    const names = apiServerNames({ address: "198.18.0.1", serviceClusterIpRange: "198.19.0.0/16" });
    expect(names.ips).toEqual(["198.18.0.1", "198.19.0.1"]);
    const { serving } = await generateControlPlaneCerts(names);
    const san = new x509.X509Certificate(serving.cert).getExtension(x509.SubjectAlternativeNameExtension);
    const values = san?.names.items.map((n) => n.value) ?? [];
    expect(values).toEqual(
      expect.arrayContaining([
        "127.0.0.1",
        "198.18.0.1",
        "198.19.0.1",
        "localhost",
        "kubernetes.default.svc",
      ]),
    );
  });

  it("gives callers that pass nothing the certificate they had, plus the default Service IP", () => {
    expect(apiServerNames({}).ips).toEqual(["127.0.0.1", "10.0.0.1"]);
  });
});
