/**
 * The agent key manager's routes (its key service and health monitor, on one port here):
 * GET /api/keys/:model, GET /api/keys/status, GET /api/health/summary, GET /api/health/alerts,
 * GET /api/health/:model/:keyIndex. Model names resolve as on the key-pool-manager routes
 * (compat-pools.ts); a caller sees only pools it may `use`. Only /api/keys/:model returns a key;
 * everything else shows key ids and masked keys.
 *
 * Its README names the alert kinds (consecutive failures 3+: high; error rate over 20%: medium;
 * latency over 5 s: low) but no shapes: the alerts here are the conditions that hold now, each
 * with when it began where that is known (the last error's time; a latency average has none).
 */
import { type Request, Router } from "express";
import type { PoolRuntime } from "../pool/registry.ts";
import type { KeyView } from "../pool/engine.ts";
import {
  authorizedModelPool,
  type CompatContext,
  compatCaller,
  dispenseModel,
  healthCounts,
  presentKeys,
  successRate,
  usablePools,
  WORD_OF_STATE,
} from "./compat-pools.ts";
import { requirePool } from "./dispense.ts";
import { KeyPoolError } from "./errors.ts";

export type AgentCompatOptions = CompatContext;

/** Consecutive failures from which a key is a high-severity alert. */
const CONSECUTIVE_FAILURES_ALERT = 3;
/** Error rate above which a key is a medium-severity alert, once it has this many requests. */
const ERROR_RATE_ALERT = 0.2;
const ERROR_RATE_MIN_REQUESTS = 5;
/** Average latency (ms) above which a key is a low-severity alert. */
const HIGH_LATENCY_ALERT_MS = 5000;

type Severity = "high" | "medium" | "low";
const SEVERITY_ORDER: Record<Severity, number> = { high: 0, medium: 1, low: 2 };

interface Alert {
  severity: Severity;
  type:
    | "key_invalid"
    | "consecutive_failures"
    | "high_error_rate"
    | "rate_limited"
    | "quota_exhausted"
    | "high_latency";
  model: string;
  keyIndex: number;
  keyId: string;
  message: string;
  since: string | undefined;
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

/** One key as the health monitor shows it: no key material beyond the masked form. */
function keyHealth(key: KeyView, index: number) {
  return {
    index,
    keyId: key.id,
    masked: key.masked,
    status: WORD_OF_STATE[key.state] ?? key.state.toLowerCase(),
    state: key.state,
    requests: key.requests,
    errors: key.errors,
    successRate: successRate(key.requests, key.errors),
    rateLimited: key.state === "RateLimited" || key.state === "QuotaExhausted",
    rateLimitedUntil:
      key.state === "RateLimited" || key.state === "QuotaExhausted" ? iso(key.untilMs) : undefined,
    averageLatencyMs: key.latencyMs,
    lastUsed: iso(key.lastUsedMs),
  };
}

/** The alerts one key raises now. */
function keyAlerts(model: string, key: KeyView, keyIndex: number): Alert[] {
  const base = { model, keyIndex, keyId: key.id, since: iso(key.lastError?.atMs) };
  const alerts: Alert[] = [];
  if (key.state === "Invalid") {
    alerts.push({
      ...base,
      severity: "high",
      type: "key_invalid",
      message: `Key ${key.masked} was refused by the provider (${key.lastError?.reason ?? "invalid"})`,
    });
  }
  if (key.consecutiveErrors >= CONSECUTIVE_FAILURES_ALERT) {
    alerts.push({
      ...base,
      severity: "high",
      type: "consecutive_failures",
      message: `Key ${key.masked} failed ${key.consecutiveErrors} times in a row`,
    });
  }
  if (key.requests >= ERROR_RATE_MIN_REQUESTS && key.errors / key.requests > ERROR_RATE_ALERT) {
    alerts.push({
      ...base,
      severity: "medium",
      type: "high_error_rate",
      message: `Key ${key.masked} has an error rate of ${((100 * key.errors) / key.requests).toFixed(1)}%`,
    });
  }
  if (key.state === "RateLimited" || key.state === "QuotaExhausted") {
    alerts.push({
      ...base,
      severity: "medium",
      type: key.state === "RateLimited" ? "rate_limited" : "quota_exhausted",
      message: `Key ${key.masked} is ${key.state} until ${iso(key.untilMs) ?? "further notice"}`,
    });
  }
  if (key.latencyMs !== undefined && key.latencyMs > HIGH_LATENCY_ALERT_MS) {
    alerts.push({
      ...base,
      severity: "low",
      type: "high_latency",
      message: `Key ${key.masked} averages ${(key.latencyMs / 1000).toFixed(1)} s per call`,
      since: undefined,
    });
  }
  return alerts;
}

/** Health of a set of keys in one word: all healthy, some usable, or none. */
function overallStatus(keys: readonly KeyView[]): "healthy" | "degraded" | "down" {
  if (keys.length > 0 && keys.every((k) => k.state === "Healthy")) return "healthy";
  return keys.some((k) => k.state === "Healthy" || k.state === "Degraded") ? "degraded" : "down";
}

function keyIndexParam(req: Request): number {
  const raw = String(req.params.keyIndex);
  if (!/^\d{1,6}$/.test(raw)) throw new KeyPoolError("invalid_request", "keyIndex must be a number from 0");
  return Number(raw);
}

export function createAgentCompatRouter(o: AgentCompatOptions): Router {
  const router = Router();
  const pools = async (req: Request) => usablePools(o, await compatCaller(o.auth, req, o.defaultNamespace));

  router.get("/api/keys/status", async (req, res) => {
    const models: Record<string, unknown> = {};
    for (const runtime of await pools(req)) {
      const keys = presentKeys(runtime);
      models[runtime.ref.name] = {
        provider: runtime.spec.provider,
        strategy: runtime.spec.strategy,
        totalKeys: keys.length,
        availableKeys: runtime.engine.usableCount,
        keys: keys.map(keyHealth),
      };
    }
    res.json({ success: true, timestamp: new Date(o.clock.now()).toISOString(), models });
  });

  router.get("/api/keys/:model", async (req, res) => {
    const { result, model, keys } = await dispenseModel(o, req, "model");
    res.set("Cache-Control", "no-store");
    res.json({
      success: true,
      model,
      key: result.key,
      keyId: result.keyId,
      keyIndex: keys.findIndex((k) => k.id === result.keyId),
      leaseId: result.leaseId,
      strategy: result.strategy,
    });
  });

  router.get("/api/health/summary", async (req, res) => {
    const byProvider = new Map<string, PoolRuntime[]>();
    for (const runtime of await pools(req)) {
      const list = byProvider.get(runtime.spec.provider) ?? [];
      list.push(runtime);
      byProvider.set(runtime.spec.provider, list);
    }
    const summarize = (runtimes: readonly PoolRuntime[]) => {
      const keys = runtimes.flatMap(presentKeys);
      const requests = keys.reduce((n, k) => n + k.requests, 0);
      const errors = keys.reduce((n, k) => n + k.errors, 0);
      return {
        status: overallStatus(keys),
        models: runtimes.map((r) => r.ref.name),
        totalKeys: keys.length,
        ...healthCounts(keys),
        requests,
        errors,
        successRate: successRate(requests, errors),
      };
    };
    const providers = Object.fromEntries(
      [...byProvider].map(([name, runtimes]) => [name, summarize(runtimes)]),
    );
    res.json({
      success: true,
      timestamp: new Date(o.clock.now()).toISOString(),
      overall: summarize([...byProvider.values()].flat()),
      providers,
    });
  });

  router.get("/api/health/alerts", async (req, res) => {
    const alerts = (await pools(req)).flatMap((runtime) =>
      presentKeys(runtime).flatMap((key, index) => keyAlerts(runtime.ref.name, key, index)),
    );
    alerts.sort(
      (a, b) =>
        SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] ||
        (b.since ?? "").localeCompare(a.since ?? ""),
    );
    res.json({
      success: true,
      timestamp: new Date(o.clock.now()).toISOString(),
      count: alerts.length,
      alerts,
    });
  });

  router.get("/api/health/:model/:keyIndex", async (req, res) => {
    const { ref } = await authorizedModelPool(o, req, "model", "use");
    const index = keyIndexParam(req);
    const keys = presentKeys(requirePool(o.registry, ref));
    const key = keys[index];
    if (!key) {
      throw new KeyPoolError(
        "key_not_found",
        `Model ${ref.name} has ${keys.length} key(s): keyIndex goes from 0 to ${keys.length - 1}`,
      );
    }
    res.json({
      success: true,
      model: String(req.params.model),
      ...keyHealth(key, index),
      keyIndex: index,
      source: key.source,
      until: iso(key.untilMs),
      healthScore: key.healthScore,
      consecutiveErrors: key.consecutiveErrors,
      inFlight: key.inFlight,
      lastError: key.lastError
        ? { code: key.lastError.code, reason: key.lastError.reason, at: iso(key.lastError.atMs) }
        : undefined,
      alerts: keyAlerts(ref.name, key, index),
    });
  });

  return router;
}
