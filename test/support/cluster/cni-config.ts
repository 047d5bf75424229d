/**
 * The CNI network for pods: Debian's bridge plugin on our own bridge (kpbr0, with the node's
 * address as gateway), host-local IPAM keeping its state in the run directory, and portmap for
 * hostPort. No ipMasq: pods have no business leaving the machine, so no per-pod NAT chains.
 */
import { NAMES, NETWORK } from "./layout.ts";

export interface CniOptions {
  /** host-local's dataDir (default /var/lib/cni/networks): ours, in the run directory. */
  ipamDir: string;
}

export function cniConfList(options: CniOptions) {
  return {
    cniVersion: "1.0.0",
    name: NAMES.cniNetwork,
    plugins: [
      {
        type: "bridge",
        bridge: NAMES.bridge,
        isGateway: true,
        ipMasq: false,
        // A pod can reach itself through its own Service.
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: options.ipamDir,
          ranges: [[{ subnet: NETWORK.podCidr, gateway: NETWORK.nodeIp }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
}

/** The file name containerd loads (the only one in our conf_dir). */
export const CNI_CONF_FILE = `10-${NAMES.cniNetwork}.conflist`;
