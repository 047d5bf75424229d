/**
 * npm run generate:crd — writes crds/keypool.dev_keypools.yaml from the zod schemas in src/api,
 * and README.md's generated tables: the spec reference from the same schema, the configuration
 * table from the flag schemas in src/config.ts. With --check, exits 1 when a committed file
 * differs (what the unit tests also assert).
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderCrdYaml, CRD_PATH } from "../src/api/crd-yaml.ts";
import { readmeWithReference } from "./readme-reference.ts";

const README_PATH = fileURLToPath(new URL("../README.md", import.meta.url));
const outputs: Array<[string, string]> = [
  [CRD_PATH, renderCrdYaml()],
  [README_PATH, await readmeWithReference(await readFile(README_PATH, "utf8"))],
];
let stale = false;
for (const [path, text] of outputs) {
  const committed = await readFile(path, "utf8").catch(() => "");
  if (committed === text) {
    console.log(`${path} is up to date`);
  } else if (process.argv.includes("--check")) {
    console.error(`${path} is out of date: run npm run generate:crd`);
    stale = true;
  } else {
    await writeFile(path, text);
    console.log(`wrote ${path}`);
  }
}
if (stale) process.exit(1);
