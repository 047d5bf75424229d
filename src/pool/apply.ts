/**
 * Applying a pool: the one step every source takes to make the registry hold what a KeyPool says
 * now (the controller from the cluster, `keypool serve` from files and variables). It creates the
 * pool's engine the first time (restored from saved state: a status, a state file), applies a
 * changed spec to an existing one, and gives it the keys its sources hold, skipping the work when
 * neither changed. spec.drainedKeys and spec.disabledKeys apply here too, so every source honours
 * them: a drained key is left out of the entries (the engine drains it as if it had left its
 * Secret), and the engine keeps the disabled ones Disabled. Pure: no I/O.
 */
import { createHash } from "node:crypto";
import type { KeyPoolSpec, ModelPrice } from "../api/keypool.ts";
import { poolConfigFromSpec } from "./config.ts";
import { type EngineOptions, KeyPoolEngine } from "./engine.ts";
import { keyId } from "./identity.ts";
import type { KeyEntry } from "./key.ts";
import type { PoolRef, PoolRegistry, PoolRuntime } from "./registry.ts";
import type { EngineSnapshot } from "./snapshot.ts";

export interface PoolApplication {
  ref: PoolRef;
  /** The object's uid: a pool deleted and created again under the same name is a new pool. */
  uid: string | undefined;
  generation: number | undefined;
  spec: KeyPoolSpec;
  /** The price list spec.pricingRef names, when the source read one (spec.pricing wins over it). */
  referencedPrices?: readonly ModelPrice[] | undefined;
  /** The keys its sources hold now. */
  entries: readonly KeyEntry[];
  /** State to start a new engine from (a state file, a status); read only when it is created. */
  restoreFrom?: () => EngineSnapshot | undefined;
  /**
   * Another writer's view to merge into an existing engine before its keys are set (the status
   * other replicas write): the newer fact wins per key (KeyPoolEngine.merge).
   */
  mergeFrom?: () => EngineSnapshot | undefined;
  /** For a new engine: its clock, lease tokens and transition listener. */
  engine: EngineOptions;
}

export interface AppliedPool {
  runtime: PoolRuntime;
  /** The engine was created by this call. */
  created: boolean;
  /** An existing engine was given a changed spec. */
  configChanged: boolean;
  /** Key ids that joined and left (started draining) with this call. */
  added: string[];
  removed: string[];
}

/** Fingerprints of the key entries last given to each engine, so an unchanged set costs nothing. */
const appliedKeys = new WeakMap<KeyPoolEngine, string>();
const appliedSpecs = new WeakMap<KeyPoolEngine, string>();

/** Makes `registry` hold the pool as `app` describes it; see the module header. */
export function applyPool(registry: PoolRegistry, app: PoolApplication): AppliedPool {
  const specJson = JSON.stringify([app.spec, app.referencedPrices]);
  let runtime = registry.get(app.ref);
  let created = false;
  let configChanged = false;
  if (runtime && runtime.uid === app.uid) {
    if (appliedSpecs.get(runtime.engine) !== specJson) {
      runtime.engine.setConfig(poolConfigFromSpec(app.spec, app.referencedPrices));
      appliedSpecs.set(runtime.engine, specJson);
      configChanged = true;
    }
    runtime.spec = app.spec;
    runtime.generation = app.generation;
    const seen = app.mergeFrom?.();
    if (seen) runtime.engine.merge(seen);
  } else {
    const ref = { namespace: app.ref.namespace, name: app.ref.name };
    const own = app.engine.onTransition;
    const ownBudget = app.engine.onBudget;
    const engine = new KeyPoolEngine(poolConfigFromSpec(app.spec, app.referencedPrices), {
      ...app.engine,
      onTransition: (event) => {
        own?.(event);
        registry.transitioned(ref, event);
      },
      onBudget: (notice) => {
        ownBudget?.(notice);
        registry.budgetNoticed(ref, notice);
      },
    });
    // Before the first setKeys: saved cooldowns and Invalid marks apply as the keys arrive.
    const saved = app.restoreFrom?.();
    if (saved) engine.restore(saved);
    appliedSpecs.set(engine, specJson);
    runtime = {
      ref,
      uid: app.uid,
      engine,
      spec: app.spec,
      generation: app.generation,
      secretNames: new Set(),
      usesSelector: app.spec.secretSelector !== undefined,
    };
    registry.set(runtime);
    created = true;
  }
  runtime.usesSelector = app.spec.secretSelector !== undefined;
  // Before setKeys: a key coming back from Draining goes straight to Disabled when listed.
  runtime.engine.setDisabledKeys(new Set(app.spec.disabledKeys ?? []));
  const entries = withoutDrained(app.entries, app.spec.drainedKeys);
  const fingerprint = createHash("sha256").update(JSON.stringify(entries)).digest("base64");
  if (appliedKeys.get(runtime.engine) === fingerprint)
    return { runtime, created, configChanged, added: [], removed: [] };
  const change = runtime.engine.setKeys(entries);
  appliedKeys.set(runtime.engine, fingerprint);
  return { runtime, created, configChanged, ...change };
}

/** The entries whose keys spec.drainedKeys does not list. */
function withoutDrained(entries: readonly KeyEntry[], drained: readonly string[] | undefined) {
  if (!drained?.length) return entries;
  const ids = new Set(drained);
  return entries.filter((entry) => !ids.has(keyId(entry.key)));
}
