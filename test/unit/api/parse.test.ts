import { describe, expect, it } from "vitest";
import { parseKeyPool, parseKeyPoolSpec } from "../../../src/api/parse.ts";

const keys = [{ secretRef: { name: "openai-keys" } }];

function pool(spec: unknown, name = "openai-prod") {
  return { apiVersion: "keypool.dev/v1alpha1", kind: "KeyPool", metadata: { name, namespace: "ai" }, spec };
}

/** The spec every field of which is a default, as the API server also fills it in. */
const DEFAULTED = {
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
};

describe("parsing a valid KeyPool", () => {
  it("fills every default of a minimal spec", () => {
    const result = parseKeyPool(pool({ provider: "openai", keys }));
    expect(result).toEqual({
      ok: true,
      value: pool({ provider: "openai", keys, ...DEFAULTED }),
    });
  });

  it("fills the defaults inside an object that sets only some of its fields", () => {
    const result = parseKeyPoolSpec({ provider: "anthropic", keys, health: { failureThreshold: 5 } });
    expect(result.ok && result.value.health).toEqual({ ...DEFAULTED.health, failureThreshold: 5 });
  });

  it("keeps every field it was given", () => {
    const spec = {
      provider: "openai-compatible",
      baseURL: "http://vllm.ai.svc.cluster.local:8000/v1",
      strategy: "Weighted",
      keys: [
        { secretRef: { name: "vllm-keys" }, quotaGroup: "gpu-a" },
        {
          secretRef: { name: "vllm-batch", key: "tier-5" },
          weight: 40,
          limits: { requestsPerMinute: 600, tokensPerMinute: 90_000, requestsPerDay: 10_000 },
          costMultiplier: 0.8,
          budget: { dailyUSD: 25, monthlyUSD: 500 },
        },
      ],
      secretSelector: {
        matchLabels: { team: "search" },
        matchExpressions: [{ key: "environment", operator: "In", values: ["prod"] }],
      },
      quotaGroups: [{ name: "gpu-a", limits: { requestsPerMinute: 1000 } }],
      defaults: { weight: 5, limits: { requestsPerMinute: 60 }, quotaGroup: "gpu-b" },
      health: {
        probeInterval: "1m",
        probeTimeout: "2s",
        failureThreshold: 5,
        degradedCooldown: "2m",
        rateLimitCooldown: "5s",
        quotaCooldown: "2h",
      },
      rotation: { drainPeriod: "15m" },
      leases: { duration: "10m" },
      proxy: { maxAttempts: 5, maxWait: "30s", timeout: "2m" },
      fallbackPoolRef: { name: "openai-prod" },
      pricing: [
        { model: "llama-3.1-70b", inputPerMillion: 0.6, outputPerMillion: 0.8, cachedInputPerMillion: 0.3 },
        { model: "llama-*", inputPerMillion: 0.2, outputPerMillion: 0.2 },
      ],
      pricingRef: { name: "llm-prices", key: "prices.yaml" },
      budget: { dailyUSD: 100, monthlyUSD: 2000, warnAtPercent: 90, timeZone: "Europe/Berlin" },
      forecast: { balance: true, halfLife: "15m" },
      alerts: { errorRatePercent: 10, errorRateWindow: "10m", errorRateMinCalls: 20, latencyThreshold: "5s" },
      notifications: {
        webhooks: [
          {
            name: "slack",
            urlSecretRef: { name: "slack-webhook", key: "url" },
            signingKeySecretRef: { name: "slack-webhook", key: "signing-key" },
            events: ["KeyInvalid", "BudgetExhausted"],
          },
        ],
      },
    };
    expect(parseKeyPool(pool(spec, "vllm-local"))).toEqual({ ok: true, value: pool(spec, "vllm-local") });
  });

  it("takes a pool whose keys come only from a secretSelector", () => {
    expect(
      parseKeyPoolSpec({ provider: "google", secretSelector: { matchLabels: { team: "search" } } }).ok,
    ).toBe(true);
  });

  it("takes several entries of one Secret, and the same entry name in different Secrets", () => {
    const spec = {
      provider: "openai",
      keys: [
        { secretRef: { name: "a", key: "k1" } },
        { secretRef: { name: "a", key: "k2" } },
        { secretRef: { name: "b", key: "k1" } },
      ],
    };
    expect(parseKeyPoolSpec(spec).ok).toBe(true);
  });

  it("takes a status as the operator writes it", () => {
    const status = {
      observedGeneration: 3,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KeysAvailable",
          message: "4 of 5 keys usable",
          lastTransitionTime: "2026-11-22T10:00:00Z",
        },
      ],
      keys: { total: 5, usable: 4, byState: { Healthy: 4, RateLimited: 1 } },
      keyStatuses: [
        {
          id: "3f9a0c21b7d4",
          masked: "sk-...Xy7Q",
          source: "secret/openai-keys#key-2",
          state: "RateLimited",
          until: "2026-11-22T10:15:00Z",
          healthScore: 87,
          requests: 1523,
          errors: 12,
          lastError: { code: 429, reason: "rate_limit_exceeded", at: "2026-11-22T10:14:00Z" },
        },
      ],
    };
    const result = parseKeyPool({ ...pool({ provider: "openai", keys }), status });
    expect(result.ok && result.value.status).toEqual(status);
  });
});

interface BadCase {
  name: string;
  spec: Record<string, unknown>;
  field: string;
  message: string;
}

/** What the CRD schema also refuses at `kubectl apply`; the parser is the check for standalone pools. */
const schemaCases: BadCase[] = [
  {
    name: "an unknown provider",
    spec: { provider: "openia", keys },
    field: "spec.provider",
    message: 'Invalid option: expected one of "openai"|"anthropic"|"google"|"mistral"|"openai-compatible"',
  },
  {
    name: "a missing provider",
    spec: { keys },
    field: "spec.provider",
    message: "Invalid option",
  },
  {
    name: "an unknown strategy",
    spec: { provider: "openai", strategy: "Random", keys },
    field: "spec.strategy",
    message: 'Invalid option: expected one of "RoundRobin"|"LeastLoaded"|"LeastRecentlyUsed"|"Weighted"',
  },
  {
    name: "a negative limit",
    spec: { provider: "openai", keys: [{ secretRef: { name: "s" }, limits: { requestsPerMinute: -5 } }] },
    field: "spec.keys[0].limits.requestsPerMinute",
    message: "Too small: expected number to be >=1",
  },
  {
    name: "a fractional limit",
    spec: { provider: "openai", keys: [{ secretRef: { name: "s" }, limits: { tokensPerMinute: 1.5 } }] },
    field: "spec.keys[0].limits.tokensPerMinute",
    message: "Invalid input: expected int, received number",
  },
  {
    name: "a limit in a quota group given as a string",
    spec: { provider: "openai", keys, quotaGroups: [{ name: "org", limits: { requestsPerDay: "100" } }] },
    field: "spec.quotaGroups[0].limits.requestsPerDay",
    message: "Invalid input: expected number, received string",
  },
  {
    name: "a zero weight",
    spec: { provider: "openai", keys: [{ secretRef: { name: "s" }, weight: 0 }] },
    field: "spec.keys[0].weight",
    message: "Too small: expected number to be >=1",
  },
  {
    name: "a default weight above 1000",
    spec: { provider: "openai", keys, defaults: { weight: 1001 } },
    field: "spec.defaults.weight",
    message: "Too big: expected number to be <=1000",
  },
  {
    name: "a Secret name that is not a Kubernetes name",
    spec: { provider: "openai", keys: [{ secretRef: { name: "OpenAI_Keys" } }] },
    field: "spec.keys[0].secretRef.name",
    message: "must be a valid Secret name",
  },
  {
    name: "a Secret entry name with a slash",
    spec: { provider: "openai", keys: [{ secretRef: { name: "s", key: "a/b" } }] },
    field: "spec.keys[0].secretRef.key",
    message: "must be a valid Secret data key",
  },
  {
    name: "a key source without a secretRef",
    spec: { provider: "openai", keys: [{ weight: 5 }] },
    field: "spec.keys[0].secretRef",
    message: "Invalid input: expected object, received undefined",
  },
  {
    name: "a quota group name with capitals",
    spec: { provider: "openai", keys: [{ secretRef: { name: "s" }, quotaGroup: "Org-Main" }] },
    field: "spec.keys[0].quotaGroup",
    message: "must be a lower-case DNS label",
  },
  {
    name: "a malformed duration",
    spec: { provider: "openai", keys, health: { probeInterval: "soon" } },
    field: "spec.health.probeInterval",
    message: 'must be a duration such as "90s", "5m" or "1h30m"',
  },
  {
    name: "a probe interval below its minimum",
    spec: { provider: "openai", keys, health: { probeInterval: "1s" } },
    field: "spec.health.probeInterval",
    message: "must be at least 10s",
  },
  {
    name: "a lease duration above its maximum",
    spec: { provider: "openai", keys, leases: { duration: "25h" } },
    field: "spec.leases.duration",
    message: "must be at most 24h",
  },
  {
    name: "a failure threshold of zero",
    spec: { provider: "openai", keys, health: { failureThreshold: 0 } },
    field: "spec.health.failureThreshold",
    message: "Too small: expected number to be >=1",
  },
  {
    name: "a baseURL that is not a URL",
    spec: { provider: "openai", keys, baseURL: "api.openai.com" },
    field: "spec.baseURL",
    message: "must be an http or https URL",
  },
  {
    name: "a baseURL with another scheme",
    spec: { provider: "openai", keys, baseURL: "ftp://example.com/v1" },
    field: "spec.baseURL",
    message: "must be an http or https URL",
  },
  {
    name: "a selector expression with an unknown operator",
    spec: { provider: "openai", secretSelector: { matchExpressions: [{ key: "team", operator: "Equals" }] } },
    field: "spec.secretSelector.matchExpressions[0].operator",
    message: 'Invalid option: expected one of "In"|"NotIn"|"Exists"|"DoesNotExist"',
  },
  {
    name: "an In selector expression without values",
    spec: { provider: "openai", secretSelector: { matchExpressions: [{ key: "team", operator: "In" }] } },
    field: "spec.secretSelector.matchExpressions[0].values",
    message: "In and NotIn need at least one value; Exists and DoesNotExist take none",
  },
  {
    name: "an Exists selector expression with values",
    spec: {
      provider: "openai",
      secretSelector: { matchExpressions: [{ key: "team", operator: "Exists", values: ["search"] }] },
    },
    field: "spec.secretSelector.matchExpressions[0].values",
    message: "In and NotIn need at least one value; Exists and DoesNotExist take none",
  },
  {
    name: "a fallbackPoolRef without a name",
    spec: { provider: "openai", keys, fallbackPoolRef: {} },
    field: "spec.fallbackPoolRef.name",
    message: "Invalid input: expected string, received undefined",
  },
  {
    name: "a pool with neither keys nor a secretSelector (a CEL rule in the CRD)",
    spec: { provider: "openai" },
    field: "spec",
    message: "set spec.keys or spec.secretSelector: a pool needs somewhere to take keys from",
  },
  {
    name: "a pool with an empty list of keys and no secretSelector (a CEL rule in the CRD)",
    spec: { provider: "openai", keys: [] },
    field: "spec",
    message: "set spec.keys or spec.secretSelector: a pool needs somewhere to take keys from",
  },
  {
    name: "an openai-compatible pool without a baseURL (a CEL rule in the CRD)",
    spec: { provider: "openai-compatible", keys },
    field: "spec.baseURL",
    message: "provider openai-compatible needs spec.baseURL, the root of the endpoint's OpenAI-style API",
  },
  {
    name: "forecast.balance with the LowestCost strategy (a CEL rule in the CRD)",
    spec: { provider: "openai", keys, strategy: "LowestCost", forecast: { balance: true } },
    field: "spec.forecast.balance",
    message:
      "forecast.balance spreads use by headroom, LowestCost concentrates it on the cheapest key: choose one",
  },
  {
    name: "a negative price",
    spec: { provider: "openai", keys, pricing: [{ model: "m", inputPerMillion: -1, outputPerMillion: 1 }] },
    field: "spec.pricing[0].inputPerMillion",
    message: "Too small",
  },
  {
    name: "a zero daily budget",
    spec: { provider: "openai", keys, budget: { dailyUSD: 0 } },
    field: "spec.budget.dailyUSD",
    message: "Too small",
  },
  {
    name: "an unknown notification event",
    spec: {
      provider: "openai",
      keys,
      notifications: {
        webhooks: [{ name: "ops", urlSecretRef: { name: "h", key: "u" }, events: ["KeyLost"] }],
      },
    },
    field: "spec.notifications.webhooks[0].events[0]",
    message: "Invalid option",
  },
];

/** What only the parser checks: the CRD has no way to say these. */
const runtimeCases: BadCase[] = [
  {
    name: "the same Secret listed twice",
    spec: { provider: "openai", keys: [{ secretRef: { name: "a" } }, { secretRef: { name: "a" } }] },
    field: "spec.keys[1].secretRef",
    message: "duplicates spec.keys[0]: each Secret entry may be listed once",
  },
  {
    name: "the same Secret entry listed twice",
    spec: {
      provider: "openai",
      keys: [
        { secretRef: { name: "a", key: "k1" } },
        { secretRef: { name: "b" } },
        { secretRef: { name: "a", key: "k1" }, weight: 5 },
      ],
    },
    field: "spec.keys[2].secretRef",
    message: "duplicates spec.keys[0]: each Secret entry may be listed once",
  },
  {
    name: "an entry of a Secret that an earlier source takes whole",
    spec: {
      provider: "openai",
      keys: [{ secretRef: { name: "a" } }, { secretRef: { name: "a", key: "k1" } }],
    },
    field: "spec.keys[1].secretRef",
    message: "duplicates spec.keys[0]: each Secret entry may be listed once",
  },
  {
    name: "a whole Secret of which an earlier source takes one entry",
    spec: {
      provider: "openai",
      keys: [{ secretRef: { name: "a", key: "k1" } }, { secretRef: { name: "a" } }],
    },
    field: "spec.keys[1].secretRef",
    message: "duplicates spec.keys[0]: each Secret entry may be listed once",
  },
  {
    name: "a quota group declared twice",
    spec: { provider: "openai", keys, quotaGroups: [{ name: "org" }, { name: "other" }, { name: "org" }] },
    field: "spec.quotaGroups[2].name",
    message: 'quota group "org" is declared twice',
  },
  {
    name: "two webhooks of the same name",
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
    field: "spec.notifications.webhooks[1].name",
    message: 'webhook "ops" is named twice',
  },
  {
    name: "a budget time zone Intl does not know",
    spec: { provider: "openai", keys, budget: { timeZone: "Mars/Olympus" } },
    field: "spec.budget.timeZone",
    message: '"Mars/Olympus" is not an IANA time zone (UTC, Europe/Berlin, America/New_York)',
  },
  {
    name: "a model priced twice",
    spec: {
      provider: "openai",
      keys,
      pricing: [
        { model: "gpt-4o", inputPerMillion: 2.5, outputPerMillion: 10 },
        { model: "gpt-4o", inputPerMillion: 5, outputPerMillion: 15 },
      ],
    },
    field: "spec.pricing[1].model",
    message: 'model "gpt-4o" is priced twice',
  },
];

describe("parsing an invalid KeyPool", () => {
  it.each([...schemaCases, ...runtimeCases])("refuses $name, naming $field", ({ spec, field, message }) => {
    const result = parseKeyPool(pool(spec));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toContainEqual({ field, message: expect.stringContaining(message) });
    expect(result.message).toContain(`${field}: ${message}`);
  });

  it.each([...schemaCases, ...runtimeCases])(
    "refuses $name when given only the spec, with the same field path",
    ({ spec, field, message }) => {
      const result = parseKeyPoolSpec(spec);
      expect(result.ok).toBe(false);
      expect(!result.ok && result.problems).toContainEqual({
        field,
        message: expect.stringContaining(message),
      });
    },
  );

  it("refuses a pool that falls back to itself (the CRD cannot compare spec with metadata.name)", () => {
    const result = parseKeyPool(pool({ provider: "openai", keys, fallbackPoolRef: { name: "openai-prod" } }));
    expect(result).toMatchObject({
      ok: false,
      message: "spec.fallbackPoolRef.name: a pool cannot fall back to itself",
    });
  });

  it("takes a pool that falls back to another pool", () => {
    const result = parseKeyPool(
      pool({ provider: "openai", keys, fallbackPoolRef: { name: "anthropic-prod" } }),
    );
    expect(result.ok).toBe(true);
  });

  it("reports every problem at once, joined into one message", () => {
    const result = parseKeyPoolSpec({
      provider: "openai",
      strategy: "Random",
      keys: [{ secretRef: { name: "s" }, weight: 0, limits: { requestsPerMinute: -5 } }],
    });
    expect(!result.ok && result.problems.map((p) => p.field)).toEqual([
      "spec.strategy",
      "spec.keys[0].weight",
      "spec.keys[0].limits.requestsPerMinute",
    ]);
    expect(!result.ok && result.message.split("; ")).toHaveLength(3);
  });

  it.each([
    {
      name: "another apiVersion",
      object: { ...pool({ provider: "openai", keys }), apiVersion: "v1" },
      field: "apiVersion",
    },
    {
      name: "another kind",
      object: { ...pool({ provider: "openai", keys }), kind: "Secret" },
      field: "kind",
    },
    {
      name: "an object without a name",
      object: { ...pool({ provider: "openai", keys }), metadata: { namespace: "ai" } },
      field: "metadata.name",
    },
    { name: "an object without a spec", object: { ...pool({}), spec: undefined }, field: "spec" },
    {
      name: "a status whose key id is not a fingerprint",
      object: {
        ...pool({ provider: "openai", keys }),
        status: {
          keyStatuses: [
            {
              id: "sk-live-123",
              masked: "",
              source: "",
              state: "Healthy",
              healthScore: 1,
              requests: 0,
              errors: 0,
            },
          ],
        },
      },
      field: "status.keyStatuses[0].id",
    },
    { name: "something that is not an object", object: "openai-prod", field: "(root)" },
  ])("refuses $name, naming $field", ({ object, field }) => {
    const result = parseKeyPool(object);
    expect(!result.ok && result.problems.map((p) => p.field)).toContain(field);
  });
});
