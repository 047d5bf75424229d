/**
 * Which shared libraries a binary needs, and where they live in a root filesystem: `ldd` output
 * parsed into paths, and each path resolved symlink by symlink inside the rootfs (Debian's merged
 * /usr makes /lib64/ld-linux-x86-64.so.2 a chain of two links), so the runtime image gets the
 * files and the links that lead to them. Pure: the rootfs is read through a `readlink` callback.
 */

export interface LddResult {
  /** Absolute paths of the libraries and the loader, in ldd's order (the vDSO is not a file). */
  paths: string[];
  /** Libraries ldd could not find ("libfoo.so.1 => not found"). */
  missing: string[];
}

export function parseLdd(text: string): LddResult {
  const paths: string[] = [];
  const missing: string[] = [];
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    // "libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const arrow = /^(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(trimmed);
    if (arrow) {
      const [, name = "", where = ""] = arrow;
      if (where === "not found") missing.push(name);
      else if (where.startsWith("/")) paths.push(where);
      continue;
    }
    const direct = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(trimmed);
    if (direct?.[1]) paths.push(direct[1]);
  }
  return { paths, missing };
}

export interface Resolved {
  /** Symlinks met on the way, in order: where each is and what it points to (as written). */
  links: { path: string; target: string }[];
  /** The file the path ends at, with every symlink resolved. */
  file: string;
}

/**
 * Follows `path` inside a root filesystem. `readlink(p)` answers for an absolute path inside the
 * rootfs: the link's target, or undefined when `p` is not a symlink.
 */
export function resolveInRoot(
  path: string,
  readlink: (p: string) => string | undefined,
  maxLinks = 40,
): Resolved {
  const links: Resolved["links"] = [];
  let todo = path.split("/").filter(Boolean);
  let done: string[] = [];
  while (todo.length > 0) {
    const [part = "", ...rest] = todo;
    todo = rest;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const here = `/${[...done, part].join("/")}`;
    const target = readlink(here);
    if (target === undefined) {
      done.push(part);
      continue;
    }
    if (links.length >= maxLinks) throw new Error(`${path}: more than ${maxLinks} symlinks (a loop?)`);
    links.push({ path: here, target });
    if (target.startsWith("/")) done = [];
    todo = [...target.split("/").filter(Boolean), ...todo];
  }
  return { links, file: `/${done.join("/")}` };
}
