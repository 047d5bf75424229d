/**
 * What the compatibility APIs (compat.ts: key-pool-manager; compat-agent.ts: the agent key
 * manager's /api routes) share: a "model" name resolved to a pool in the caller's namespace,
 * the pools a caller may read, key states in their health words, and their error bodies.
 */
import type { Request } from "express";
import type { KeyState } from "../api/keypool.ts";
import { type PoolRef, type PoolRegistry, type PoolRuntime, refKey } from "../pool/registry.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import type { KeyView } from "../pool/engine.ts";
import type { SessionAffinity } from "./affinity.ts";
import type { AuthVerb } from "./authorizer.ts";
import { type Authorizer, bearerToken, refusal } from "./authorizer.ts";
import type { KeyCoordinator } from "../state/coordinator.ts";
import { type DispenseOptions, type DispenseResult, dispense, requirePool } from "./dispense.ts";
import type { KeyPoolError } from "./errors.ts";
import { kubeName } from "./names.ts";

/** What the compatibility routes work with. */
export interface CompatContext {
  registry: PoolRegistry;
  auth: Authorizer;
  clock: Clock;
  logger: Logger;
  affinity: SessionAffinity;
  /** Namespace of model names for callers without one (not ServiceAccounts, or no auth). */
  defaultNamespace: string;
  /** The state store's side of picks and reports (default: the memory store). */
  coordinator?: KeyCoordinator | undefined;
  /** Told how each dispense of an existing pool ended (keypool_dispenses_total). */
  countDispense?: DispenseOptions["count"];
}

/** Paths of the compatibility routes: bodies are read as JSON whatever their content type, and
 * errors carry `success: false`, as the tools they come from answer. */
export const COMPAT_PATH_RE = /^\/(?:keys|health|status|api)(?:\/|$)/;

export const HEALTH_WORDS = ["healthy", "degraded", "failed", "rate_limited"] as const;
export type HealthWord = (typeof HEALTH_WORDS)[number];

/** A key state in the key-pool-manager's words (Draining keys are leaving: no word). */
export const WORD_OF_STATE: Partial<Record<KeyState, HealthWord>> = {
  Healthy: "healthy",
  Degraded: "degraded",
  Invalid: "failed",
  QuotaExhausted: "failed",
  Disabled: "failed",
  RateLimited: "rate_limited",
};

/** Model names written with dots and with dashes are one name ("gpt-3.5-turbo" is GPT_3_5_TURBO_KEYS). */
const foldModel = (name: string) => name.replaceAll(".", "-");

/**
 * The pool a model name means in `namespace`: the pool of that name, else the one whose name is
 * the same with dots and dashes taken alike. Unknown models resolve to their own name (a lookup
 * then answers pool_not_found with the name the caller used).
 */
export function modelPool(registry: PoolRegistry, namespace: string, model: string): PoolRef {
  const exact = { namespace, name: model };
  if (registry.get(exact)) return exact;
  const folded = foldModel(model);
  for (const runtime of registry.values()) {
    if (runtime.ref.namespace === namespace && foldModel(runtime.ref.name) === folded) return runtime.ref;
  }
  return exact;
}

export interface CompatCaller {
  /** The caller's namespace (its ServiceAccount's) or the default. */
  namespace: string;
  username: string;
  token: string | undefined;
}

/** Who calls, and in which namespace their model names resolve. */
export async function compatCaller(
  auth: Authorizer,
  req: Request,
  defaultNamespace: string,
): Promise<CompatCaller> {
  const token = bearerToken(req.get("authorization"));
  const who = await auth.authenticate(token);
  if (!who.ok) throw refusal(who);
  return {
    namespace: who.caller.serviceAccount?.namespace ?? defaultNamespace,
    username: who.caller.username,
    token,
  };
}

/** The pool a route's model parameter names, after checking the caller may `verb` it. */
export async function authorizedModelPool(
  o: { registry: PoolRegistry; auth: Authorizer; defaultNamespace: string },
  req: Request,
  param: string,
  verb: AuthVerb,
): Promise<{ ref: PoolRef; caller: CompatCaller }> {
  const model = kubeName(req.params[param], "model");
  const caller = await compatCaller(o.auth, req, o.defaultNamespace);
  const ref = modelPool(o.registry, caller.namespace, model);
  const decision = await o.auth.check(caller.token, verb, ref.namespace, ref.name);
  if (!decision.ok) throw refusal(decision);
  return { ref, caller };
}

/**
 * Hands out a key of the model a route's `param` names, after checking `use`, with the audit
 * line. `model` is the name the caller used (or the fallback pool's, when one served); `keys`
 * are the serving pool's present keys.
 */
export async function dispenseModel(
  o: CompatContext,
  req: Request,
  param: string,
): Promise<{ result: DispenseResult; model: string; keys: KeyView[] }> {
  const { ref, caller } = await authorizedModelPool(o, req, param, "use");
  const result = await dispense(o.registry, o.affinity, o.clock, ref, {
    coordinator: o.coordinator,
    count: o.countDispense,
  });
  o.logger.info(
    {
      audit: "dispense",
      caller: caller.username,
      pool: refKey(ref),
      keyId: result.keyId,
      leaseId: result.leaseId,
    },
    "key dispensed (compat)",
  );
  return {
    result,
    model: result.fallbackFrom.length === 0 ? String(req.params[param]) : result.servedBy.name,
    keys: presentKeys(requirePool(o.registry, result.servedBy)),
  };
}

/** The pools of the caller's namespace it may use, in name order. */
export async function usablePools(
  o: { registry: PoolRegistry; auth: Authorizer },
  caller: CompatCaller,
): Promise<PoolRuntime[]> {
  const pools: PoolRuntime[] = [];
  for (const runtime of o.registry.values()) {
    if (runtime.ref.namespace !== caller.namespace) continue;
    const allowed = await o.auth.check(caller.token, "use", runtime.ref.namespace, runtime.ref.name);
    if (allowed.ok) pools.push(runtime);
  }
  return pools.sort((a, b) => a.ref.name.localeCompare(b.ref.name));
}

/** The keys of a pool that are in it now (Draining keys have left their source). */
export function presentKeys(runtime: PoolRuntime): KeyView[] {
  return runtime.engine.keys().filter((k) => k.state !== "Draining");
}

/** Successful share of a key's (or pool's) requests, as "96.67%". */
export function successRate(requests: number, errors: number): string {
  return requests ? `${((100 * Math.max(0, requests - errors)) / requests).toFixed(2)}%` : "100.00%";
}

/** Key counts in health words. */
export function healthCounts(keys: readonly KeyView[]): Record<HealthWord, number> {
  const words: Record<HealthWord, number> = { healthy: 0, degraded: 0, failed: 0, rate_limited: 0 };
  for (const key of keys) {
    const word = WORD_OF_STATE[key.state];
    if (word) words[word]++;
  }
  return words;
}

/** A compat route's error body: `success: false` beside the API's usual `error`. */
export function compatErrorBody(error: KeyPoolError): unknown {
  return { success: false, ...error.toJSON() };
}
