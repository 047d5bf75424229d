/**
 * The three local base images, made from the cached rootfs and Node.js distribution, never pulled:
 *
 * - debian: the rootfs as it is (what the node, redis and curl images start from);
 * - node: debian + Node.js and its bundled npm in /usr/local, user `node` 1000, as the official
 *   node:<version>-bookworm-slim (the Dockerfile's build stages run `npm ci` and `npx tsc` in it);
 * - runtime: what the Dockerfile's final stage needs from gcr.io/distroless/nodejs24-debian12:nonroot:
 *   /nodejs/bin/node, the libraries ldd says it loads, CA certificates, users root/nobody/nonroot
 *   (65532) and nothing else (no shell, no package manager).
 *
 * Each image carries a hash of its inputs (INPUTS_LABEL); one that is up to date is not rebuilt,
 * and the rootfs and Node.js download are only fetched when an image has to be made.
 */
import { readlinkSync } from "node:fs";
import { chmod, chown, cp, mkdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { copyTree, INPUTS_LABEL, withWorkingContainer } from "./buildah.ts";
import { inputsKey } from "./cache.ts";
import { ImageError } from "./errors.ts";
import { addUser, distrolessEtc, NONROOT, type User } from "./etc-files.ts";
import { parseLdd, resolveInRoot } from "./ldd.ts";
import { ensureNodeDist, type NodeDist } from "./node-dist.ts";
import { isCurrent, runImage } from "./podman.ts";
import { DEBIAN, ensureRootfs, rootfsKey, type RootfsSpec } from "./rootfs.ts";

/** Bump one when the code that makes that image changes what it holds. */
const RECIPES = { debian: 1, node: 1, runtime: 2 } as const;

/** Commit time of the base images (and of their files): fixed, so equal inputs give equal layers. */
const EPOCH = 0;

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The official node image's user. */
export const NODE_USER: User = { name: "node", uid: 1000, gid: 1000, home: "/home/node", shell: "/bin/bash" };

export function baseTags(spec: RootfsSpec, nodeVersion: string) {
  const major = nodeVersion.split(".")[0] ?? "";
  return {
    debian: `localhost/keypool-base/debian:${spec.suite}-${spec.variant}`,
    node: `localhost/keypool-base/node:${nodeVersion}-${spec.suite}-slim`,
    runtime: `localhost/keypool-base/nodejs${major}-distroless:nonroot`,
  };
}

export function baseKeys(spec: RootfsSpec, nodeVersion: string) {
  const rootfs = rootfsKey(spec);
  const debian = inputsKey({ rootfs, recipe: RECIPES.debian });
  return {
    debian,
    // The npm version follows from the Node.js version (the one bundled with it).
    node: inputsKey({ debian, node: nodeVersion, recipe: RECIPES.node }),
    runtime: inputsKey({ rootfs, node: nodeVersion, recipe: RECIPES.runtime }),
  };
}

export interface BaseContext {
  cacheDir: string;
  nodeVersion: string;
  mirror?: string | undefined;
  spec?: RootfsSpec;
  log: (line: string) => void;
}

export interface Bases {
  debian: string;
  node: string;
  runtime: string;
  /** Input hashes, for images made on top of these. */
  keys: ReturnType<typeof baseKeys>;
}

/** Each base image, made when missing or out of date; the rootfs and Node.js only fetched if needed. */
export async function ensureBases(ctx: BaseContext): Promise<Bases> {
  const spec = ctx.spec ?? DEBIAN;
  const tags = baseTags(spec, ctx.nodeVersion);
  const keys = baseKeys(spec, ctx.nodeVersion);
  const rootfs = once(() => ensureRootfs({ cacheDir: ctx.cacheDir, spec, mirror: ctx.mirror, log: ctx.log }));
  const dist = once(() =>
    ensureNodeDist({ cacheDir: ctx.cacheDir, nodeVersion: ctx.nodeVersion, log: ctx.log }),
  );

  await ensureImage(ctx, tags.debian, keys.debian, async () =>
    makeDebian(tags.debian, keys.debian, await rootfs()),
  );
  await ensureImage(ctx, tags.node, keys.node, async () =>
    makeNode(tags.debian, tags.node, keys.node, await dist(), ctx.log),
  );
  await ensureImage(ctx, tags.runtime, keys.runtime, async () => {
    const libraries = await nodeLibraries(tags.node);
    await makeRuntime(tags.runtime, keys.runtime, await rootfs(), await dist(), libraries, ctx.log);
  });
  return { ...tags, keys };
}

/** Makes `tag` with `make` unless the store has it with inputs hashing to `key`. */
export async function ensureImage(
  ctx: { log: (line: string) => void },
  tag: string,
  key: string,
  make: () => Promise<void>,
): Promise<void> {
  if (await isCurrent(tag, key)) {
    ctx.log(`${tag}: up to date`);
    return;
  }
  const started = Date.now();
  ctx.log(`${tag}: building ...`);
  await make();
  ctx.log(`${tag}: built in ${Math.round((Date.now() - started) / 1000)} s`);
}

async function makeDebian(tag: string, key: string, rootfs: string): Promise<void> {
  await withWorkingContainer("scratch", async (c) => {
    // /dev, /proc and /sys are the runtime's to fill; debootstrap left device nodes in /dev.
    await copyTree(rootfs, await c.mount(), ["./dev/*", "./proc/*", "./sys/*"]);
    await c.config({ env: { PATH }, cmd: ["bash"], labels: { [INPUTS_LABEL]: key } });
    await c.commit(tag, { timestamp: EPOCH });
  });
}

async function makeNode(
  from: string,
  tag: string,
  key: string,
  dist: NodeDist,
  log: (line: string) => void,
): Promise<void> {
  await withWorkingContainer(from, async (c) => {
    const root = await c.mount();
    // As the official image lays it out: node in /usr/local/bin, npm in /usr/local/lib/node_modules.
    await mkdir(join(root, "usr/local/bin"), { recursive: true });
    await cp(join(dist.nodeDir, "bin/node"), join(root, "usr/local/bin/node"));
    await chmod(join(root, "usr/local/bin/node"), 0o755);
    await cp(dist.npmDir, join(root, "usr/local/lib/node_modules/npm"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    for (const [bin, script] of [
      ["npm", "npm-cli.js"],
      ["npx", "npx-cli.js"],
    ] as const) {
      await symlink(`../lib/node_modules/npm/bin/${script}`, join(root, "usr/local/bin", bin));
    }
    await addAccount(root, NODE_USER);
    await c.config({
      env: { NODE_VERSION: dist.nodeVersion, NPM_VERSION: dist.npmVersion },
      cmd: ["node"],
      labels: { [INPUTS_LABEL]: key },
    });
    await c.commit(tag, { timestamp: EPOCH });
  });
  const versions = await runImage(tag, {
    entrypoint: "",
    args: ["sh", "-c", "node --version && npm --version"],
  });
  if (versions.code !== 0) {
    throw new ImageError(
      "command_failed",
      `${tag} cannot run node and npm:\n${versions.stderr}${versions.stdout}`,
    );
  }
  const [node, npm] = versions.stdout.trim().split("\n");
  if (node !== `v${dist.nodeVersion}` || npm !== dist.npmVersion) {
    throw new ImageError(
      "command_failed",
      `${tag} runs node ${node} and npm ${npm}, not ${dist.nodeVersion}/${dist.npmVersion}`,
    );
  }
  log(`${tag}: node ${node}, npm ${npm}`);
}

/** Adds `user` to the image's account files and makes its home (owned by it, mode 755). */
export async function addAccount(root: string, user: User): Promise<void> {
  const names = ["passwd", "group", "shadow", "gshadow"] as const;
  const read = async (name: string) => readFile(join(root, "etc", name), "utf8").catch(() => "");
  const [passwd, group, shadow, gshadow] = await Promise.all(names.map(read));
  const files = addUser(
    { passwd: passwd ?? "", group: group ?? "", shadow: shadow ?? "", gshadow: gshadow ?? "" },
    user,
  );
  for (const name of names) await writeFile(join(root, "etc", name), files[name]);
  await chmod(join(root, "etc/shadow"), 0o640);
  await chmod(join(root, "etc/gshadow"), 0o640);
  await mkdir(join(root, user.home.slice(1)), { recursive: true, mode: 0o755 });
  await chown(join(root, user.home.slice(1)), user.uid, user.gid);
}

/** The shared libraries node loads, as ldd in the node image (same rootfs) lists them. */
async function nodeLibraries(nodeImage: string): Promise<string[]> {
  const ldd = await runImage(nodeImage, { entrypoint: "ldd", args: ["/usr/local/bin/node"] });
  if (ldd.code !== 0)
    throw new ImageError("command_failed", `ldd /usr/local/bin/node in ${nodeImage} failed:\n${ldd.stderr}`);
  const { paths, missing } = parseLdd(ldd.stdout);
  if (missing.length > 0) {
    throw new ImageError(
      "library_missing",
      `node needs ${missing.join(", ")}, which the rootfs lacks: add its package to DEBIAN.include`,
    );
  }
  return paths;
}

/** Copyright files shipped beside the libraries and certificates the runtime image carries. */
const RUNTIME_COPYRIGHTS = ["libc6", "libgcc-s1", "libstdc++6", "ca-certificates", "base-files"];

async function makeRuntime(
  tag: string,
  key: string,
  rootfs: string,
  dist: NodeDist,
  libraries: readonly string[],
  log: (line: string) => void,
): Promise<void> {
  await withWorkingContainer("scratch", async (c) => {
    const root = await c.mount();
    const place = placer(rootfs, root);
    for (const lib of libraries) await place(lib);
    await place("/etc/ssl/certs/ca-certificates.crt");
    for (const pkg of RUNTIME_COPYRIGHTS) await place(`/usr/share/doc/${pkg}/copyright`, { optional: true });
    // os-release is a link to /usr/lib/os-release in Debian; one plain file is enough here.
    await mkdir(join(root, "etc"), { recursive: true });
    await cp(join(rootfs, "usr/lib/os-release"), join(root, "etc/os-release"));
    for (const [path, text] of Object.entries(distrolessEtc())) await writeFile(join(root, path), text);
    await mkdir(join(root, "nodejs/bin"), { recursive: true });
    await cp(join(dist.nodeDir, "bin/node"), join(root, "nodejs/bin/node"));
    await chmod(join(root, "nodejs/bin/node"), 0o755);
    await cp(join(dist.nodeDir, "LICENSE"), join(root, "nodejs/LICENSE"));
    await mkdir(join(root, "tmp"), { mode: 0o1777 });
    await chmod(join(root, "tmp"), 0o1777);
    await mkdir(join(root, "root"), { mode: 0o700 });
    await mkdir(join(root, "home"), { mode: 0o755 });
    await mkdir(join(root, "home/nonroot"), { mode: 0o700 });
    await chown(join(root, "home/nonroot"), NONROOT.uid, NONROOT.gid);
    await c.config({
      user: `${NONROOT.uid}:${NONROOT.gid}`,
      env: { PATH, SSL_CERT_FILE: "/etc/ssl/certs/ca-certificates.crt" },
      workingDir: NONROOT.home,
      entrypoint: ["/nodejs/bin/node"],
      labels: { [INPUTS_LABEL]: key },
    });
    await c.commit(tag, { timestamp: EPOCH });
  });
  const version = await runImage(tag, { args: ["-p", "process.version + ' uid ' + process.getuid()"] });
  if (version.code !== 0)
    throw new ImageError("command_failed", `${tag} cannot run node:\n${version.stderr}`);
  log(`${tag}: node ${version.stdout.trim()}`);
}

/**
 * Copies a file from the rootfs into the image at the same path, with the symlinks on the way
 * (e.g. /lib64 -> usr/lib64, then usr/lib64/ld-linux-x86-64.so.2 -> ../lib/...).
 */
function placer(rootfs: string, image: string) {
  const readInRootfs = (p: string) => {
    try {
      return readlinkSync(join(rootfs, p));
    } catch {
      return undefined;
    }
  };
  return async (path: string, options: { optional?: boolean } = {}) => {
    const { links, file } = resolveInRoot(path, readInRootfs);
    for (const link of links) {
      const at = join(image, link.path);
      const existing = await readlink(at).catch(() => undefined);
      if (existing === link.target) continue;
      await mkdir(dirname(at), { recursive: true });
      await symlink(link.target, at);
    }
    await mkdir(dirname(join(image, file)), { recursive: true });
    try {
      await cp(join(rootfs, file), join(image, file), { preserveTimestamps: true });
    } catch (err) {
      if (!options.optional) throw err;
    }
  };
}

function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}
