/**
 * The command lines the image scripts hand to buildah, podman and debootstrap, and the names and
 * keys they derive: what would break a build here without failing until it runs.
 */
import { describe, expect, it } from "vitest";
import { baseKeys, baseTags } from "../../../scripts/image/base-images.ts";
import { budArgs, npmrcForCa } from "../../../scripts/image/build.ts";
import { configArgs, ociRuntime, ULIMITS } from "../../../scripts/image/buildah.ts";
import { aptInstallScript } from "../../../scripts/image/extras.ts";
import { humanSize, podmanRunArgs } from "../../../scripts/image/podman.ts";
import { DEBIAN, debootstrapArgs, rootfsKey } from "../../../scripts/image/rootfs.ts";
import { normalizedName } from "../../../scripts/image/save.ts";

const bud = {
  tag: "keypool-operator:dev",
  nodeImage: "localhost/keypool-base/node:24.21.0-bookworm-slim",
  runtimeImage: "localhost/keypool-base/nodejs24-distroless:nonroot",
  contextDir: "/repo",
  runtime: "/usr/sbin/runc",
};

describe("buildah bud", () => {
  it("builds the repository's Dockerfile on the local bases, never pulling, with runc and the ulimits", () => {
    expect(budArgs(bud)).toEqual([
      "bud",
      "--pull=never",
      "--runtime",
      "/usr/sbin/runc",
      ...ULIMITS,
      "--layers",
      "--force-rm",
      "--build-arg",
      "NODE_IMAGE=localhost/keypool-base/node:24.21.0-bookworm-slim",
      "--build-arg",
      "RUNTIME_IMAGE=localhost/keypool-base/nodejs24-distroless:nonroot",
      "--tag",
      "keypool-operator:dev",
      "--file",
      "/repo/Dockerfile",
      "/repo",
    ]);
  });

  it.each([
    ["passes --network on", { network: "host" }, ["--network", "host"]],
    ["passes --no-cache on", { noCache: true }, ["--no-cache"]],
    [
      "mounts a CA bundle and an npmrc naming it for the RUN steps",
      { trust: { caFile: "/etc/ssl/certs/ca-certificates.crt", npmrc: "/tmp/x/npmrc" } },
      [
        "--volume",
        "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        "--volume",
        "/tmp/x/npmrc:/usr/local/etc/npmrc:ro",
      ],
    ],
  ])("%s", (_name, extra, expected) => {
    const args = budArgs({ ...bud, ...extra });
    const at = args.indexOf(expected[0] ?? "");
    expect(args.slice(at, at + expected.length)).toEqual(expected);
    expect(args.at(-1)).toBe("/repo");
  });

  it("points npm at the mounted bundle", () => {
    expect(npmrcForCa()).toBe("cafile=/etc/ssl/certs/ca-certificates.crt\n");
  });
});

describe("buildah config", () => {
  it("writes entrypoint and cmd in JSON form (no shell wraps them)", () => {
    expect(
      configArgs({
        user: "65532:65532",
        env: { PATH: "/usr/bin", SSL_CERT_FILE: "/etc/ssl/certs/ca-certificates.crt" },
        workingDir: "/home/nonroot",
        entrypoint: ["redis-server", "--save", ""],
        cmd: [],
        ports: [6379],
        labels: { "io.keypool.image.inputs": "abc" },
      }),
    ).toEqual([
      "--user",
      "65532:65532",
      "--env",
      "PATH=/usr/bin",
      "--env",
      "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
      "--workingdir",
      "/home/nonroot",
      "--cmd",
      "[]",
      "--entrypoint",
      '["redis-server","--save",""]',
      "--port",
      "6379",
      "--label",
      "io.keypool.image.inputs=abc",
    ]);
  });

  it("leaves out what is not set", () => {
    expect(configArgs({})).toEqual([]);
  });
});

describe("the OCI runtime", () => {
  it.each([
    ["is Debian's runc in /usr/sbin", ["/usr/sbin/runc", "/usr/bin/runc"], "/usr/sbin/runc"],
    ["else runc in /usr/bin", ["/usr/bin/runc"], "/usr/bin/runc"],
    ["else runc from the PATH", [], "runc"],
  ])("%s", (_name, present, expected) => {
    expect(ociRuntime((p) => present.includes(p))).toBe(expected);
  });
});

describe("podman run for the checks", () => {
  it("runs hardened as the Deployment does, removed afterwards", () => {
    expect(podmanRunArgs("img", { args: ["--help"] }, "/usr/sbin/runc")).toEqual([
      "run",
      "--rm",
      "--runtime",
      "/usr/sbin/runc",
      ...ULIMITS,
      "--read-only",
      "--cap-drop=all",
      "--security-opt",
      "no-new-privileges",
      "--network",
      "none",
      "img",
      "--help",
    ]);
  });

  it("runs in the background under a name, with another entrypoint", () => {
    const args = podmanRunArgs("img", { detachAs: "c1", entrypoint: "sh", args: ["-c", "true"] }, "runc");
    expect(args.slice(0, 4)).toEqual(["run", "--detach", "--name", "c1"]);
    expect(args).not.toContain("--rm");
    expect(args.slice(-5)).toEqual(["--entrypoint", "sh", "img", "-c", "true"]);
  });
});

describe("debootstrap", () => {
  it("makes the variant with the extra packages, from the mirror", () => {
    expect(debootstrapArgs(DEBIAN, "/cache/rootfs", "http://deb.debian.org/debian")).toEqual([
      "--variant=minbase",
      "--include=ca-certificates",
      "bookworm",
      "/cache/rootfs",
      "http://deb.debian.org/debian",
    ]);
  });

  it("keys the rootfs by suite, variant and package set, not package order", () => {
    const key = rootfsKey({ ...DEBIAN, include: ["curl", "ca-certificates"] });
    expect(rootfsKey({ ...DEBIAN, include: ["ca-certificates", "curl"] })).toBe(key);
    expect(rootfsKey(DEBIAN)).not.toBe(key);
    expect(rootfsKey({ ...DEBIAN, suite: "trixie" })).not.toBe(rootfsKey(DEBIAN));
  });
});

describe("base images", () => {
  it("are tagged under localhost/keypool-base with the Node.js version", () => {
    expect(baseTags(DEBIAN, "24.21.0")).toEqual({
      debian: "localhost/keypool-base/debian:bookworm-minbase",
      node: "localhost/keypool-base/node:24.21.0-bookworm-slim",
      runtime: "localhost/keypool-base/nodejs24-distroless:nonroot",
    });
  });

  it("are rebuilt for another Node.js version, the debian image is not", () => {
    const a = baseKeys(DEBIAN, "24.21.0");
    const b = baseKeys(DEBIAN, "24.22.0");
    expect(b.debian).toBe(a.debian);
    expect(b.node).not.toBe(a.node);
    expect(b.runtime).not.toBe(a.runtime);
  });

  it("are all rebuilt for another rootfs", () => {
    const a = baseKeys(DEBIAN, "24.21.0");
    const b = baseKeys({ ...DEBIAN, include: ["ca-certificates", "tzdata"] }, "24.21.0");
    for (const image of ["debian", "node", "runtime"] as const) expect(b[image]).not.toBe(a[image]);
  });
});

describe("apt-get in the extra images", () => {
  const script = aptInstallScript(["redis-server"]);

  it("keeps postinst scripts from starting daemons, and removes that guard after", () => {
    expect(script.indexOf("exit 101")).toBeLessThan(script.indexOf("apt-get install"));
    expect(script.indexOf("rm -f /usr/sbin/policy-rc.d")).toBeGreaterThan(script.indexOf("apt-get install"));
  });

  it("installs without prompts or recommends and leaves no package lists", () => {
    expect(script).toContain(
      "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server",
    );
    expect(script).toContain("rm -rf /var/lib/apt/lists/*");
  });
});

describe("names in the saved archive", () => {
  it.each([
    [
      "puts a bare name under docker.io/library",
      "keypool-operator:dev",
      "docker.io/library/keypool-operator:dev",
    ],
    ["puts a user's image under docker.io", "curlimages/curl:8.11.1", "docker.io/curlimages/curl:8.11.1"],
    [
      "keeps a name with a registry",
      "ghcr.io/keypool-dev/keypool-operator:0.1.0",
      "ghcr.io/keypool-dev/keypool-operator:0.1.0",
    ],
    ["keeps localhost names", "localhost/keypool-e2e/redis:7", "localhost/keypool-e2e/redis:7"],
    ["keeps a registry with a port", "registry:5000/app:1", "registry:5000/app:1"],
    ["adds :latest to an untagged name", "redis", "docker.io/library/redis:latest"],
    ["keeps a digest reference", "docker.io/library/redis@sha256:abc", "docker.io/library/redis@sha256:abc"],
  ])("%s", (_name, ref, expected) => {
    expect(normalizedName(ref)).toBe(expected);
  });
});

describe("sizes", () => {
  it.each([
    [999, "999 B"],
    [236_378_713, "236.4 MB"],
    [1_500_000_000, "1.5 GB"],
  ])("%d bytes is %s", (bytes, expected) => {
    expect(humanSize(bytes)).toBe(expected);
  });
});
