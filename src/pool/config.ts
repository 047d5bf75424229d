/**
 * The engine's view of a KeyPool spec: durations in ms, defaults resolved. Built once per spec
 * generation, so the hot path never parses strings.
 */
import { parseDuration } from "../api/duration.ts";
import {
  type BudgetLimits,
  KeyPoolSpec,
  type Limits,
  type ModelPrice,
  type Strategy,
} from "../api/keypool.ts";
import { NO_PRICES, PriceTable } from "./pricing.ts";

export interface PoolConfig {
  strategy: Strategy;
  failureThreshold: number;
  degradedCooldownMs: number;
  rateLimitCooldownMs: number;
  quotaCooldownMs: number;
  drainPeriodMs: number;
  leaseDurationMs: number;
  defaultWeight: number;
  defaultLimits: Limits | undefined;
  defaultQuotaGroup: string | undefined;
  /** Shared limits per quota group name. */
  quotaGroupLimits: ReadonlyMap<string, Limits>;
  /** health.probeInterval: how often every key is probed. */
  probeIntervalMs: number;
  /** health.probeTimeout: how long one probe may take. */
  probeTimeoutMs: number;
  /** spec.proxy, for the provider proxy. */
  proxy: {
    /** Keys one proxied call may try. */
    maxAttempts: number;
    /** How long a call waits for a usable key (callers may ask otherwise, up to the server's limit). */
    maxWaitMs: number;
    /** How long the provider may take to start answering one attempt. */
    timeoutMs: number;
  };
  /** spec.pricing over spec.pricingRef's list: what calls cost. */
  prices: PriceTable;
  /** spec.budget: the pool's own limits, the warning share, and the zone its days start in. */
  budget: { limits: BudgetLimits; warnAtPercent: number; timeZone: string };
  /** spec.forecast: balance by headroom; the consumption-rate half-life. */
  forecast: { balance: boolean; halfLifeMs: number };
  /** spec.alerts: error-rate and latency thresholds (consecutive failures: failureThreshold). */
  alerts: {
    errorRatePercent: number;
    errorRateWindowMs: number;
    errorRateMinCalls: number;
    latencyThresholdMs: number;
  };
}

function ms(text: string): number {
  const value = parseDuration(text);
  if (value === undefined) throw new Error(`not a duration: ${text}`);
  return value;
}

/**
 * A config from a parsed spec (schema defaults already applied by zod). `referencedPrices`: the
 * price list spec.pricingRef names, read by the caller (its entries lose to spec.pricing's).
 */
export function poolConfigFromSpec(spec: KeyPoolSpec, referencedPrices?: readonly ModelPrice[]): PoolConfig {
  const { dailyUSD, monthlyUSD } = spec.budget;
  return {
    strategy: spec.strategy,
    failureThreshold: spec.health.failureThreshold,
    degradedCooldownMs: ms(spec.health.degradedCooldown),
    rateLimitCooldownMs: ms(spec.health.rateLimitCooldown),
    quotaCooldownMs: ms(spec.health.quotaCooldown),
    drainPeriodMs: ms(spec.rotation.drainPeriod),
    leaseDurationMs: ms(spec.leases.duration),
    defaultWeight: spec.defaults.weight,
    defaultLimits: spec.defaults.limits,
    defaultQuotaGroup: spec.defaults.quotaGroup,
    quotaGroupLimits: new Map(
      (spec.quotaGroups ?? []).flatMap((g) => (g.limits ? [[g.name, g.limits]] : [])),
    ),
    probeIntervalMs: ms(spec.health.probeInterval),
    probeTimeoutMs: ms(spec.health.probeTimeout),
    proxy: {
      maxAttempts: spec.proxy.maxAttempts,
      maxWaitMs: ms(spec.proxy.maxWait),
      timeoutMs: ms(spec.proxy.timeout),
    },
    prices: spec.pricing || referencedPrices ? new PriceTable(referencedPrices, spec.pricing) : NO_PRICES,
    budget: {
      limits: {
        ...(dailyUSD !== undefined ? { dailyUSD } : {}),
        ...(monthlyUSD !== undefined ? { monthlyUSD } : {}),
      },
      warnAtPercent: spec.budget.warnAtPercent,
      timeZone: spec.budget.timeZone,
    },
    forecast: { balance: spec.forecast.balance, halfLifeMs: ms(spec.forecast.halfLife) },
    alerts: {
      errorRatePercent: spec.alerts.errorRatePercent,
      errorRateWindowMs: ms(spec.alerts.errorRateWindow),
      errorRateMinCalls: spec.alerts.errorRateMinCalls,
      latencyThresholdMs: ms(spec.alerts.latencyThreshold),
    },
  };
}

/** The spec's defaults (from the zod schema, the one place they are written), for tests and for
 * pools built without a KeyPool (standalone env vars). */
export const DEFAULT_POOL_CONFIG: PoolConfig = poolConfigFromSpec(
  KeyPoolSpec.parse({ provider: "openai-compatible" }),
);
