import { describe, expect, it } from "vitest";
import { canonicalJson, imageCacheDir, inputsKey, mountsUnder } from "../../../scripts/image/cache.ts";

describe("image cache", () => {
  it.each([
    ["uses KEYPOOL_CACHE_DIR first", { KEYPOOL_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x" }, "/c/image"],
    ["else XDG_CACHE_HOME/keypool-operator", { XDG_CACHE_HOME: "/x" }, "/x/keypool-operator/image"],
  ])("%s", (_name, env, expected) => {
    expect(imageCacheDir(env)).toBe(expected);
  });

  it("writes object keys in order at every level, so key order does not change the hash", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 2 }], c: "x" } })).toBe(
      '{"a":{"c":"x","d":[2,{"e":2,"f":1}]},"b":1}',
    );
    expect(inputsKey({ suite: "bookworm", node: "24.21.0" })).toBe(
      inputsKey({ node: "24.21.0", suite: "bookworm" }),
    );
  });

  it("leaves undefined fields out, as JSON does", () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it("gives a 16-digit hash that changes with any input", () => {
    const key = inputsKey({ suite: "bookworm", include: ["ca-certificates"] });
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(inputsKey({ suite: "bookworm", include: ["ca-certificates", "curl"] })).not.toBe(key);
    expect(inputsKey({ suite: "trixie", include: ["ca-certificates"] })).not.toBe(key);
  });
});

describe("mounts left under a folder", () => {
  const procMounts = [
    "proc /proc proc rw 0 0",
    "proc /cache/rootfs.partial-1/proc proc rw 0 0",
    "sysfs /cache/rootfs.partial-1/sys sysfs rw 0 0",
    "tmpfs /cache/rootfs.partial-12 tmpfs rw 0 0",
    "tmpfs /cache/with\\040space/proc tmpfs rw 0 0",
  ].join("\n");

  it.each([
    [
      "finds the mounts inside it",
      "/cache/rootfs.partial-1",
      ["/cache/rootfs.partial-1/proc", "/cache/rootfs.partial-1/sys"],
    ],
    ["counts the folder itself", "/cache/rootfs.partial-12", ["/cache/rootfs.partial-12"]],
    ["decodes escaped spaces", "/cache/with space", ["/cache/with space/proc"]],
    ["finds none in a folder without mounts", "/elsewhere", []],
  ])("%s", (_name, dir, expected) => {
    expect(mountsUnder(procMounts, dir)).toEqual(expected);
  });
});
