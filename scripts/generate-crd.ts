/**
 * npm run generate:crd — writes every file generated from the project's sources:
 * - crds/keypool.dev_keypools.yaml from the zod schemas in src/api, and the same CRD into the
 *   Helm chart's crds/ (charts/keypool-operator/crds/, where Helm installs CRDs from);
 * - the chart's Chart.yaml `version` and `appVersion`, from package.json's version;
 * - README.md's generated tables: the spec reference from the same schema, the configuration
 *   table from the flag schemas in src/config.ts.
 * With --check, exits 1 when a committed file differs (what the unit tests also assert).
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderCrdYaml, CRD_PATH } from "../src/api/crd-yaml.ts";
import { readmeWithReference } from "./readme-reference.ts";
import { writeGenerated } from "./write-generated.ts";

const README_PATH = fileURLToPath(new URL("../README.md", import.meta.url));
const PACKAGE_JSON_PATH = fileURLToPath(new URL("../package.json", import.meta.url));
export const CHART_DIR = fileURLToPath(new URL("../charts/keypool-operator/", import.meta.url));
export const CHART_YAML_PATH = `${CHART_DIR}Chart.yaml`;
export const CHART_CRD_PATH = `${CHART_DIR}crds/keypool.dev_keypools.yaml`;

/** package.json's version: the operator's, the image's and the chart's. */
export async function packageVersion(): Promise<string> {
  const { version } = JSON.parse(await readFile(PACKAGE_JSON_PATH, "utf8")) as { version?: string };
  if (!version) throw new Error(`${PACKAGE_JSON_PATH} has no version`);
  return version;
}

/**
 * Chart.yaml with `version` and `appVersion` set to `version`, everything else as it is. Throws
 * when either line is missing, rather than writing a chart Helm would refuse.
 */
export function chartYamlWithVersion(chartYaml: string, version: string): string {
  let found = 0;
  const out = chartYaml.replace(/^(version|appVersion):.*$/gm, (_line, field: string) => {
    found++;
    return field === "version" ? `version: ${version}` : `appVersion: "${version}"`;
  });
  if (found !== 2)
    throw new Error("Chart.yaml needs one `version:` and one `appVersion:` line at the top level");
  return out;
}

/** Every generated file as [path, the text it should hold]. */
export async function generatedFiles(): Promise<Array<[string, string]>> {
  const crd = renderCrdYaml();
  return [
    [CRD_PATH, crd],
    [CHART_CRD_PATH, crd],
    [CHART_YAML_PATH, chartYamlWithVersion(await readFile(CHART_YAML_PATH, "utf8"), await packageVersion())],
    [README_PATH, await readmeWithReference(await readFile(README_PATH, "utf8"))],
  ];
}

async function main(check: boolean): Promise<boolean> {
  return writeGenerated(await generatedFiles(), { check, command: "npm run generate:crd" });
}

if (import.meta.main && !(await main(process.argv.includes("--check")))) process.exit(1);
