/**
 * The Debian root filesystem every base image starts from: `debootstrap --variant=minbase` of one
 * suite with a few packages added, then slimmed the way the official `debian:*-slim` images are
 * (no docs but copyright files, no man pages or translations, no apt lists or .deb files). Made
 * once into the cache, keyed by suite, variant and package list; the mirror is not part of the
 * key (any mirror serves the same packages).
 */
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pickMirror, readAptSources } from "./apt-sources.ts";
import { fillOnce, inputsKey } from "./cache.ts";
import { ImageError } from "./errors.ts";
import { run } from "./run.ts";

export interface RootfsSpec {
  suite: string;
  variant: string;
  /** Packages added to the variant's set (debootstrap --include). */
  include: readonly string[];
}

/** Debian 12, as the Dockerfile's default images are; ca-certificates for the runtime's CA bundle. */
export const DEBIAN: RootfsSpec = { suite: "bookworm", variant: "minbase", include: ["ca-certificates"] };

/** Bump when slimRootfs or the debootstrap arguments change what a rootfs holds. */
const ROOTFS_RECIPE = 1;

export function rootfsKey(spec: RootfsSpec): string {
  return inputsKey({ ...spec, include: [...spec.include].sort(), recipe: ROOTFS_RECIPE });
}

export function rootfsDir(cacheDir: string, spec: RootfsSpec): string {
  return join(cacheDir, "rootfs", `${spec.suite}-${spec.variant}-${rootfsKey(spec)}`);
}

export function debootstrapArgs(spec: RootfsSpec, target: string, mirror: string): string[] {
  return [
    `--variant=${spec.variant}`,
    ...(spec.include.length ? [`--include=${[...spec.include].sort().join(",")}`] : []),
    spec.suite,
    target,
    mirror,
  ];
}

/**
 * What dpkg leaves out of later installs (redis-server, curl in the e2e images), as in the
 * official slim images: documentation but copyright files, man and info pages, translations.
 */
export const SLIM_DPKG_CONFIG = `# Written by scripts/image/rootfs.ts, as in the official debian:*-slim images.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
`;

/** Folders whose contents slimRootfs empties (relative to the rootfs). */
const EMPTIED = [
  "usr/share/groff",
  "usr/share/info",
  "usr/share/linda",
  "usr/share/lintian",
  "usr/share/locale",
  "usr/share/man",
];

/**
 * Files slimRootfs deletes, keeping the folders apt and dpkg expect (lists/partial, archives/partial,
 * log/apt): the package lists and .deb files debootstrap fetched, apt's binary caches, the logs.
 */
const DELETED_FILES: readonly { dir: string; match: RegExp; recursive?: boolean }[] = [
  { dir: "var/lib/apt/lists", match: /^(?!lock$)/ },
  { dir: "var/cache/apt", match: /\.bin$/ },
  { dir: "var/cache/apt/archives", match: /\.deb$/ },
  { dir: "var/log", match: /./, recursive: true },
];

/** Applies SLIM_DPKG_CONFIG to what debootstrap already installed, and drops apt's caches and logs. */
async function slimRootfs(root: string): Promise<void> {
  await writeFile(join(root, "etc/dpkg/dpkg.cfg.d/docker-slim"), SLIM_DPKG_CONFIG);
  for (const dir of EMPTIED) {
    for (const name of await readdir(join(root, dir)).catch(() => [] as string[])) {
      await rm(join(root, dir, name), { recursive: true, force: true });
    }
  }
  for (const { dir, match, recursive } of DELETED_FILES) await deleteFiles(join(root, dir), match, recursive);
  const docs = join(root, "usr/share/doc");
  for (const pkg of await readdir(docs, { withFileTypes: true })) {
    if (!pkg.isDirectory()) continue;
    for (const name of await readdir(join(docs, pkg.name))) {
      if (name !== "copyright") await rm(join(docs, pkg.name, name), { recursive: true, force: true });
    }
  }
  // A fresh id per container, as systemd expects; debootstrap writes none in minbase, but be sure.
  await rm(join(root, "etc/machine-id"), { force: true });
}

/** Deletes the regular files (and symlinks) in `dir` whose names match; folders stay. */
async function deleteFiles(dir: string, match: RegExp, recursive = false): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) await deleteFiles(path, match, recursive);
    } else if (match.test(entry.name)) {
      await rm(path, { force: true });
    }
  }
}

/** The mirror: `--mirror` when given, else the one apt uses here for the suite. */
export async function chooseMirror(suite: string, given: string | undefined): Promise<string> {
  if (given) return given.replace(/\/+$/, "");
  const mirror = pickMirror(await readAptSources(), suite);
  if (!mirror) {
    throw new ImageError(
      "no_apt_source",
      `no enabled apt source in /etc/apt/sources.list(.d) serves "${suite} main": ` +
        "pass --mirror <url> (e.g. --mirror http://deb.debian.org/debian)",
    );
  }
  return mirror;
}

export interface EnsureRootfsOptions {
  cacheDir: string;
  spec?: RootfsSpec;
  mirror?: string | undefined;
  log: (line: string) => void;
}

/** The cached root filesystem for `spec`, made with debootstrap the first time (about 30 s to a few minutes). */
export async function ensureRootfs(options: EnsureRootfsOptions): Promise<string> {
  const spec = options.spec ?? DEBIAN;
  const dir = rootfsDir(options.cacheDir, spec);
  const built = await fillOnce(dir, async (tmp) => {
    const mirror = await chooseMirror(spec.suite, options.mirror);
    const started = Date.now();
    options.log(`debootstrap ${spec.suite} (${spec.variant}, +${spec.include.join(",")}) from ${mirror} ...`);
    await run("debootstrap", debootstrapArgs(spec, tmp, mirror));
    await slimRootfs(tmp);
    options.log(`rootfs ready in ${Math.round((Date.now() - started) / 1000)} s: ${dir}`);
  });
  if (!built) options.log(`rootfs: cached ${dir}`);
  return dir;
}
