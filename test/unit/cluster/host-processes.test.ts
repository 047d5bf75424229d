import { describe, expect, it } from "vitest";
import { inOurCgroup, namesDir } from "../../support/cluster/host-processes.ts";

describe("recognising the cluster's processes", () => {
  it.each([
    [
      "a container under the kubelet's cgroup root",
      "4:memory:/keypool-cluster/kubepods/besteffort/pod1/abc\n0::/",
      true,
    ],
    ["the root itself", "5:cpu:/keypool-cluster", true],
    ["a process of the machine", "4:memory:/process_api/89684\n0::/", false],
    ["a cgroup that only starts with the same name", "4:memory:/keypool-cluster-2/x", false],
  ])("%s", (_, cgroup, expected) => {
    expect(inOurCgroup(cgroup)).toBe(expected);
  });

  it.each([
    ["a flag value in the run dir", "containerd --config /tmp/kc/config/containerd.toml", true],
    ["a --flag=value in the run dir", "kubelet --root-dir=/tmp/kc/kubelet", true],
    ["the run dir itself", "main.ts daemon --dir /tmp/kc", true],
    ["another run dir with the same prefix", "containerd --config /tmp/kc2/config.toml", false],
    ["no run dir at all", "containerd --config /tmp/kpx/ctrd/config.toml", false],
  ])("%s", (_, cmdline, expected) => {
    expect(namesDir(cmdline, "/tmp/kc")).toBe(expected);
  });
});
