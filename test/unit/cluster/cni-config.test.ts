import { describe, expect, it } from "vitest";
import { CNI_CONF_FILE, cniConfList } from "../../support/cluster/cni-config.ts";
import { NAMES, NETWORK } from "../../support/cluster/layout.ts";

const conf = cniConfList({ ipamDir: "/run-dir/cni/ipam" });
const [bridge, portmap] = conf.plugins;

describe("the pod network", () => {
  it("attaches pods to our own bridge with the node address as their gateway", () => {
    expect(bridge).toMatchObject({
      type: "bridge",
      bridge: NAMES.bridge,
      isGateway: true,
      hairpinMode: true,
    });
    expect(bridge?.ipam).toMatchObject({
      type: "host-local",
      ranges: [[{ subnet: NETWORK.podCidr, gateway: NETWORK.nodeIp }]],
    });
  });

  it("keeps host-local's allocations in the run directory", () => {
    expect(bridge?.ipam).toMatchObject({ dataDir: "/run-dir/cni/ipam" });
  });

  it("adds no NAT for pods: nothing is meant to leave the machine", () => {
    expect(bridge).toMatchObject({ ipMasq: false });
  });

  it("supports hostPort through portmap", () => {
    expect(portmap).toEqual({ type: "portmap", capabilities: { portMappings: true } });
  });

  it("is named so its cache files and iptables comments can be told from podman's", () => {
    expect(conf.name).toBe(NAMES.cniNetwork);
    expect(conf.name).not.toBe("podman");
    expect(CNI_CONF_FILE).toBe("10-keypool.conflist");
  });
});
