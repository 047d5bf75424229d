/**
 * containerd's config for the cluster: its own root, state, socket and runc root under the run
 * directory (never /var/lib/containerd or /run/containerd), the CRI plugin with our pause image,
 * CNI from Debian's containernetworking-plugins, and what this sandbox needs:
 *
 * - restrict_oom_score_adj: the sandbox forbids negative oom_score_adj; without it runc fails
 *   with "can't get final child's PID from pipe" when the kubelet asks for -997 (guaranteed pods).
 * - netns_mounts_under_state_dir: pod network namespaces are bind-mounted under our state dir,
 *   not /var/run/netns, so teardown finds exactly ours.
 * - no registry: images are imported with `ctr images import` (images.ts); a pull fails fast.
 */
import type { ClusterLayout } from "./layout.ts";
import { type TomlTable, toToml } from "./toml.ts";

export interface ContainerdOptions {
  /** The sandbox ("pause") image reference, imported before the kubelet starts. */
  sandboxImage: string;
  /** Where the CNI plugin binaries are (Debian: /usr/lib/cni). */
  cniBinDir: string;
  /** The runc binary (Debian: /usr/sbin/runc). */
  runc: string;
}

export const CRI_PLUGIN = "io.containerd.grpc.v1.cri";

export function containerdConfig(layout: ClusterLayout, options: ContainerdOptions): TomlTable {
  const { containerd } = layout;
  return {
    version: 2,
    root: containerd.root,
    state: containerd.state,
    // containerd's own oom_score_adj is left alone (0): lowering it is not allowed here.
    oom_score: 0,
    // Snapshotters that probe the host (and log errors) for nothing: overlayfs is all we use.
    disabled_plugins: [
      "io.containerd.snapshotter.v1.aufs",
      "io.containerd.snapshotter.v1.btrfs",
      "io.containerd.snapshotter.v1.devmapper",
      "io.containerd.snapshotter.v1.zfs",
      "io.containerd.tracing.processor.v1.otlp",
    ],
    grpc: { address: containerd.socket },
    ttrpc: { address: `${containerd.socket}.ttrpc` },
    // No debug socket and no metrics listener: nothing beyond the one socket above.
    debug: { address: "" },
    metrics: { address: "" },
    plugins: {
      "io.containerd.internal.v1.opt": { path: containerd.opt },
      [CRI_PLUGIN]: {
        sandbox_image: options.sandboxImage,
        restrict_oom_score_adj: true,
        netns_mounts_under_state_dir: true,
        // Pods may bind ports below 1024 without NET_BIND_SERVICE (CoreDNS on 53), as in
        // containerd 2.x's defaults.
        enable_unprivileged_ports: true,
        enable_unprivileged_icmp: true,
        // `kubectl exec/attach/port-forward` stream through here: loopback, any free port.
        stream_server_address: "127.0.0.1",
        stream_server_port: "0",
        enable_selinux: false,
        disable_apparmor: true,
        containerd: {
          snapshotter: "overlayfs",
          default_runtime_name: "runc",
          runtimes: {
            runc: {
              runtime_type: "io.containerd.runc.v2",
              options: { BinaryName: options.runc, Root: containerd.runcRoot, SystemdCgroup: false },
            },
          },
        },
        cni: { bin_dir: options.cniBinDir, conf_dir: layout.cniConfDir, max_conf_num: 1 },
        // No mirrors and no credentials: there is no registry to reach.
        registry: { config_path: "" },
      },
    },
  };
}

export function containerdConfigToml(layout: ClusterLayout, options: ContainerdOptions): string {
  return toToml(containerdConfig(layout, options));
}
