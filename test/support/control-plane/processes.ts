import { readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the temp dirs named `<prefix>…` whose owning process (the pid in their `owner.pid`) is
 * gone: it was killed before it could clean up.
 */
export async function removeStaleTempDirs(prefix: string): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((name) => name.startsWith(prefix))
      .map(async (name) => {
        const dir = join(tmpdir(), name);
        const owner = Number(await readFile(join(dir, "owner.pid"), "utf8").catch(() => "0"));
        if (owner && !isAlive(owner)) await rm(dir, { recursive: true, force: true });
      }),
  );
}
