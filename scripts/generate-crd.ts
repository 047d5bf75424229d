/**
 * npm run generate:crd — writes crds/keypool.dev_keypools.yaml from the zod schemas in src/api.
 * With --check, exits 1 when the committed file differs (what the unit test also asserts).
 */
import { readFile, writeFile } from "node:fs/promises";
import { renderCrdYaml, CRD_PATH } from "../src/api/crd-yaml.ts";

const yaml = renderCrdYaml();
if (process.argv.includes("--check")) {
  const committed = await readFile(CRD_PATH, "utf8").catch(() => "");
  if (committed !== yaml) {
    console.error(`${CRD_PATH} is out of date: run npm run generate:crd`);
    process.exit(1);
  }
  console.log(`${CRD_PATH} is up to date`);
} else {
  await writeFile(CRD_PATH, yaml);
  console.log(`wrote ${CRD_PATH}`);
}
