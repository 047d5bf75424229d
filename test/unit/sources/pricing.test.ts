import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1ConfigMap } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyPoolSpec, type ModelPrice } from "../../../src/api/keypool.ts";
import { createLogger } from "../../../src/log.ts";
import { ManualClock } from "../../../src/pool/clock.ts";
import { PoolRegistry } from "../../../src/pool/registry.ts";
import { StandaloneSource } from "../../../src/sources/files/standalone.ts";
import {
  PRICING_LABEL,
  type ResolvedPricing,
  resolvePricing,
  type UncachedConfigMap,
} from "../../../src/sources/kubernetes/pricing.ts";

const MINI = { model: "gpt-4o-mini", inputPerMillion: 0.15, outputPerMillion: 0.6 };
const HAIKU = {
  model: "claude-3-5-haiku-*",
  inputPerMillion: 0.8,
  outputPerMillion: 4,
  cachedInputPerMillion: 0.08,
};

function configMap(data: Record<string, string> | undefined, name = "llm-prices"): V1ConfigMap {
  return {
    metadata: { name, namespace: "ai", labels: { [PRICING_LABEL]: "true" } },
    ...(data ? { data } : {}),
  };
}

async function resolve(
  pricingRef: Record<string, unknown> | undefined,
  cached: V1ConfigMap[],
  uncached: UncachedConfigMap = "missing",
): Promise<ResolvedPricing> {
  const spec = KeyPoolSpec.parse({ provider: "openai", ...(pricingRef ? { pricingRef } : {}) });
  const cache = { get: (_ns: string, name: string) => cached.find((c) => c.metadata?.name === name) };
  return resolvePricing("ai", spec, cache, async () => uncached);
}

describe("reading spec.pricingRef's price list", () => {
  it.each<[string, string, ModelPrice[]]>([
    [
      "a YAML list",
      "- model: gpt-4o-mini\n  inputPerMillion: 0.15\n  outputPerMillion: 0.6\n" +
        "- model: claude-3-5-haiku-*\n  inputPerMillion: 0.8\n  outputPerMillion: 4\n  cachedInputPerMillion: 0.08\n",
      [MINI, HAIKU],
    ],
    ["a JSON list", JSON.stringify([MINI, HAIKU], null, 2), [MINI, HAIKU]],
    ["an empty list", "[]", []],
  ])("reads %s", async (_name, text, prices) => {
    expect(await resolve({ name: "llm-prices" }, [configMap({ "pricing.yaml": text })])).toEqual({ prices });
  });

  it("reads the entry spec.pricingRef.key names", async () => {
    const cm = configMap({ "pricing.yaml": "not: a list", "prices.json": JSON.stringify([MINI]) });
    expect(await resolve({ name: "llm-prices", key: "prices.json" }, [cm])).toEqual({ prices: [MINI] });
  });

  it("reads nothing, and says nothing, without a pricingRef", async () => {
    expect(await resolve(undefined, [])).toEqual({});
  });

  it.each<[string, V1ConfigMap[], UncachedConfigMap, string, string[]]>([
    [
      "a ConfigMap that does not exist",
      [],
      "missing",
      "PricingNotFound",
      ["spec.pricingRef: ConfigMap ai/llm-prices not found", "spec.pricing alone"],
    ],
    [
      "a ConfigMap without the label, with the command that adds it",
      [],
      "unlabelled",
      "PricingNotFound",
      [
        `ConfigMap ai/llm-prices is not labelled ${PRICING_LABEL}`,
        `kubectl label configmap -n ai llm-prices ${PRICING_LABEL}=true`,
      ],
    ],
    [
      "a missing entry, naming the entries there are",
      [configMap({ "prices.json": "[]", "other.yaml": "[]" })],
      "missing",
      "PricingEntryMissing",
      ['ConfigMap ai/llm-prices has no entry "pricing.yaml" (its entries: other.yaml, prices.json)'],
    ],
    [
      "a ConfigMap with no data",
      [configMap(undefined)],
      "missing",
      "PricingEntryMissing",
      ['has no entry "pricing.yaml" (it has no entries)'],
    ],
    [
      "a price below zero, by its zod path",
      [
        configMap({
          "pricing.yaml": JSON.stringify([
            MINI,
            HAIKU,
            { model: "o4-mini", inputPerMillion: 1.1, outputPerMillion: -4 },
          ]),
        }),
      ],
      "missing",
      "PricingInvalid",
      ["ConfigMap ai/llm-prices entry pricing.yaml: [2].outputPerMillion: Too small"],
    ],
    [
      "a field missing",
      [configMap({ "pricing.yaml": "- model: gpt-4o\n  inputPerMillion: 2.5\n" })],
      "missing",
      "PricingInvalid",
      ["entry pricing.yaml: [0].outputPerMillion: Invalid input: expected number, received undefined"],
    ],
    [
      "a mapping where a list belongs",
      [configMap({ "pricing.yaml": "pricing:\n  - model: gpt-4o\n" })],
      "missing",
      "PricingInvalid",
      ["entry pricing.yaml: (root): Invalid input: expected array, received object"],
    ],
    [
      "a model priced twice",
      [configMap({ "pricing.yaml": JSON.stringify([MINI, { ...MINI, inputPerMillion: 1 }]) })],
      "missing",
      "PricingInvalid",
      ['[1].model: model "gpt-4o-mini" is priced twice'],
    ],
    [
      "text that is not YAML, by line and column",
      [configMap({ "pricing.yaml": "- model: gpt-4o\n  inputPerMillion: [1\n" })],
      "missing",
      "PricingInvalid",
      ["entry pricing.yaml: not valid YAML or JSON (line "],
    ],
    [
      "an empty entry",
      [configMap({ "pricing.yaml": "" })],
      "missing",
      "PricingInvalid",
      ["(root): Invalid input: expected array, received null"],
    ],
  ])("reports %s", async (_name, cached, uncached, reason, parts) => {
    const resolved = await resolve({ name: "llm-prices" }, cached, uncached);
    expect(resolved.prices).toBeUndefined();
    expect(resolved.problem?.reason).toBe(reason);
    for (const part of parts) expect(resolved.problem?.message).toContain(part);
  });

  it("lists at most five problems of a broken list", async () => {
    const broken = Array.from({ length: 8 }, (_, i) => ({
      model: `m${i}`,
      inputPerMillion: -1,
      outputPerMillion: 1,
    }));
    const resolved = await resolve({ name: "llm-prices" }, [
      configMap({ "pricing.yaml": JSON.stringify(broken) }),
    ]);
    expect(resolved.problem?.message).toContain("[4].inputPerMillion");
    expect(resolved.problem?.message).not.toContain("[5].inputPerMillion");
    expect(resolved.problem?.message).toContain("and 3 more");
  });
});

describe("spec.pricingRef in `keypool serve`", () => {
  let dir: string;
  let source: StandaloneSource | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "keypool-pricing-"));
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const pool = (pricing = "") =>
    "apiVersion: keypool.dev/v1alpha1\nkind: KeyPool\nmetadata:\n  name: chat\nspec:\n  provider: openai\n" +
    "  keys: [{secretRef: {name: keys}}]\n  pricingRef: {name: llm-prices}\n" +
    pricing +
    "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  a: plain-key-pricing-0001\n";
  /** A ConfigMap without the keypool.dev/pricing label: the directory is the cache. */
  const prices = (list: ModelPrice[]) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: llm-prices\ndata:\n  pricing.yaml: ${JSON.stringify(JSON.stringify(list))}\n`;

  async function start() {
    const registry = new PoolRegistry();
    let leases = 0;
    source = new StandaloneSource({
      manifestsDir: dir,
      env: {},
      defaultNamespace: "default",
      stateFile: undefined,
      registry,
      logger: createLogger({ level: "silent" }),
      clock: new ManualClock(Date.UTC(2026, 10, 22)),
      newLeaseToken: () => ++leases,
      rescanIntervalMs: 3_600_000,
    });
    await source.start();
    const priceOf = (model: string) =>
      registry.get({ namespace: "default", name: "chat" })?.engine.config.prices.priceOf(model);
    return { source, priceOf };
  }

  it("prices calls from a ConfigMap in the directory, spec.pricing winning, and follows its edits", async () => {
    await writeFile(
      join(dir, "pool.yaml"),
      pool(`  pricing: [{model: gpt-4o, inputPerMillion: 9, outputPerMillion: 9}]\n`),
    );
    await writeFile(
      join(dir, "prices.yaml"),
      prices([MINI, { model: "gpt-4o", inputPerMillion: 2.5, outputPerMillion: 10 }]),
    );
    const { source, priceOf } = await start();
    expect(source.problems()).toEqual([]);
    expect(priceOf("gpt-4o-mini")).toEqual(MINI);
    expect(priceOf("gpt-4o")?.inputPerMillion).toBe(9);

    await writeFile(join(dir, "prices.yaml"), prices([{ ...MINI, outputPerMillion: 1.2 }]));
    await source.reload();
    expect(priceOf("gpt-4o-mini")?.outputPerMillion).toBe(1.2);
  });

  it("serves with spec.pricing alone while the ConfigMap is missing or invalid, and says why", async () => {
    await writeFile(join(dir, "pool.yaml"), pool());
    const { source, priceOf } = await start();
    expect(priceOf("gpt-4o-mini")).toBeUndefined();
    expect(source.problems()).toEqual([
      {
        namespace: "default",
        name: "chat",
        message:
          "spec.pricingRef: ConfigMap default/llm-prices not found; prices come from spec.pricing alone (in the manifests)",
      },
    ]);

    await writeFile(join(dir, "prices.yaml"), prices([{ ...MINI, inputPerMillion: -1 }]));
    await source.reload();
    expect(source.problems().map((p) => p.message)).toEqual([
      expect.stringContaining(
        "ConfigMap default/llm-prices entry pricing.yaml: [0].inputPerMillion: Too small",
      ),
    ]);

    await writeFile(join(dir, "prices.yaml"), prices([MINI]));
    await source.reload();
    expect(source.problems()).toEqual([]);
    expect(priceOf("gpt-4o-mini")).toEqual(MINI);
  });
});
