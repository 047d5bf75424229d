/**
 * The generated KeyPool CRD on a real API server: it installs, refuses invalid KeyPools at
 * `kubectl apply` with a message naming the field and the reason, accepts every example, fills
 * in the spec defaults the runtime parser also fills, and prints the columns `kubectl get kp`
 * promises. What the server stores, the runtime parser accepts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import { parseKeyPool } from "../../src/api/parse.ts";
import { installKeyPoolCrd, keyPoolRef } from "../support/crd.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";

const EXAMPLES_DIR = fileURLToPath(new URL("../../examples/", import.meta.url));
const EXAMPLES = readdirSync(EXAMPLES_DIR)
  .filter((name) => name.endsWith(".yaml"))
  .sort();

const kc = adminKubeConfig();
const objects = kc.makeApiClient(CustomObjectsApi);
let namespace: string;

beforeAll(async () => {
  await installKeyPoolCrd();
  namespace = await createTestNamespace(kc, "crd");
});

function keyPool(name: string, spec: Record<string, unknown>) {
  return { apiVersion: "keypool.dev/v1alpha1", kind: "KeyPool", metadata: { name }, spec };
}

/** `kubectl apply -f -` of one object in the test namespace. */
function apply(object: object, ns = namespace) {
  return kubectl(["apply", "-n", ns, "-f", "-"], { input: stringify(object) });
}

async function readKeyPool(ns: string, name: string): Promise<unknown> {
  return objects.getNamespacedCustomObject({ ...keyPoolRef(ns), name });
}

const keys = [{ secretRef: { name: "openai-keys" } }];

interface RefusedCase {
  name: string;
  spec: Record<string, unknown>;
  /** What kubectl prints on stderr, in parts. */
  stderr: string[];
  /** The field the runtime parser names for the same spec; undefined when it drops the input. */
  field: string | undefined;
}

const refused: RefusedCase[] = [
  {
    name: "an unknown strategy, listing the supported ones",
    spec: { provider: "openai", strategy: "Random", keys },
    stderr: [
      'spec.strategy: Unsupported value: "Random": supported values: "RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted"',
    ],
    field: "spec.strategy",
  },
  {
    name: "a negative limit, saying the lower bound",
    spec: {
      provider: "openai",
      keys: [{ secretRef: { name: "openai-keys" }, limits: { requestsPerMinute: -5 } }],
    },
    stderr: [
      "spec.keys[0].limits.requestsPerMinute: Invalid value: -5",
      "should be greater than or equal to 1",
    ],
    field: "spec.keys[0].limits.requestsPerMinute",
  },
  {
    name: "a malformed duration, showing the expected form",
    spec: { provider: "openai", keys, health: { probeInterval: "soon" } },
    stderr: [
      'spec.health.probeInterval: Invalid value: "soon"',
      "should match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'",
    ],
    field: "spec.health.probeInterval",
  },
  {
    name: "a duration below its minimum (a CEL rule)",
    spec: { provider: "openai", keys, health: { probeInterval: "1s" } },
    stderr: ["spec.health.probeInterval", "must be at least 10s"],
    field: "spec.health.probeInterval",
  },
  {
    name: "a proxy maxWait above its maximum (a CEL rule)",
    spec: { provider: "openai", keys, proxy: { maxWait: "10m" } },
    stderr: ["spec.proxy.maxWait", "must be at most 5m"],
    field: "spec.proxy.maxWait",
  },
  {
    name: "zero proxy attempts",
    spec: { provider: "openai", keys, proxy: { maxAttempts: 0 } },
    stderr: ["spec.proxy.maxAttempts", "should be greater than or equal to 1"],
    field: "spec.proxy.maxAttempts",
  },
  {
    name: "a pool with neither keys nor a secretSelector (a CEL rule)",
    spec: { provider: "openai" },
    stderr: [
      "spec: Required value: set spec.keys or spec.secretSelector: a pool needs somewhere to take keys from",
    ],
    field: "spec",
  },
  {
    name: "a pool with an empty list of keys and no secretSelector (a CEL rule)",
    spec: { provider: "anthropic", keys: [] },
    stderr: ["spec: Required value: set spec.keys or spec.secretSelector"],
    field: "spec",
  },
  {
    name: "an openai-compatible pool without a baseURL (a CEL rule)",
    spec: { provider: "openai-compatible", keys },
    stderr: [
      "spec.baseURL: Required value: provider openai-compatible needs spec.baseURL, the root of the endpoint's OpenAI-style API",
    ],
    field: "spec.baseURL",
  },
  {
    name: "a baseURL that is not http or https (a CEL rule)",
    spec: { provider: "openai-compatible", baseURL: "ftp://models.example.com/v1", keys },
    stderr: ["spec.baseURL", "must be an http or https URL"],
    field: "spec.baseURL",
  },
  {
    name: "a selector expression In without values (a CEL rule)",
    spec: { provider: "google", secretSelector: { matchExpressions: [{ key: "team", operator: "In" }] } },
    stderr: [
      "spec.secretSelector.matchExpressions[0].values",
      "In and NotIn need at least one value; Exists and DoesNotExist take none",
    ],
    field: "spec.secretSelector.matchExpressions[0].values",
  },
  {
    name: "a quota group declared twice",
    spec: { provider: "openai", keys, quotaGroups: [{ name: "org-main" }, { name: "org-main" }] },
    stderr: ['spec.quotaGroups[1]: Duplicate value: {"name":"org-main"}'],
    field: "spec.quotaGroups[1].name",
  },
  {
    name: "forecast.balance with the LowestCost strategy (a CEL rule)",
    spec: { provider: "openai", keys, strategy: "LowestCost", forecast: { balance: true } },
    stderr: ["spec.forecast.balance", "LowestCost concentrates it on the cheapest key: choose one"],
    field: "spec.forecast.balance",
  },
  {
    name: "two webhooks of the same name (the list is a map by name)",
    spec: {
      provider: "openai",
      keys,
      notifications: {
        webhooks: [
          { name: "ops", urlSecretRef: { name: "hooks", key: "a" } },
          { name: "ops", urlSecretRef: { name: "hooks", key: "b" } },
        ],
      },
    },
    stderr: ['spec.notifications.webhooks[1]: Duplicate value: {"name":"ops"}'],
    field: "spec.notifications.webhooks[1].name",
  },
  {
    name: "a model priced twice (the list is a map by model)",
    spec: {
      provider: "openai",
      keys,
      pricing: [
        { model: "gpt-4o", inputPerMillion: 2.5, outputPerMillion: 10 },
        { model: "gpt-4o", inputPerMillion: 5, outputPerMillion: 15 },
      ],
    },
    stderr: ['spec.pricing[1]: Duplicate value: {"model":"gpt-4o"}'],
    field: "spec.pricing[1].model",
  },
  {
    name: "a budget of zero dollars",
    spec: { provider: "openai", keys, budget: { dailyUSD: 0 } },
    stderr: ["spec.budget.dailyUSD", "should be greater than 0"],
    field: "spec.budget.dailyUSD",
  },
  {
    name: "a misspelled field, instead of silently dropping it",
    spec: { provider: "openai", strategey: "Weighted", keys },
    stderr: ['unknown field "spec.strategey"'],
    field: undefined,
  },
];

describe("kubectl apply refuses an invalid KeyPool", () => {
  it.each(refused.map((c, i) => ({ ...c, pool: `refused-${i}` })))(
    "$name",
    async ({ pool, spec, stderr, field }) => {
      const result = await apply(keyPool(pool, spec));
      expect(result.code, result.stdout).not.toBe(0);
      for (const part of stderr) expect(result.stderr).toContain(part);
      // One reason per problem: no CEL rule trips over a value the schema already refused.
      expect(result.stderr).not.toMatch(/type conversion error|error evaluating|evaluating rule/);
      const get = await kubectl(["get", "keypool", pool, "-n", namespace]);
      expect(get.stderr).toContain("NotFound");

      // The runtime parser (standalone pools never meet an API server) refuses it on the same field.
      if (field !== undefined) {
        const parsed = parseKeyPool(keyPool(pool, spec));
        expect(!parsed.ok && parsed.problems.map((p) => p.field)).toContain(field);
      }
    },
  );
});

describe("the API server fills in the spec defaults", () => {
  it("of a minimal pool, exactly as the runtime parser does", async () => {
    const minimal = { provider: "anthropic", keys: [{ secretRef: { name: "anthropic-keys" } }] };
    const created = await apply(keyPool("minimal", minimal));
    expect(created.stderr).toBe("");
    const stored = (await readKeyPool(namespace, "minimal")) as { spec: Record<string, unknown> };
    expect(stored.spec).toEqual({
      provider: "anthropic",
      keys: [{ secretRef: { name: "anthropic-keys" } }],
      strategy: "LeastLoaded",
      defaults: { weight: 10 },
      health: {
        probeInterval: "10m",
        probeTimeout: "10s",
        failureThreshold: 3,
        degradedCooldown: "5m",
        rateLimitCooldown: "60s",
        quotaCooldown: "1h",
      },
      rotation: { drainPeriod: "10m" },
      leases: { duration: "5m" },
      proxy: { maxAttempts: 3, maxWait: "5s", timeout: "10m" },
      budget: { warnAtPercent: 80, timeZone: "UTC" },
      forecast: { balance: false, halfLife: "5m" },
      alerts: { errorRatePercent: 20, errorRateWindow: "5m", errorRateMinCalls: 10, latencyThreshold: "30s" },
    });
    expect(stored.spec).toEqual(KeyPoolSpec.parse(minimal));
  });

  it("inside an object that sets only some of its fields, keeping those", async () => {
    const spec = { provider: "openai", keys, strategy: "RoundRobin", health: { failureThreshold: 5 } };
    await apply(keyPool("partial", spec));
    const stored = (await readKeyPool(namespace, "partial")) as {
      spec: { strategy: string; health: unknown };
    };
    expect(stored.spec.strategy).toBe("RoundRobin");
    expect(stored.spec.health).toEqual({
      probeInterval: "10m",
      probeTimeout: "10s",
      failureThreshold: 5,
      degradedCooldown: "5m",
      rateLimitCooldown: "60s",
      quotaCooldown: "1h",
    });
    expect(stored.spec).toEqual(KeyPoolSpec.parse(spec));
  });
});

describe("kubectl get kp", () => {
  it("prints STRATEGY, USABLE, TOTAL, READY and AGE, filled from spec and status", async () => {
    const ns = await createTestNamespace(kc, "crd-columns");
    await apply(keyPool("openai-prod", { provider: "openai", strategy: "Weighted", keys }), ns);
    await objects.patchNamespacedCustomObjectStatus(
      {
        ...keyPoolRef(ns),
        name: "openai-prod",
        body: {
          status: {
            keys: { total: 3, usable: 2 },
            conditions: [
              {
                type: "Ready",
                status: "True",
                reason: "KeysAvailable",
                message: "2 of 3 keys usable",
                lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );

    const { code, stdout, stderr } = await kubectl(["get", "kp", "-n", ns]);
    expect(code, stderr).toBe(0);
    const [header, row] = stdout
      .trim()
      .split("\n")
      .map((line) => line.trim().split(/\s+/));
    expect(header).toEqual(["NAME", "STRATEGY", "USABLE", "TOTAL", "READY", "AGE"]);
    expect(row?.slice(0, 5)).toEqual(["openai-prod", "Weighted", "2", "3", "True"]);
    expect(row?.[5]).toMatch(/^\d+s$/);

    const wide = await kubectl(["get", "kp", "-n", ns, "-o", "wide"]);
    const [wideHeader, wideRow] = wide.stdout
      .trim()
      .split("\n")
      .map((line) => line.trim().split(/\s+/));
    expect(wideHeader).toEqual(["NAME", "PROVIDER", "STRATEGY", "USABLE", "TOTAL", "READY", "REASON", "AGE"]);
    expect(wideRow?.slice(0, 7)).toEqual([
      "openai-prod",
      "openai",
      "Weighted",
      "2",
      "3",
      "True",
      "KeysAvailable",
    ]);
  });

  it("also answers to keypools, keypool and keypools.keypool.dev", async () => {
    for (const name of ["keypools", "keypool", "keypools.keypool.dev"]) {
      const { code, stderr } = await kubectl(["get", name, "-n", namespace]);
      expect(code, `${name}: ${stderr}`).toBe(0);
    }
  });
});

describe("the status subresource", () => {
  it("refuses a key state the operator does not know", async () => {
    await apply(keyPool("status-check", { provider: "openai", keys }));
    const patch = objects.patchNamespacedCustomObjectStatus(
      {
        ...keyPoolRef(namespace),
        name: "status-check",
        body: {
          status: {
            keyStatuses: [
              {
                id: "3f9a0c21b7d4",
                masked: "sk-...Xy7Q",
                source: "secret/openai-keys#key-1",
                state: "Broken",
                healthScore: 50,
                requests: 0,
                errors: 0,
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await expect(patch).rejects.toMatchObject({ code: 422 });
  });
});

describe.each(EXAMPLES)("examples/%s", (file) => {
  it("is accepted by kubectl apply into a fresh namespace, and the runtime parser accepts what the server stores", async () => {
    const ns = await createTestNamespace(kc, "crd-example");
    const { code, stdout, stderr } = await kubectl(["apply", "-n", ns, "-f", `${EXAMPLES_DIR}${file}`]);
    expect(code, stderr).toBe(0);

    const documents = parseAllDocuments(readFileSync(`${EXAMPLES_DIR}${file}`, "utf8"));
    const manifests = (Array.isArray(documents) ? documents : [documents]).map(
      (doc) => doc.toJS() as { kind: string; metadata: { name: string } },
    );
    for (const { kind, metadata } of manifests) {
      // kubectl names the resource with its group: keypool.keypool.dev, deployment.apps, ...
      expect(stdout).toMatch(
        new RegExp(`^${kind.toLowerCase()}(\\.[a-z0-9.]+)?/${metadata.name} created$`, "m"),
      );
    }

    for (const manifest of manifests.filter((m) => m.kind === "KeyPool")) {
      const stored = await readKeyPool(ns, manifest.metadata.name);
      const fromServer = parseKeyPool(stored);
      expect(fromServer, fromServer.ok ? "" : fromServer.message).toMatchObject({ ok: true });
      // The server's defaults and the parser's agree: the file, parsed, is what the server stores.
      const fromFile = parseKeyPool(manifest);
      expect(fromServer.ok && fromServer.value.spec).toEqual(fromFile.ok && fromFile.value.spec);
      expect(fromServer.ok && fromServer.value.metadata.namespace).toBe(ns);
    }
  });
});
