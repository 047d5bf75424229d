/**
 * The KeyPool status subresource: conditions (metav1.Condition shape, kstatus-compatible), key
 * counts and one entry per key. Never holds key material: keys appear as a sha256 fingerprint
 * prefix and a masked form.
 */
import { z } from "zod";
import { KeyState } from "./keypool.ts";

const time = z.iso.datetime({ offset: true }).describe("RFC 3339 time.");

/** metav1.Condition. */
export const Condition = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: time,
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof Condition>;

export const LastError = z.object({
  code: z.number().int().optional().describe("HTTP status of the failed call, when there was one."),
  reason: z.string().describe("Stable machine-readable reason, e.g. rate_limit_exceeded."),
  at: time,
});

const usd = (description: string) => z.number().min(0).describe(description);

export const BudgetUse = z.object({
  limitUSD: usd("The budget."),
  spentUSD: usd("What was spent of it in the current window."),
  resetsAt: time.describe("When the window ends and spending starts again from 0."),
});

export const BudgetStatus = z
  .object({ daily: BudgetUse.optional(), monthly: BudgetUse.optional() })
  .describe("Where each budget stands.");

export const ForecastStatus = z
  .object({
    limit: z
      .string()
      .describe(
        "Which limit: requestsPerDay, tokensPerMinute, dailyBudget, monthlyBudget, poolDailyBudget, poolMonthlyBudget.",
      ),
    exhaustsAt: time.describe("When it runs out at the recent consumption rate (spec.forecast.halfLife)."),
    resetsAt: time.describe("When its window resets (budgets), or the horizon of a sliding window."),
    beforeReset: z.boolean().describe("It runs out before it resets: callers will be refused."),
  })
  .describe("The most pressing exhaustion forecast.");

export const KeyStatus = z.object({
  id: z
    .string()
    .regex(/^[0-9a-f]{12}$/)
    .describe("First 12 hex characters of sha256(key): identifies the key without revealing it."),
  masked: z.string().max(32).describe("A short prefix and the last 4 characters of the key."),
  source: z.string().max(600).describe("Where the key comes from: secret/<name>#<entry> or env/<VAR>."),
  quotaGroup: z.string().optional(),
  state: KeyState,
  since: time
    .optional()
    .describe(
      "When the key entered its state (millisecond precision): replicas merge views of a key by it, the newer one winning.",
    ),
  until: time
    .optional()
    .describe("When the current state ends by itself (RateLimited, QuotaExhausted, Draining)."),
  stateBeforeDrain: KeyState.optional().describe(
    "While Draining: the state the key returns to if it comes back into its Secret.",
  ),
  stateBeforeDrainUntil: time.optional().describe("While Draining: when that state would have ended."),
  disabledBySpec: z
    .boolean()
    .optional()
    .describe("Disabled because spec.disabledKeys lists the key: taking it off the list enables it."),
  healthScore: z.number().int().min(0).max(100),
  requests: z.number().int().min(0),
  errors: z.number().int().min(0),
  consecutiveErrors: z.number().int().min(0).optional(),
  lastUsed: time.optional(),
  lastError: LastError.optional(),
  reason: z
    .string()
    .max(256)
    .optional()
    .describe("Why the key is in its state: budget_exhausted, error_rate_high, rate_limit_exceeded, ..."),
  costTodayUSD: usd("What the key's calls cost today (status.costWindow.day), USD.").optional(),
  costThisMonthUSD: usd("What the key's calls cost this month, USD.").optional(),
  budget: BudgetStatus.optional(),
  forecast: ForecastStatus.optional(),
});
export type KeyStatus = z.infer<typeof KeyStatus>;

export const KeyCounts = z.object({
  total: z.number().int().min(0),
  usable: z.number().int().min(0),
  byState: z.record(z.string(), z.number().int().min(0)).optional(),
});

export const KeyPoolStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: z.array(Condition).max(16).optional(),
  keys: KeyCounts.optional(),
  keyStatuses: z.array(KeyStatus).max(2000).optional(),
  costWindow: z
    .object({ day: z.string(), month: z.string(), timeZone: z.string() })
    .describe("The budget day and month the cost fields count (spec.budget.timeZone).")
    .optional(),
  costTodayUSD: usd("What the pool's calls cost today, USD.").optional(),
  costThisMonthUSD: usd("What the pool's calls cost this month, USD.").optional(),
  costByModel: z
    .array(
      z.object({
        model: z.string(),
        costTodayUSD: usd("Today, USD."),
        costThisMonthUSD: usd("This month, USD."),
      }),
    )
    .max(100)
    .describe("The pool's cost per model, most expensive this month first.")
    .optional(),
  budget: BudgetStatus.optional(),
  forecast: ForecastStatus.optional(),
  lastProbeRequest: z
    .string()
    .optional()
    .describe(
      "The keypool.dev/probe-requested-at annotation value for which every key was last probed; " +
        "a different value asks for a new probe of every key.",
    ),
});
export type KeyPoolStatus = z.infer<typeof KeyPoolStatus>;
