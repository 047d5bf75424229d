/**
 * The manifests in examples/ are documentation users copy: each must be valid, self-contained
 * (its KeyPool takes keys only from the Secrets in the same file) and safe to publish.
 * test/integration/crd.test.ts applies them to a real API server as well.
 */
import { matchesSelector } from "../../../src/sources/kubernetes/selector.ts";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { parseKeyPool, type KeyPool } from "../../../src/api/parse.ts";

const DIR = fileURLToPath(new URL("../../../examples/", import.meta.url));
const FILES = readdirSync(DIR)
  .filter((name) => name.endsWith(".yaml"))
  .sort();

interface Secret {
  apiVersion: string;
  kind: "Secret";
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  type?: string;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
type Doc = { kind?: string; metadata?: { name?: string; namespace?: string } };

function load(file: string) {
  const docs = parseAllDocuments(readFileSync(`${DIR}${file}`, "utf8"));
  const list = Array.isArray(docs) ? docs : [docs];
  const errors = list.flatMap((doc) => doc.errors.map((err) => err.message));
  const objects = list.map((doc) => doc.toJS() as Doc);
  const secrets = objects.filter((o): o is Secret => o.kind === "Secret");
  const pools = objects.filter((o) => o.kind === "KeyPool");
  return { errors, objects, secrets, pools };
}

function parsedPool(file: string): KeyPool {
  const [object] = load(file).pools;
  const result = parseKeyPool(object);
  if (!result.ok) throw new Error(`${file}: ${result.message}`);
  return result.value;
}

/** Entry names → values of a Secret, whether written as stringData or base64 data. */
function entries(secret: Secret): Record<string, string> {
  const data = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  );
  return { ...data, ...secret.stringData };
}

/** Shapes of real provider keys: a placeholder must match none of them. */
const REAL_KEY_SHAPES = [
  /sk-(proj-|svcacct-)?[A-Za-z0-9_-]{20,}T3BlbkFJ/, // OpenAI
  /sk-proj-[A-Za-z0-9_-]{40,}/, // OpenAI project keys
  /sk-ant-(api|admin)\d\d-[A-Za-z0-9_-]{20,}/, // Anthropic
  /AIza[0-9A-Za-z_-]{35}/, // Google
];

/** The files that define a pool (client.yaml, say, defines who may use one). */
const POOL_FILES = FILES.filter((file) => load(file).pools.length > 0);

describe.each(POOL_FILES)("examples/%s", (file) => {
  const { errors, objects, secrets, pools } = load(file);

  it("is valid multi-document YAML", () => {
    expect(errors).toEqual([]);
    expect(objects.length).toBeGreaterThanOrEqual(2);
  });

  it("holds its ConfigMaps and Secrets first and then one KeyPool", () => {
    const configMaps = objects.filter((o) => o.kind === "ConfigMap");
    expect(objects.map((o) => o.kind)).toEqual([
      ...configMaps.map(() => "ConfigMap"),
      ...secrets.map(() => "Secret"),
      "KeyPool",
    ]);
  });

  it("names no namespace, so `kubectl apply -n` puts it anywhere", () => {
    expect(objects.filter((o) => o.metadata?.namespace !== undefined).map((o) => o.metadata?.name)).toEqual(
      [],
    );
  });

  it('labels every Secret keypool.dev/secret: "true", or the operator would never see it', () => {
    for (const secret of secrets)
      expect(secret.metadata.labels?.["keypool.dev/secret"], secret.metadata.name).toBe("true");
  });

  it("holds a KeyPool that the runtime parser accepts", () => {
    expect(parseKeyPool(pools[0])).toMatchObject({ ok: true });
  });

  it("takes keys only from Secrets and entries that the file itself creates", () => {
    const { spec } = parsedPool(file);
    for (const { secretRef } of spec.keys ?? []) {
      const secret = secrets.find((s) => s.metadata.name === secretRef.name);
      expect(secret, `no Secret ${secretRef.name} in ${file}`).toBeDefined();
      if (secret && secretRef.key) expect(Object.keys(entries(secret))).toContain(secretRef.key);
    }
    if (spec.secretSelector) {
      const selector = spec.secretSelector;
      expect(secrets.filter((s) => matchesSelector(s.metadata.labels, selector)).length).toBeGreaterThan(0);
    }
  });

  it("uses placeholders that cannot be mistaken for real keys (or webhooks)", () => {
    const { spec } = parsedPool(file);
    const keySecrets = secrets.filter(
      (s) =>
        spec.keys?.some((k) => k.secretRef.name === s.metadata.name) ||
        (spec.secretSelector && matchesSelector(s.metadata.labels, spec.secretSelector)),
    );
    for (const other of secrets.filter((s) => !keySecrets.includes(s)))
      for (const value of Object.values(entries(other))) expect(value).toMatch(/example/);
    const values = keySecrets.flatMap((s) => Object.values(entries(s))).flatMap((v) => v.split(/[\n,]/));
    const keys = values.map((v) => v.trim()).filter(Boolean);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toMatch(/example/);
      expect(key).toMatch(/not-real|not-a-real-key/);
      for (const shape of REAL_KEY_SHAPES) expect(key).not.toMatch(shape);
    }
  });
});

describe("the examples together", () => {
  const pools = POOL_FILES.map(parsedPool);

  it("cover openai, anthropic, google, mistral and an openai-compatible endpoint", () => {
    expect([...new Set(pools.map((p) => p.spec.provider))].sort()).toEqual([
      "anthropic",
      "google",
      "mistral",
      "openai",
      "openai-compatible",
    ]);
  });

  it("show every strategy", () => {
    expect(new Set(pools.map((p) => p.spec.strategy))).toEqual(
      new Set(["RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted", "LowestCost"]),
    );
  });

  it("have distinct pool and Secret names, so all of them fit in one namespace", () => {
    const names = FILES.flatMap((file) => load(file).objects.map((o) => `${o.kind}/${o.metadata?.name}`));
    expect(new Set(names).size).toBe(names.length);
  });

  it("fall back only to pools that are among the examples", () => {
    const names = pools.map((p) => p.metadata.name);
    for (const pool of pools) {
      if (pool.spec.fallbackPoolRef) expect(names).toContain(pool.spec.fallbackPoolRef.name);
    }
  });

  it("are all listed in examples/README.md", () => {
    const readme = readFileSync(`${DIR}README.md`, "utf8");
    for (const file of FILES) expect(readme).toContain(`(${file})`);
  });
});
