/**
 * README.md with its generated parts regenerated, formatted as prettier would: the KeyPool spec
 * reference (from the zod schemas in src/api) and the configuration table (from the flag schemas
 * in src/config.ts).
 */
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import { renderSpecReference, withReference } from "../src/api/reference.ts";
import { renderConfigReference, withConfigReference } from "../src/config-reference.ts";

const README_PATH = fileURLToPath(new URL("../README.md", import.meta.url));

export async function readmeWithReference(readme: string): Promise<string> {
  const options = (await resolveConfig(README_PATH)) ?? {};
  const generated = withConfigReference(
    withReference(readme, renderSpecReference()),
    renderConfigReference(),
  );
  return format(generated, { ...options, filepath: README_PATH });
}
