/**
 * Compatibility with the simple key-pool-manager API users already script against:
 * GET /keys/:pool, POST /health/:pool, GET /status, GET /health, and (standalone only)
 * POST/DELETE /keys/:pool. A pool name resolves in the caller's namespace (its ServiceAccount's)
 * or the configured default. Their health words map onto key states:
 * healthy = Healthy, degraded = Degraded, failed = Invalid/QuotaExhausted/Disabled,
 * rate_limited = RateLimited.
 */
import { Router, type Request } from "express";
import { z } from "zod";
import type { KeyState } from "../api/keypool.ts";
import type { PoolRegistry } from "../controller/pools.ts";
import type { PoolRef } from "../controller/status-writer.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { keyId } from "../pool/identity.ts";
import type { OutcomeKind } from "../pool/outcome.ts";
import type { SessionAffinity } from "./affinity.ts";
import { type Authorizer, bearerToken } from "./authorizer.ts";
import { dispense, report, requirePool } from "./dispense.ts";
import { parseBody } from "./body.ts";
import { KeyPoolError } from "./errors.ts";
import { kubeName } from "./names.ts";

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

export interface CompatOptions {
  registry: PoolRegistry;
  auth: Authorizer;
  clock: Clock;
  logger: Logger;
  affinity: SessionAffinity;
  mode: "kubernetes" | "standalone";
  defaultNamespace: string;
  runtimeKeys: RuntimeKeys | undefined;
}

const HEALTH_WORDS = ["healthy", "degraded", "failed", "rate_limited"] as const;
type HealthWord = (typeof HEALTH_WORDS)[number];

const WORD_OF_STATE: Partial<Record<KeyState, HealthWord>> = {
  Healthy: "healthy",
  Degraded: "degraded",
  Invalid: "failed",
  QuotaExhausted: "failed",
  Disabled: "failed",
  RateLimited: "rate_limited",
};

/** What a reported health word means for the key. */
const OUTCOME_OF_WORD: Record<HealthWord, OutcomeKind> = {
  healthy: "success",
  degraded: "serverError",
  failed: "invalidKey",
  rate_limited: "rateLimited",
};

const HealthBody = z.object({
  key: z.string().min(1).max(4096),
  status: z.enum(HEALTH_WORDS),
  error: z.unknown().optional(),
});
const KeyBody = z.object({ key: z.string().min(8).max(4096) });

export function createCompatRouter(o: CompatOptions): Router {
  const router = Router();

  /** The caller's pool: its namespace (ServiceAccount) or the default; checks `verb` on it. */
  const resolve = async (req: Request, verb: "use" | "update"): Promise<{ ref: PoolRef; caller: string }> => {
    const name = kubeName(req.params.pool, "pool");
    const token = bearerToken(req.get("authorization"));
    const who = await o.auth.authenticate(token);
    if (!who.ok) throw new KeyPoolError(who.code, who.message);
    const ref = { namespace: who.caller.serviceAccount?.namespace ?? o.defaultNamespace, name };
    const decision = await o.auth.check(token, verb, ref.namespace, ref.name);
    if (!decision.ok) throw new KeyPoolError(decision.code, decision.message);
    return { ref, caller: who.caller.username };
  };

  /** Key counts in the compat API's words (Draining keys are leaving, so not counted). */
  const health = (ref: PoolRef) => {
    const counts = requirePool(o.registry, ref).engine.stateCounts();
    const words: Record<HealthWord, number> = { healthy: 0, degraded: 0, failed: 0, rate_limited: 0 };
    let total = 0;
    for (const [state, n] of Object.entries(counts) as Array<[KeyState, number]>) {
      const word = WORD_OF_STATE[state];
      if (word) words[word] += n;
      if (state !== "Draining") total += n;
    }
    return { total, words };
  };

  router.get("/keys/:pool", async (req, res) => {
    const { ref, caller } = await resolve(req, "use");
    const result = dispense(o.registry, o.affinity, o.clock, ref);
    o.logger.info(
      {
        audit: "dispense",
        caller,
        pool: `${ref.namespace}/${ref.name}`,
        keyId: result.keyId,
        leaseId: result.leaseId,
      },
      "key dispensed (compat)",
    );
    const counts = health(result.servedBy);
    res.set("Cache-Control", "no-store");
    res.json({
      success: true,
      model: result.servedBy.name,
      key: result.key,
      keyId: result.keyId,
      leaseId: result.leaseId,
      pool: { totalKeys: counts.total, healthyKeys: counts.words.healthy + counts.words.degraded },
    });
  });

  router.post("/health/:pool", async (req, res) => {
    const { ref } = await resolve(req, "use");
    const body = parseBody(HealthBody, req.body);
    const result = report(o.registry, o.clock, ref, {
      keyId: keyId(body.key),
      outcome: OUTCOME_OF_WORD[body.status],
    });
    res.json({
      success: true,
      keyId: result.keyId,
      status: WORD_OF_STATE[result.state] ?? result.state.toLowerCase(),
    });
  });

  router.get("/status", async (req, res) => {
    const who = await o.auth.authenticate(bearerToken(req.get("authorization")));
    if (!who.ok) throw new KeyPoolError(who.code, who.message);
    const namespace = who.caller.serviceAccount?.namespace ?? o.defaultNamespace;
    const models: Record<string, unknown> = {};
    for (const runtime of o.registry.values()) {
      if (runtime.ref.namespace !== namespace) continue;
      const allowed = await o.auth.check(
        bearerToken(req.get("authorization")),
        "use",
        namespace,
        runtime.ref.name,
      );
      if (!allowed.ok) continue;
      const counts = health(runtime.ref);
      const keys = runtime.engine.keys().filter((k) => k.state !== "Draining");
      const requests = keys.reduce((n, k) => n + k.requests, 0);
      const errors = keys.reduce((n, k) => n + k.errors, 0);
      models[runtime.ref.name] = {
        totalKeys: counts.total,
        health: counts.words,
        currentIndex: 0,
        stats: {
          totalRequests: requests,
          successRate: requests
            ? `${((100 * Math.max(0, requests - errors)) / requests).toFixed(2)}%`
            : "100.00%",
        },
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
    const { ref, caller } = await resolve(req, "update");
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
      { audit: "add-key", caller, pool: `${ref.namespace}/${ref.name}`, keyId: result.keyId },
      "key added",
    );
    res.status(201).json({ success: true, keyId: result.keyId });
  });

  router.delete("/keys/:pool", async (req, res) => {
    const keys = runtimeOnly();
    const { ref, caller } = await resolve(req, "update");
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
        "That key comes from a manifest or environment variable: remove it there",
      );
    }
    o.logger.info(
      { audit: "remove-key", caller, pool: `${ref.namespace}/${ref.name}`, keyId: id },
      "key removed",
    );
    res.json({ success: true, keyId: id });
  });

  return router;
}
