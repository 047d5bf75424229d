/**
 * examples/secret-managers/external-secrets.yaml: keys from Vault through External Secrets. No
 * ESO CRD is needed to check what matters: the ExternalSecret's template labels the Secret it
 * writes keypool.dev/secret (or the operator never sees it), the KeyPool reads exactly that Secret,
 * and the file holds no key. test/integration/secret-manager-examples.test.ts dry-runs the rest.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { parseKeyPool } from "../../../src/api/parse.ts";
import { SECRET_LABEL } from "../../../src/sources/kubernetes/secrets.ts";

const FILE = fileURLToPath(
  new URL("../../../examples/secret-managers/external-secrets.yaml", import.meta.url),
);

interface ExternalSecret {
  apiVersion: string;
  kind: "ExternalSecret";
  metadata: { name: string; namespace?: string };
  spec: {
    secretStoreRef: { kind: string; name: string };
    refreshInterval?: string;
    target: { name: string; template?: { metadata?: { labels?: Record<string, string> } } };
    data?: unknown[];
    dataFrom?: unknown[];
  };
}
type Doc = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } };

const docs = parseAllDocuments(readFileSync(FILE, "utf8"));
const list = Array.isArray(docs) ? docs : [docs];
const objects = list.map((doc) => doc.toJS() as Doc);
const externalSecrets = objects.filter((o): o is ExternalSecret => o.kind === "ExternalSecret");
const pools = objects.filter((o) => o.kind === "KeyPool");

describe("examples/secret-managers/external-secrets.yaml", () => {
  it("is valid multi-document YAML naming no namespace", () => {
    expect(list.flatMap((doc) => doc.errors.map((e) => e.message))).toEqual([]);
    expect(objects.map((o) => o.kind)).toEqual([
      "ServiceAccount",
      "SecretStore",
      "ExternalSecret",
      "KeyPool",
    ]);
    expect(objects.filter((o) => o.metadata?.namespace !== undefined)).toEqual([]);
  });

  it("uses ESO's stable API, external-secrets.io/v1 (v1beta1 is no longer served since ESO 0.17)", () => {
    for (const o of objects.filter((o) => o.kind === "ExternalSecret" || o.kind === "SecretStore"))
      expect(o.apiVersion).toBe("external-secrets.io/v1");
  });

  it(`labels the Secret ESO writes ${SECRET_LABEL} in target.template, where a refresh keeps it`, () => {
    expect(externalSecrets).toHaveLength(1);
    for (const es of externalSecrets)
      expect(es.spec.target.template?.metadata?.labels?.[SECRET_LABEL]).toBe("true");
  });

  it("reads its keys from a SecretStore in the same file", () => {
    const stores = objects.filter((o) => o.kind === "SecretStore").map((o) => o.metadata?.name);
    for (const es of externalSecrets) {
      expect(es.spec.secretStoreRef.kind).toBe("SecretStore");
      expect(stores).toContain(es.spec.secretStoreRef.name);
      expect((es.spec.data?.length ?? 0) + (es.spec.dataFrom?.length ?? 0)).toBeGreaterThan(0);
    }
  });

  it("has a KeyPool the runtime parser accepts, reading the Secret the ExternalSecret writes", () => {
    expect(pools).toHaveLength(1);
    const parsed = parseKeyPool(pools[0]);
    if (!parsed.ok) throw new Error(parsed.message);
    const targets = externalSecrets.map((es) => es.spec.target.name);
    expect(parsed.value.spec.keys?.map((k) => k.secretRef.name)).toEqual(targets);
  });

  it("holds no Secret and nothing shaped like a key: the manager keeps them", () => {
    expect(objects.filter((o) => o.kind === "Secret")).toEqual([]);
    expect(readFileSync(FILE, "utf8")).not.toMatch(/sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}/);
  });
});
