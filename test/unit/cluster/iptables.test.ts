import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { describeOurs, ourChains, parseIptablesSave, removalScript } from "../../support/cluster/iptables.ts";

// iptables-save of this machine with the cluster up: kube-proxy's and the kubelet's KUBE-*
// chains, a hostPort pod (portmap), and podman's netavark rules beside them.
const saved = readFileSync(new URL("./fixtures/iptables-save.txt", import.meta.url), "utf8");

// podman's CNI network on the same machine: a hostPort container of its own, and its bridge NAT.
const PODMAN = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-DN-podman1 - [0:0]
:CNI-abc - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \\"podman\\" id: \\"1234\\"" -j CNI-abc
-A CNI-abc -d 10.88.0.0/16 -m comment --comment "name: \\"podman\\" id: \\"1234\\"" -j ACCEPT
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"podman\\" id: \\"1234\\"" -m multiport --dports 8000 -j CNI-DN-podman1
-A CNI-DN-podman1 -p tcp -m tcp --dport 8000 -j DNAT --to-destination 10.88.0.2:80
COMMIT
`;

const table = (text: string, name: string) => {
  const t = parseIptablesSave(text).find((x) => x.name === name);
  if (!t) throw new Error(`no ${name} table`);
  return t;
};

describe("reading iptables-save", () => {
  it("finds tables, chains, and each rule's chain, target and comment", () => {
    const nat = table(saved, "nat");
    expect(nat.chains).toContain("CNI-HOSTPORT-DNAT");
    const dnat = nat.rules.find((r) => r.chain === "CNI-HOSTPORT-DNAT");
    expect(dnat?.target).toMatch(/^CNI-DN-/);
    expect(dnat?.comment).toMatch(/^dnat name: "keypool" id: "[0-9a-f]+"$/);
  });
});

describe("what of iptables is ours", () => {
  it("is every KUBE-* chain, our hostPort chains and the shared CNI-HOSTPORT-* ones up created", () => {
    const ours = [...ourChains(table(saved, "nat"))];
    expect(ours.filter((c) => c.startsWith("KUBE-")).length).toBeGreaterThan(5);
    expect(ours).toEqual(
      expect.arrayContaining(["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"]),
    );
    expect(ours.some((c) => c.startsWith("CNI-DN-"))).toBe(true);
    expect(ours.some((c) => c.startsWith("NETAVARK"))).toBe(false);
  });

  it("includes our own KEYPOOL-* chain and the jump to it", () => {
    const filter = parseIptablesSave(`*filter
:FORWARD ACCEPT [0:0]
:KEYPOOL-EGRESS - [0:0]
-A FORWARD -s 198.18.0.0/16 -m comment --comment "keypool cluster: pods stay inside" -j KEYPOOL-EGRESS
-A KEYPOOL-EGRESS -d 198.18.0.0/15 -j RETURN
-A KEYPOOL-EGRESS -j REJECT --reject-with icmp-net-prohibited
COMMIT
`)[0];
    if (!filter) throw new Error("no table");
    expect(removalScript(filter)).toBe(`*filter
-D FORWARD -s 198.18.0.0/16 -m comment --comment "keypool cluster: pods stay inside" -j KEYPOOL-EGRESS
-F KEYPOOL-EGRESS
-X KEYPOOL-EGRESS
COMMIT
`);
  });

  it("leaves podman's netavark rules in place", () => {
    for (const name of ["nat", "filter"]) {
      const script = removalScript(table(saved, name));
      expect(script).not.toMatch(/NETAVARK/);
    }
  });

  it("removes the jumps into our chains before flushing and deleting them, in one transaction", () => {
    const script = removalScript(table(saved, "nat")).split("\n");
    expect(script[0]).toBe("*nat");
    expect(script).toContain(
      '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
    expect(script).toContain("-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT");
    const firstFlush = script.findIndex((l) => l.startsWith("-F "));
    const lastDelete = script.findLastIndex((l) => l.startsWith("-D "));
    expect(lastDelete).toBeLessThan(firstFlush);
    expect(script.at(-2)).toBe("COMMIT");
  });

  it("keeps a shared CNI-HOSTPORT-* chain that holds another network's rules, removing only ours from it", () => {
    const nat = table(PODMAN, "nat");
    nat.rules.push({
      chain: "CNI-HOSTPORT-DNAT",
      spec: '-p tcp -m comment --comment "dnat name: \\"keypool\\" id: \\"99\\"" -j CNI-DN-ours',
      target: "CNI-DN-ours",
      comment: 'dnat name: "keypool" id: "99"',
    });
    nat.chains.push("CNI-DN-ours");
    const ours = ourChains(nat);
    expect([...ours].sort()).toEqual(["CNI-DN-ours", "KUBE-SERVICES"]);
    const script = removalScript(nat);
    expect(script).toContain("-D CNI-HOSTPORT-DNAT -p tcp");
    expect(script).not.toContain("-X CNI-HOSTPORT-DNAT");
    expect(script).not.toMatch(/podman|CNI-abc/);
  });

  it("keeps a CNI-HOSTPORT-* chain that existed before up, even when empty", () => {
    const nat = parseIptablesSave("*nat\n:CNI-HOSTPORT-SETMARK - [0:0]\nCOMMIT\n")[0];
    if (!nat) throw new Error("no table");
    expect(ourChains(nat, new Set(["nat/CNI-HOSTPORT-SETMARK"])).size).toBe(0);
    expect(ourChains(nat).has("CNI-HOSTPORT-SETMARK")).toBe(true);
  });

  it("reports nothing once only other people's rules are left", () => {
    const afterDown = `*nat
:PREROUTING ACCEPT [0:0]
:NETAVARK-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
COMMIT
`;
    expect(describeOurs(table(afterDown, "nat"))).toEqual([]);
    expect(removalScript(table(afterDown, "nat"))).toBe("");
  });
});
