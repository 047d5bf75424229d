/**
 * The KeyPool resource (keypool.dev/v1alpha1): the single source of truth for its shape.
 * The CRD in crds/ is generated from these schemas (src/api/crd.ts); the controller, the
 * engine and the standalone loader parse objects with them at run time.
 * src/api — the KeyPool schemas (spec, status, durations, CRD generation). May import: zod, yaml
 * and Node built-ins; nothing else in src/ (everything else imports it).
 */
import { z } from "zod";
import { duration } from "./duration.ts";
import { celRules, type Rule, withRules } from "./rules.ts";

export const GROUP = "keypool.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "KeyPool";
export const PLURAL = "keypools";
export const SINGULAR = "keypool";
export const SHORT_NAMES = ["kp"] as const;

/**
 * Set (to any new value, usually an RFC 3339 time) to have the operator probe every key of the
 * pool now, like External Secrets' force-sync. The value handled last is kept in
 * status.lastProbeRequest.
 */
export const PROBE_REQUEST_ANNOTATION = `${GROUP}/probe-requested-at`;

/** A Kubernetes object name (RFC 1123 subdomain): Secrets, KeyPools, namespaces in paths. */
export const KUBE_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY_RE = /^[-._a-zA-Z0-9]+$/;
/** A key id: the first 12 hex characters of sha256(key) (src/pool/identity.ts), as the status shows it. */
export const KEY_ID_RE = /^[0-9a-f]{12}$/;
const GROUP_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Providers the operator knows how to talk to (error semantics, probes, auth headers). */
export const Provider = z
  .enum(["openai", "anthropic", "google", "mistral", "openai-compatible"])
  .describe(
    "Which provider's API the keys are for. openai-compatible covers any endpoint speaking the " +
      "OpenAI API (vLLM, LiteLLM, Azure-style gateways) and needs spec.baseURL.",
  );
export type Provider = z.infer<typeof Provider>;

/** How the pool chooses the next key. */
export const Strategy = z
  .enum(["RoundRobin", "LeastLoaded", "LeastRecentlyUsed", "Weighted", "LowestCost"])
  .describe(
    "How a key is chosen among the usable ones. RoundRobin: in turn. LeastLoaded: fewest open " +
      "leases and recent requests relative to each key's limits. LeastRecentlyUsed: the key idle " +
      "longest. Weighted: smooth weighted round-robin by weight x health score. LowestCost: the key " +
      "with the lowest costMultiplier first, spilling to the next as its limits or budget fill.",
  );
export type Strategy = z.infer<typeof Strategy>;

export const KEY_STATES = [
  "Healthy",
  "Degraded",
  "RateLimited",
  "QuotaExhausted",
  "Invalid",
  "Disabled",
  "Draining",
] as const;
/** A key's state. Only Healthy and Degraded keys are handed out. */
export const KeyState = z
  .enum(KEY_STATES)
  .describe(
    "Healthy: usable. Degraded: usable but failing (failureThreshold errors in a row). RateLimited: " +
      "cooling down until `until`. QuotaExhausted: out of credit or daily quota, re-checked by probe. " +
      "Invalid: rejected by the provider; recovers only by a new Secret value, a successful probe or a " +
      "reset. Disabled: switched off by an operator. Draining: removed from its Secret; reports are " +
      "still accepted until the drain period ends.",
  );
export type KeyState = z.infer<typeof KeyState>;

const count = (description: string) => z.number().int().min(1).max(1_000_000_000).describe(description);

/** Client-side limits: the pool stops handing out a key before the provider would answer 429. */
export const Limits = z
  .object({
    requestsPerMinute: count("Requests the key may make in any 60 s window.").optional(),
    tokensPerMinute: count("Tokens (as reported) the key may use in any 60 s window.").optional(),
    requestsPerDay: count("Requests the key may make in any 24 h window.").optional(),
  })
  .describe("Client-side limits; a key at a limit is skipped until it has room again.");
export type Limits = z.infer<typeof Limits>;

export const SecretKeySelector = z
  .object({
    name: z
      .string()
      .min(1)
      .max(253)
      .regex(KUBE_NAME_RE, "must be a valid Secret name")
      .describe("Secret name, in the KeyPool's namespace."),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(SECRET_KEY_RE, "must be a valid Secret data key")
      .describe("One entry of the Secret. Without it, every entry of the Secret is a key.")
      .optional(),
  })
  .describe("A Secret holding keys; each entry holds one key (or several separated by commas or newlines).");

const quotaGroupName = z
  .string()
  .min(1)
  .max(63)
  .regex(GROUP_NAME_RE, "must be a lower-case DNS label")
  .describe(
    "Keys of the same provider account (organization, project, workspace) share its rate limits. " +
      "Name the account here: a rate-limit answer cools down every key of the group, and the group's limits are shared.",
  );

const weight = z.number().int().min(1).max(1000).describe("Relative share for the Weighted strategy.");

const usd = (description: string) => z.number().positive().max(1_000_000_000).describe(description);

/** Spend limits in USD over calendar windows (spec.budget.timeZone, UTC by default). */
export const BudgetLimits = z
  .object({
    dailyUSD: usd("Most the key (or pool) may cost in one calendar day, USD.").optional(),
    monthlyUSD: usd("Most the key (or pool) may cost in one calendar month, USD.").optional(),
  })
  .describe(
    "Spend limits. A key over its budget is QuotaExhausted (reason budget_exhausted) until the window resets.",
  );
export type BudgetLimits = z.infer<typeof BudgetLimits>;

const costMultiplier = z
  .number()
  .min(0)
  .max(1000)
  .describe(
    "Multiplies the price list for this key's calls (an account with a discount: 0.8; with credits: 0). " +
      "LowestCost hands out the lowest multiplier first. Default 1.",
  );

export const KeySource = z.object({
  secretRef: SecretKeySelector,
  weight: weight.optional(),
  limits: Limits.optional(),
  quotaGroup: quotaGroupName.optional(),
  costMultiplier: costMultiplier.optional(),
  budget: BudgetLimits.optional(),
});
export type KeySource = z.infer<typeof KeySource>;

const SelectorRequirement = withRules(
  z.object({
    key: z.string().min(1),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  }),
  [
    {
      // What metav1.LabelSelectorAsSelector demands; without it the selector fails only at run time.
      rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
      message: "In and NotIn need at least one value; Exists and DoesNotExist take none",
      fieldPath: ".values",
      reason: "FieldValueInvalid",
      holds: ({ operator, values }) =>
        operator === "In" || operator === "NotIn" ? (values?.length ?? 0) > 0 : (values?.length ?? 0) === 0,
    },
  ],
);

export const LabelSelector = z
  .object({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z.array(SelectorRequirement).max(20).optional(),
  })
  .describe(
    "Every Secret in the KeyPool's namespace matching this selector joins the pool (all its entries).",
  );

export const QuotaGroup = z.object({
  name: quotaGroupName,
  limits: Limits.optional(),
});

export const Defaults = z
  .object({
    weight: weight.default(10),
    limits: Limits.optional(),
    quotaGroup: quotaGroupName.optional(),
  })
  .describe("Applied to every key source that does not set its own.");

export const Health = z
  .object({
    probeInterval: duration("How often every key is checked with the provider's free endpoint.", {
      minMs: 10_000,
    }).default("10m"),
    probeTimeout: duration("How long one probe may take.", { minMs: 100, maxMs: 300_000 }).default("10s"),
    failureThreshold: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(3)
      .describe("Consecutive errors before a key is Degraded."),
    degradedCooldown: duration("Time without errors after which a Degraded key is Healthy again.").default(
      "5m",
    ),
    rateLimitCooldown: duration(
      "How long a RateLimited key rests when the provider sends no retry-after or reset header.",
      { minMs: 1000 },
    ).default("60s"),
    quotaCooldown: duration("How long a QuotaExhausted key rests before a probe checks it again.", {
      minMs: 1000,
    }).default("1h"),
  })
  .describe("How key health is judged and checked.");
export type Health = z.infer<typeof Health>;

export const Rotation = z
  .object({
    drainPeriod: duration("How long a key removed from its Secret still accepts reports.").default("10m"),
  })
  .describe("What happens to keys that leave the pool.");

export const Leases = z
  .object({
    duration: duration("How long a dispensed key counts as in flight when no report closes its lease.", {
      minMs: 1000,
      maxMs: 86_400_000,
    }).default("5m"),
  })
  .describe("Leases: each dispense opens one; a report closes it.");

export const ProxySettings = z
  .object({
    maxAttempts: z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(3)
      .describe("Keys one proxied call may try: a 429, 5xx or refused key moves the call to another key."),
    maxWait: duration(
      "How long a proxied call waits for a key to become usable before it answers 429 (callers may ask for less, or more up to the server's limit, with x-keypool-max-wait).",
      { maxMs: 300_000 },
    ).default("5s"),
    timeout: duration("How long the provider may take to start answering one attempt.", {
      minMs: 1000,
      maxMs: 3_600_000,
    }).default("10m"),
  })
  .describe("How the proxy (/proxy/{namespace}/{pool}/...) calls the provider.");
export type ProxySettings = z.infer<typeof ProxySettings>;

const perMillion = (description: string) => z.number().min(0).max(1_000_000).describe(description);

/** One model's prices, USD per million tokens. */
export const ModelPrice = z
  .object({
    model: z
      .string()
      .min(1)
      .max(200)
      .describe(
        "The model name as callers send it (gpt-4o-mini). A trailing * matches every name that starts " +
          "with the rest (claude-3-5-haiku-*); an exact name wins over a pattern, a longer pattern over a shorter.",
      ),
    inputPerMillion: perMillion("USD per million input (prompt) tokens."),
    outputPerMillion: perMillion("USD per million output (completion) tokens."),
    cachedInputPerMillion: perMillion(
      "USD per million input tokens read from the provider's prompt cache; without it they cost inputPerMillion.",
    ).optional(),
  })
  .describe("Prices of one model.");
export type ModelPrice = z.infer<typeof ModelPrice>;

export const PriceList = z.array(ModelPrice).max(1000);

export const Budget = z
  .object({
    dailyUSD: usd("Most the whole pool may cost in one calendar day, USD.").optional(),
    monthlyUSD: usd("Most the whole pool may cost in one calendar month, USD.").optional(),
    warnAtPercent: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(80)
      .describe(
        "Share of a budget (pool or key) at which a Warning Event, the BudgetWarning condition and a notification say so.",
      ),
    timeZone: z
      .string()
      .min(1)
      .max(64)
      .default("UTC")
      .describe(
        "IANA time zone whose midnight starts a budget day and month (Europe/Berlin). UTC by default.",
      ),
  })
  .describe(
    "Spend limits of the whole pool; at 100% no key is handed out until the window resets. Keys' own budgets are keys[].budget.",
  );

export const Forecast = z
  .object({
    balance: z
      .boolean()
      .default(false)
      .describe(
        "Hand keys out in proportion to their headroom (the calls left in their tightest day-long limit or " +
          "budget, times weight and health), so a pool's keys run out together at the end of the window instead " +
          "of one after another early. It replaces the strategy's order (RoundRobin, LeastLoaded, " +
          "LeastRecentlyUsed and Weighted all become this weighted rotation). Not with LowestCost.",
      ),
    halfLife: duration(
      "Half-life of the consumption-rate average (an exponentially weighted moving average) forecasts are made from.",
      { minMs: 10_000, maxMs: 86_400_000 },
    ).default("5m"),
  })
  .describe("Exhaustion forecasts: when each limit and budget runs out at the recent consumption rate.");

export const Alerts = z
  .object({
    errorRatePercent: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(20)
      .describe(
        "A key whose share of failed calls in errorRateWindow exceeds this is Degraded (reason error_rate_high).",
      ),
    errorRateWindow: duration("The window the error rate is measured over.", {
      minMs: 10_000,
      maxMs: 86_400_000,
    }).default("5m"),
    errorRateMinCalls: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10)
      .describe(
        "Calls in the window before the error rate counts: two failures of three calls are not a trend.",
      ),
    latencyThreshold: duration(
      "A key whose average call latency (reports' latencyMs, the proxy's time to the answer's headers) exceeds this is Degraded (reason latency_high).",
      { minMs: 100, maxMs: 3_600_000 },
    ).default("30s"),
  })
  .describe(
    "Key alerts beyond health.failureThreshold (consecutive failures, 3 by default): each is a transition " +
      "to Degraded with its reason, an Event and a notification; Healthy again after health.degradedCooldown without trouble.",
  );

/** What a webhook can be told about; the notifier (src/notify) delivers these. */
export const NOTIFICATION_TYPES = [
  "KeyInvalid",
  "KeyRecovered",
  "PoolUnavailable",
  "PoolRecovered",
  "BudgetWarning",
  "BudgetExhausted",
  "ExhaustionPredicted",
  "KeyAlert",
] as const;
export const NotificationType = z
  .enum(NOTIFICATION_TYPES)
  .describe(
    "KeyInvalid: the provider rejected a key. KeyRecovered: a key is usable again after Invalid, QuotaExhausted or an alert. " +
      "PoolUnavailable / PoolRecovered: the pool has no usable key / has one again. BudgetWarning / BudgetExhausted: " +
      "a pool or key budget reached warnAtPercent / 100%. ExhaustionPredicted: the forecast says a limit runs out " +
      "before its window resets. KeyAlert: consecutive failures, error rate or latency over its threshold.",
  );

export type NotificationType = z.infer<typeof NotificationType>;

const secretValueRef = (description: string) =>
  z
    .object({
      name: z.string().min(1).max(253).regex(KUBE_NAME_RE, "must be a valid Secret name"),
      key: z.string().min(1).max(253).regex(SECRET_KEY_RE, "must be a valid Secret data key"),
    })
    .describe(description);

export const Webhook = z.object({
  name: z
    .string()
    .min(1)
    .max(63)
    .regex(GROUP_NAME_RE, "must be a lower-case DNS label")
    .describe("Names the webhook in metrics and logs."),
  urlSecretRef: secretValueRef(
    "The Secret entry holding the webhook URL (a Slack incoming-webhook URL is itself a secret).",
  ),
  signingKeySecretRef: secretValueRef(
    "The Secret entry holding the HMAC-SHA256 key that signs each delivery (X-KeyPool-Signature).",
  ).optional(),
  events: z
    .array(NotificationType)
    .max(NOTIFICATION_TYPES.length)
    .meta({ "x-kubernetes-list-type": "set" })
    .describe("Which notifications this webhook gets; all of them when empty or absent.")
    .optional(),
});

export const Notifications = z
  .object({
    webhooks: z.array(Webhook).max(10).describe("Webhooks told about the pool's transitions.").optional(),
  })
  .describe("Who is told when keys or the pool change (one message per transition, signed, retried).");

const HTTP_URL_MESSAGE = "must be an http or https URL";

/** A set of key ids (status.keyStatuses[].id): server-side apply merges it item by item. */
const keyIdSet = (description: string) =>
  z
    .array(z.string().regex(KEY_ID_RE, "must be a key id: 12 lower-case hex characters"))
    .max(1000)
    .meta({ "x-kubernetes-list-type": "set" })
    .describe(description);

/**
 * Rules across spec fields. The CRD carries them as CEL; the runtime parser (KeyPoolSpecChecked
 * in parse.ts) checks them too. KeyPoolSpec itself stays structural, so code may parse a partial
 * spec with it to read the defaults.
 */
export const SPEC_RULES: ReadonlyArray<
  Rule<{
    provider: Provider;
    baseURL?: string | undefined;
    keys?: unknown[] | undefined;
    secretSelector?: unknown;
    strategy?: Strategy | undefined;
    forecast?: { balance?: boolean | undefined } | undefined;
  }>
> = [
  {
    rule: "(has(self.keys) && size(self.keys) > 0) || has(self.secretSelector)",
    message: "set spec.keys or spec.secretSelector: a pool needs somewhere to take keys from",
    reason: "FieldValueRequired",
    holds: (spec) => (spec.keys?.length ?? 0) > 0 || spec.secretSelector !== undefined,
  },
  {
    rule: "self.provider != 'openai-compatible' || has(self.baseURL)",
    message: "provider openai-compatible needs spec.baseURL, the root of the endpoint's OpenAI-style API",
    fieldPath: ".baseURL",
    reason: "FieldValueRequired",
    holds: (spec) => spec.provider !== "openai-compatible" || spec.baseURL !== undefined,
  },
  {
    rule: "!(has(self.strategy) && self.strategy == 'LowestCost' && has(self.forecast) && has(self.forecast.balance) && self.forecast.balance)",
    message:
      "forecast.balance spreads use by headroom, LowestCost concentrates it on the cheapest key: choose one",
    fieldPath: ".forecast.balance",
    reason: "FieldValueInvalid",
    holds: (spec) => !(spec.strategy === "LowestCost" && spec.forecast?.balance === true),
  },
];

export const KeyPoolSpec = z
  .object({
    provider: Provider,
    baseURL: z
      .url({ protocol: /^https?$/, error: HTTP_URL_MESSAGE })
      .max(2048)
      // `format: uri` accepts any scheme; the parser's protocol check has no other CRD form.
      .meta({
        "x-kubernetes-validations": [
          { rule: "self.startsWith('http://') || self.startsWith('https://')", message: HTTP_URL_MESSAGE },
        ],
      })
      .describe("Override of the provider's API base URL (Azure, a gateway, vLLM, a test server).")
      .optional(),
    strategy: Strategy.default("LeastLoaded"),
    keys: z
      .array(KeySource)
      .max(100)
      .describe("Secrets (or single entries) whose values are keys.")
      .optional(),
    secretSelector: LabelSelector.optional(),
    quotaGroups: z
      .array(QuotaGroup)
      .max(100)
      .describe("Shared limits of quota groups named by key sources.")
      .optional(),
    defaults: Defaults.prefault({}),
    health: Health.prefault({}),
    rotation: Rotation.prefault({}),
    leases: Leases.prefault({}),
    proxy: ProxySettings.prefault({}),
    fallbackPoolRef: z
      .object({ name: z.string().min(1).max(253).regex(KUBE_NAME_RE, "must be a valid KeyPool name") })
      .describe("A KeyPool in the same namespace that serves when this one has no usable key.")
      .optional(),
    disabledKeys: keyIdSet(
      "Key ids (status.keyStatuses[].id) switched off: Disabled, neither handed out nor probed, while listed. " +
        "The key stays in the pool; taking the id off the list makes it Healthy again.",
    ).optional(),
    drainedKeys: keyIdSet(
      "Key ids taken out of the pool while their Secret still holds them, as if removed from it: Draining " +
        "for rotation.drainPeriod (nothing new is handed out, reports are still accepted), then gone. Taking " +
        "the id off the list brings the key back.",
    ).optional(),
    pricing: PriceList.describe(
      "USD per million tokens per model: what a call costs (status cost fields, keypool_cost_usd_total, budgets). " +
        "Entries here win over pricingRef's for the same model. No price list is built in.",
    ).optional(),
    pricingRef: z
      .object({
        name: z.string().min(1).max(253).regex(KUBE_NAME_RE, "must be a valid ConfigMap name"),
        key: z
          .string()
          .min(1)
          .max(253)
          .regex(SECRET_KEY_RE, "must be a valid ConfigMap data key")
          .default("pricing.yaml"),
      })
      .describe(
        "A ConfigMap entry (YAML or JSON) holding a price list like spec.pricing, shared by many pools.",
      )
      .optional(),
    budget: Budget.prefault({}),
    forecast: Forecast.prefault({}),
    alerts: Alerts.prefault({}),
    notifications: Notifications.optional(),
  })
  .meta({ "x-kubernetes-validations": celRules(SPEC_RULES) })
  .describe("What the pool holds and how it hands keys out.");
export type KeyPoolSpec = z.infer<typeof KeyPoolSpec>;
export type KeyPoolSpecInput = z.input<typeof KeyPoolSpec>;
