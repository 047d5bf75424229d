import { describe, expect, it } from "vitest";
import {
  containerdConfig,
  containerdConfigToml,
  CRI_PLUGIN,
} from "../../support/cluster/containerd-config.ts";
import { clusterLayout } from "../../support/cluster/layout.ts";

const layout = clusterLayout("/run-dir");
const options = { sandboxImage: "keypool.local/pause:3.10.1", cniBinDir: "/usr/lib/cni", runc: "runc" };
const config = containerdConfig(layout, options);
const cri = (config.plugins as Record<string, Record<string, unknown>>)[CRI_PLUGIN] ?? {};

describe("containerd's config", () => {
  it("keeps root, state, sockets and runc's state in the run directory", () => {
    expect(config).toMatchObject({
      root: "/run-dir/containerd/root",
      state: "/run-dir/containerd/state",
      grpc: { address: "/run-dir/containerd/containerd.sock" },
      ttrpc: { address: "/run-dir/containerd/containerd.sock.ttrpc" },
    });
    expect(cri.containerd).toMatchObject({
      runtimes: { runc: { options: { Root: "/run-dir/containerd/runc", SystemdCgroup: false } } },
    });
    const text = containerdConfigToml(layout, options);
    expect(text).not.toMatch(/\/var\/lib\/containerd|\/run\/containerd|\/etc\/cni/);
  });

  it.each([
    ["the sandbox forbids negative oom_score_adj", "restrict_oom_score_adj", true],
    ["pod network namespaces are mounted where teardown looks", "netns_mounts_under_state_dir", true],
    ["the sandbox image is ours, imported, never pulled", "sandbox_image", "keypool.local/pause:3.10.1"],
    ["exec/attach streams listen on loopback only", "stream_server_address", "127.0.0.1"],
  ])("CRI: %s", (_, key, value) => {
    expect(cri[key]).toBe(value);
  });

  it("loads CNI from Debian's plugins and our own conf dir", () => {
    expect(cri.cni).toEqual({ bin_dir: "/usr/lib/cni", conf_dir: "/run-dir/cni/net.d", max_conf_num: 1 });
  });

  it("opens no debug or metrics listener", () => {
    expect(config.debug).toEqual({ address: "" });
    expect(config.metrics).toEqual({ address: "" });
  });

  it("renders as containerd's version 2 TOML", () => {
    const text = containerdConfigToml(layout, options);
    expect(text.startsWith("version = 2\n")).toBe(true);
    expect(text).toContain('[plugins."io.containerd.grpc.v1.cri"]\n');
    expect(text).toContain("restrict_oom_score_adj = true\n");
  });
});
