import { describe, expect, it } from "vitest";
import { parseLdd, resolveInRoot } from "../../../scripts/image/ldd.ts";

// `ldd /usr/local/bin/node` in the node base image (Debian bookworm, Node.js 24).
const NODE_LDD = `	linux-vdso.so.1 (0x00007fb4d04e0000)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007fb4d04d1000)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007fb4d0200000)
	libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007fb4d0120000)
	libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007fb4d04b1000)
	libpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007fb4d04ac000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb4cff3e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007fb4d04e2000)
`;

describe("parsing ldd", () => {
  it("lists the libraries and the loader, not the vDSO", () => {
    expect(parseLdd(NODE_LDD)).toEqual({
      paths: [
        "/lib/x86_64-linux-gnu/libdl.so.2",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/lib/x86_64-linux-gnu/libpthread.so.0",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
      ],
      missing: [],
    });
  });

  it.each([
    [
      "reports libraries it could not find",
      "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
      { paths: ["/lib/libc.so.6"], missing: ["libfoo.so.1"] },
    ],
    ["finds nothing in a static binary", "\tstatically linked\n", { paths: [], missing: [] }],
    ["finds nothing in a script", "\tnot a dynamic executable\n", { paths: [], missing: [] }],
  ])("%s", (_name, text, expected) => {
    expect(parseLdd(text)).toEqual(expected);
  });
});

describe("resolving a path inside a rootfs", () => {
  // Debian bookworm's merged /usr, as debootstrap makes it.
  const links: Record<string, string> = {
    "/lib": "usr/lib",
    "/lib64": "usr/lib64",
    "/usr/lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/libstdc++.so.6": "libstdc++.so.6.0.30",
    "/etc/os-release": "../usr/lib/os-release",
    "/loop/a": "b",
    "/loop/b": "a",
  };
  const readlink = (p: string) => links[p];

  it.each([
    [
      "follows a linked folder",
      "/lib/x86_64-linux-gnu/libc.so.6",
      [["/lib", "usr/lib"]],
      "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ],
    [
      "follows a chain: linked folder, then an absolute link, then a linked folder again",
      "/lib64/ld-linux-x86-64.so.2",
      [
        ["/lib64", "usr/lib64"],
        ["/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"],
        ["/lib", "usr/lib"],
      ],
      "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ],
    [
      "follows a relative link to a versioned file",
      "/lib/x86_64-linux-gnu/libstdc++.so.6",
      [
        ["/lib", "usr/lib"],
        ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "libstdc++.so.6.0.30"],
      ],
      "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30",
    ],
    [
      "resolves .. in a link's target",
      "/etc/os-release",
      [["/etc/os-release", "../usr/lib/os-release"]],
      "/usr/lib/os-release",
    ],
    [
      "leaves a path without links alone",
      "/etc/ssl/certs/ca-certificates.crt",
      [],
      "/etc/ssl/certs/ca-certificates.crt",
    ],
  ])("%s", (_name, path, expectedLinks, file) => {
    expect(resolveInRoot(path, readlink)).toEqual({
      links: expectedLinks.map(([p, target]) => ({ path: p, target })),
      file,
    });
  });

  it("stops on a symlink loop", () => {
    expect(() => resolveInRoot("/loop/a", readlink)).toThrow(/symlinks/);
  });
});
