/**
 * The last step of every generator (generate-crd, generate-monitoring): writes each generated
 * file whose committed text differs, or, with `check`, only says which are out of date.
 */
import { readFile, writeFile } from "node:fs/promises";

/** Returns false when `check` found a file out of date. */
export async function writeGenerated(
  files: Iterable<readonly [path: string, text: string]>,
  options: { check: boolean; command: string },
): Promise<boolean> {
  let stale = false;
  for (const [path, text] of files) {
    const committed = await readFile(path, "utf8").catch(() => "");
    if (committed === text) {
      console.log(`${path} is up to date`);
    } else if (options.check) {
      console.error(`${path} is out of date: run ${options.command}`);
      stale = true;
    } else {
      await writeFile(path, text);
      console.log(`wrote ${path}`);
    }
  }
  return !stale;
}
