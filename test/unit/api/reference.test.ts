import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { readmeWithReference } from "../../../scripts/readme-reference.ts";
import { renderSpecReference } from "../../../src/api/reference.ts";

describe("the KeyPool reference in README.md", () => {
  it("is what `npm run generate:crd` writes from src/api today", async () => {
    const readme = await readFile(new URL("../../../README.md", import.meta.url), "utf8");
    expect(
      readme === (await readmeWithReference(readme)),
      "README.md's spec reference is out of date with the zod schemas in src/api: run `npm run generate:crd` and commit the result",
    ).toBe(true);
  });

  it("has a row for every spec field, with defaults and required marks", () => {
    const table = renderSpecReference();
    expect(table).toContain("| `provider` (required) |");
    expect(table).toContain("| `health.probeInterval` | string | `10m` |");
    expect(table).toContain("| `proxy.maxAttempts` | integer (1..10) | `3` |");
    expect(table).toContain("| `keys[].secretRef.name` (required) |");
  });
});
