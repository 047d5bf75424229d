/**
 * A minimal, deterministic tar (ustar) writer: regular files and directories, mtime 0, owner
 * root. Enough for OCI image layers and image archives, byte for byte reproducible, so an
 * image's digest changes only when its content does.
 */

export interface TarEntry {
  /** Path inside the archive, no leading slash; directories end with "/". */
  path: string;
  /** File content; absent for a directory. */
  data?: Uint8Array;
  /** Permission bits (default 0o644 for files, 0o755 for directories). */
  mode?: number;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width includes the terminating NUL.
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function header(entry: TarEntry): Buffer {
  const isDir = entry.path.endsWith("/");
  const size = isDir ? 0 : (entry.data?.length ?? 0);
  const name = Buffer.from(entry.path, "utf8");
  let prefix = Buffer.alloc(0);
  let base = name;
  if (name.length > 100) {
    // ustar splits long paths at a "/" into prefix (155) and name (100).
    const cut = entry.path.lastIndexOf("/", entry.path.length - 2);
    prefix = Buffer.from(entry.path.slice(0, cut), "utf8");
    base = Buffer.from(entry.path.slice(cut + 1), "utf8");
    if (cut < 0 || prefix.length > 155 || base.length > 100)
      throw new Error(`tar path too long: ${entry.path}`);
  }
  const h = Buffer.alloc(BLOCK, 0);
  base.copy(h, 0);
  h.write(octal(entry.mode ?? (isDir ? 0o755 : 0o644), 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(0, 12), 136, "ascii"); // mtime
  h.write("        ", 148, "ascii"); // checksum placeholder: eight spaces
  h.write(isDir ? "5" : "0", 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write("root", 265, "ascii");
  h.write("root", 297, "ascii");
  prefix.copy(h, 345);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

/** The archive: each entry's header and content padded to 512 bytes, then two zero blocks. */
export function tar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(header(entry));
    if (!entry.path.endsWith("/") && entry.data && entry.data.length > 0) {
      parts.push(Buffer.from(entry.data));
      const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
      if (pad > 0) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return Buffer.concat(parts);
}

/** Reads back what tar() writes (name, mode, content): for tests and for checking an archive. */
export function untar(archive: Uint8Array): TarEntry[] {
  const buf = Buffer.from(archive);
  const entries: TarEntry[] = [];
  for (let at = 0; at + BLOCK <= buf.length;) {
    const h = buf.subarray(at, at + BLOCK);
    if (h.every((b) => b === 0)) break;
    const field = (start: number, len: number) =>
      h
        .subarray(start, start + len)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    const name = field(0, 100);
    const prefix = field(345, 155);
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const mode = parseInt(field(100, 8).trim() || "0", 8);
    const path = prefix ? `${prefix}/${name}` : name;
    at += BLOCK;
    const data = buf.subarray(at, at + size);
    entries.push(path.endsWith("/") ? { path, mode } : { path, mode, data: Uint8Array.from(data) });
    at += Math.ceil(size / BLOCK) * BLOCK;
  }
  return entries;
}
