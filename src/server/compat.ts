/**
 * Compatibility with the simple key-pool-manager API users already script against:
 * GET /keys/:model, POST /health/:model, GET /status, GET /health, and (standalone only)
 * POST/DELETE /keys/:model. A model name is a pool in the caller's namespace (its
 * ServiceAccount's) or the configured default, with dots and dashes alike. Its health words map
 * onto key states: healthy = Healthy, degraded = Degraded, failed = Invalid/QuotaExhausted/
 * Disabled, rate_limited = RateLimited. Answers carry `success`, errors too (`success: false`).
 */
import { Router } from "express";
import { z } from "zod";
import type { OutcomeKind } from "../pool/outcome.ts";
import { keyId } from "../pool/identity.ts";
import { parseBody } from "./body.ts";
import {
  authorizedModelPool,
  type CompatContext,
  compatCaller,
  dispenseModel,
  HEALTH_WORDS,
  type HealthWord,
  healthCounts,
  presentKeys,
  successRate,
  usablePools,
  WORD_OF_STATE,
} from "./compat-pools.ts";
import { report } from "./dispense.ts";
import { KeyPoolError } from "./errors.ts";
import { type PoolRef, refKey } from "../pool/registry.ts";

/** Standalone: keys added and removed at run time. */
export interface RuntimeKeys {
  addKey(
    ref: PoolRef,
    key: string,
  ):
    { ok: true; keyId: string } | { ok: false; reason: "pool_not_found" | "already_present" | "invalid_key" };
  removeKey(
    ref: PoolRef,
    keyId: string,
  ): { ok: true } | { ok: false; reason: "pool_not_found" | "not_found" | "not_removable" };
}

export interface CompatOptions extends CompatContext {
  mode: "kubernetes" | "standalone";
  runtimeKeys: RuntimeKeys | undefined;
}

/** What a reported health word means for the key. */
const OUTCOME_OF_WORD: Record<HealthWord, OutcomeKind> = {
  healthy: "success",
  /** Degraded at once; Healthy again after the pool's degradedCooldown (5m by default) or a success. */
  degraded: "degraded",
  /** Invalid: "requires manual intervention" (a probe or an admin reset brings it back). */
  failed: "invalidKey",
  rate_limited: "rateLimited",
};

/** key-pool-manager: "rate_limited - Key hit rate limits, auto-recovers after 15 minutes". */
const RATE_LIMITED_SECONDS = 15 * 60;

const HealthBody = z.object({
  key: z.string().min(1).max(4096),
  status: z.enum(HEALTH_WORDS),
  error: z.unknown().optional(),
  /** When the provider said (retry-after, in seconds): wins over the 15 minutes. */
  retryAfter: z
    .number()
    .min(0)
    .max(7 * 86_400)
    .optional(),
  /** The provider's answer headers (retry-after, x-ratelimit-reset-*): win over the 15 minutes. */
  headers: z.record(z.string(), z.string().max(1024)).optional(),
});
const KeyBody = z.object({ key: z.string().min(8).max(4096) });

export function createCompatRouter(o: CompatOptions): Router {
  const router = Router();

  router.get("/keys/:pool", async (req, res) => {
    const { result, model, keys } = await dispenseModel(o, req, "pool");
    const words = healthCounts(keys);
    res.set("Cache-Control", "no-store");
    res.json({
      success: true,
      model,
      key: result.key,
      keyId: result.keyId,
      leaseId: result.leaseId,
      pool: { totalKeys: keys.length, healthyKeys: words.healthy + words.degraded },
    });
  });

  router.post("/health/:pool", async (req, res) => {
    const { ref } = await authorizedModelPool(o, req, "pool", "use");
    const body = parseBody(HealthBody, req.body);
    const outcome = OUTCOME_OF_WORD[body.status];
    const rateLimited = outcome === "rateLimited";
    const result = await report(
      o.registry,
      o.clock,
      ref,
      {
        keyId: keyId(body.key),
        outcome,
        ...(rateLimited
          ? {
              statusCode: 429,
              ...(body.headers ? { headers: body.headers } : {}),
              ...(body.retryAfter !== undefined ? { retryAfterSeconds: body.retryAfter } : {}),
              defaultRetryAfterSeconds: RATE_LIMITED_SECONDS,
            }
          : {}),
      },
      o.coordinator,
    );
    res.json({
      success: true,
      model: String(req.params.pool),
      keyId: result.keyId,
      status: WORD_OF_STATE[result.state] ?? result.state.toLowerCase(),
      state: result.state,
    });
  });

  router.get("/status", async (req, res) => {
    const caller = await compatCaller(o.auth, req, o.defaultNamespace);
    const models: Record<string, unknown> = {};
    for (const runtime of await usablePools(o, caller)) {
      const keys = presentKeys(runtime);
      const requests = keys.reduce((n, k) => n + k.requests, 0);
      const errors = keys.reduce((n, k) => n + k.errors, 0);
      const next = runtime.engine.nextKeyId();
      models[runtime.ref.name] = {
        totalKeys: keys.length,
        health: healthCounts(keys),
        // Where the pool's rotation stands: the position of the key it hands out next.
        currentIndex: Math.max(
          0,
          keys.findIndex((k) => k.id === next),
        ),
        stats: { totalRequests: requests, successRate: successRate(requests, errors) },
      };
    }
    res.json({ status: "ok", timestamp: Math.floor(o.clock.now() / 1000), models });
  });

  router.get("/health", (_req, res) => {
    res.json({ status: "ok", timestamp: Math.floor(o.clock.now() / 1000), pools: o.registry.size });
  });

  const runtimeOnly = () => {
    if (o.mode === "kubernetes" || !o.runtimeKeys) {
      throw new KeyPoolError(
        "method_not_allowed",
        "Keys come from Secrets in Kubernetes mode: Git is the source of truth. Change the pool's Secret instead.",
      );
    }
    return o.runtimeKeys;
  };

  router.post("/keys/:pool", async (req, res) => {
    const keys = runtimeOnly();
    const { ref, caller } = await authorizedModelPool(o, req, "pool", "update");
    const body = parseBody(KeyBody, req.body);
    const result = keys.addKey(ref, body.key);
    if (!result.ok) {
      if (result.reason === "pool_not_found")
        throw new KeyPoolError("pool_not_found", `Pool ${ref.name} not found`);
      if (result.reason === "invalid_key") {
        throw new KeyPoolError("invalid_request", "key: must be one key without spaces, commas or newlines");
      }
      throw new KeyPoolError("conflict", `That key is already in pool ${ref.name}`);
    }
    o.logger.info(
      {
        audit: "add-key",
        caller: caller.username,
        pool: refKey(ref),
        keyId: result.keyId,
      },
      "key added",
    );
    res.status(201).json({ success: true, model: String(req.params.pool), keyId: result.keyId });
  });

  router.delete("/keys/:pool", async (req, res) => {
    const keys = runtimeOnly();
    const { ref, caller } = await authorizedModelPool(o, req, "pool", "update");
    const body = parseBody(KeyBody, req.body);
    const id = keyId(body.key);
    const result = keys.removeKey(ref, id);
    if (!result.ok) {
      if (result.reason === "pool_not_found")
        throw new KeyPoolError("pool_not_found", `Pool ${ref.name} not found`);
      if (result.reason === "not_found")
        throw new KeyPoolError("key_not_found", `That key is not in pool ${ref.name}`);
      throw new KeyPoolError(
        "method_not_allowed",
        "That key comes from a manifest's Secret: remove it there (the file is the source of truth)",
      );
    }
    o.logger.info(
      { audit: "remove-key", caller: caller.username, pool: refKey(ref), keyId: id },
      "key removed",
    );
    res.json({ success: true, model: String(req.params.pool), keyId: id });
  });

  return router;
}
