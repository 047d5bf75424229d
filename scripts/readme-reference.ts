/** README.md with its spec reference regenerated from the schema, formatted as prettier would. */
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import { renderSpecReference, withReference } from "../src/api/reference.ts";

const README_PATH = fileURLToPath(new URL("../README.md", import.meta.url));

export async function readmeWithReference(readme: string): Promise<string> {
  const options = (await resolveConfig(README_PATH)) ?? {};
  return format(withReference(readme, renderSpecReference()), { ...options, filepath: README_PATH });
}
