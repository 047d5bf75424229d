/**
 * examples/secret-managers/: what the test control plane can check without the secret manager's
 * own CRDs. Every object of a kind it serves (the KeyPool, the ServiceAccount) passes a
 * server-side dry-run with the KeyPool CRD installed; the ESO objects are checked by
 * test/unit/api/secret-manager-examples.test.ts.
 */
import { readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, stringify } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { installKeyPoolCrd } from "../support/crd.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";

const DIR = fileURLToPath(new URL("../../examples/secret-managers/", import.meta.url));
/** API groups the test control plane does not serve: the secret managers' own. */
const UNSERVED = /^(external-secrets\.io|bitnami\.com)\//;

let ns: string;

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(adminKubeConfig(), "secret-managers");
});

const files = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

describe("examples/secret-managers/ passes a server-side dry-run", () => {
  it("has examples", () => {
    expect(files).toContain("external-secrets.yaml");
  });

  it.each(files)("%s: its KeyPool and core objects", async (file) => {
    const docs = parseAllDocuments(await readFile(`${DIR}${file}`, "utf8"));
    const objects = (Array.isArray(docs) ? docs : [docs])
      .map((doc) => doc.toJS() as { apiVersion: string; kind: string })
      .filter((o) => !UNSERVED.test(o.apiVersion));
    expect(objects.map((o) => o.kind)).toContain("KeyPool");
    const input = objects.map((o) => stringify(o)).join("---\n");
    const res = await kubectl(["apply", "--dry-run=server", "-n", ns, "-f", "-"], { input });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^keypool\.keypool\.dev\/\S+ created \(server dry run\)$/m);
  });
});
