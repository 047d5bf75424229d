/**
 * Where the image scripts keep what they fetch (root filesystems, the Node.js distribution):
 * `<project cache root>/image/`, outside the repository, the same root as the control-plane
 * binaries. Each entry's name carries a hash of its inputs, so changing an input builds a new
 * entry instead of reusing a stale one; entries appear whole (filled under a temporary name,
 * then renamed) so an interrupted run leaves nothing that looks finished.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { cacheRoot, type Env } from "../../test/support/control-plane/binaries.ts";
import { ImageError } from "./errors.ts";

export type { Env };

/** `$KEYPOOL_CACHE_DIR` or `$XDG_CACHE_HOME/keypool-operator` or `~/.cache/keypool-operator`, then `image/`. */
export function imageCacheDir(env: Env = process.env): string {
  return join(cacheRoot(env), "image");
}

/** JSON with object keys sorted at every level, so equal inputs give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A short hash of the inputs (16 hex digits of SHA-256 over their canonical JSON). */
export function inputsKey(inputs: unknown): string {
  return createHash("sha256").update(canonicalJson(inputs)).digest("hex").slice(0, 16);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Makes `dir` once: when it is missing, `fill` writes a temporary sibling, which is renamed to
 * `dir` when `fill` succeeds and removed when it fails. Leftovers of interrupted runs are removed
 * first. Returns whether it was built now (false: it was already there).
 */
export async function fillOnce(dir: string, fill: (tmp: string) => Promise<void>): Promise<boolean> {
  if (await exists(dir)) return false;
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const prefix = `${basename(dir)}.partial-`;
  for (const name of await readdir(parent)) {
    if (name.startsWith(prefix)) await removeTree(join(parent, name));
  }
  const tmp = join(parent, `${prefix}${process.pid}`);
  try {
    await mkdir(tmp);
    await fill(tmp);
    await rename(tmp, dir);
    return true;
  } catch (err) {
    await removeTree(tmp);
    throw err;
  }
}

/** The mount points at or under `dir`, from a /proc/mounts text (octal escapes such as `\040` decoded). */
export function mountsUnder(procMounts: string, dir: string): string[] {
  const decode = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return procMounts
    .split("\n")
    .map((line) => decode(line.split(" ")[1] ?? ""))
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}

/**
 * rm -rf, but never through a mount: debootstrap mounts proc and sys inside its target, and a run
 * killed at the wrong moment can leave them there. Removing through them would try to delete the
 * host's /sys, so this stops and says what to unmount instead.
 */
async function removeTree(dir: string): Promise<void> {
  const mounts = mountsUnder(await readFile("/proc/mounts", "utf8").catch(() => ""), dir);
  if (mounts.length > 0) {
    throw new ImageError(
      "command_failed",
      `${dir} still has mounts (${mounts.join(", ")}) from an interrupted run: unmount them ` +
        `(umount ${mounts.toReversed().join(" ")}) and delete ${dir}`,
    );
  }
  await rm(dir, { recursive: true, force: true });
}
