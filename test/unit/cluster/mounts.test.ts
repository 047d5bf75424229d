import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isUnder, mountsUnder, parseMountInfo } from "../../support/cluster/mounts.ts";

// /proc/self/mountinfo lines of a running cluster (kubelet root bind, token tmpfs, shm, netns, rootfs).
const sample = readFileSync(new URL("./fixtures/mountinfo.txt", import.meta.url), "utf8");

describe("reading mountinfo", () => {
  it("gives each mount's point, type and source", () => {
    const mounts = parseMountInfo(sample);
    expect(mounts).toContainEqual({ mountPoint: "/proc", fsType: "proc", source: "proc" });
    expect(mounts.filter((m) => m.fsType === "nsfs")).toHaveLength(1);
  });

  it("decodes the kernel's octal escapes (a space in a path)", () => {
    const line = "99 27 0:50 / /tmp/a\\040b rw - tmpfs tmpfs rw";
    expect(parseMountInfo(line)).toEqual([{ mountPoint: "/tmp/a b", fsType: "tmpfs", source: "tmpfs" }]);
  });
});

describe("the mounts to remove", () => {
  it("are those under the run directory, newest first, the kubelet's root bind last", () => {
    const under = mountsUnder(parseMountInfo(sample), "/tmp/keypool-cluster");
    expect(under).toHaveLength(5);
    expect(under.at(-1)?.mountPoint).toBe("/tmp/keypool-cluster/kubelet");
    expect(under[0]?.fsType).toBe("overlay");
  });

  it.each([
    ["the directory itself", "/tmp/run", true],
    ["a path inside it", "/tmp/run/x", true],
    ["a sibling sharing its prefix", "/tmp/run-other", false],
    ["its parent", "/tmp", false],
  ])("include %s: %s", (_, path, expected) => {
    expect(isUnder(path, "/tmp/run")).toBe(expected);
  });
});
