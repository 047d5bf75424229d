/**
 * src/sources/files — the standalone source: pools without a cluster, for local development
 * and for users without Kubernetes. KeyPool and Secret manifests come from a directory (followed
 * as it changes), pools from `NAME_KEYS` environment variables, and the engines' state is kept
 * in a state file so a restart resumes cooldowns and Invalid marks.
 * May import: src/api, src/pool, src/sources/kubernetes (the resolver), src/log types,
 * src/pool (the registry), node built-ins, yaml, zod.
 */
import type { KeyPoolSpec, ModelPrice } from "../../api/keypool.ts";
import { type PoolRegistry, type PoolRuntime, refKey } from "../../pool/registry.ts";
import type { Logger } from "../../log.ts";
import type { Clock } from "../../pool/clock.ts";
import { applyPool } from "../../pool/apply.ts";
import type { KeyTransitionEvent } from "../../pool/engine.ts";
import { keyId } from "../../pool/identity.ts";
import type { KeyEntry } from "../../pool/key.ts";
import type { EngineSnapshot, KeySnapshot } from "../../pool/snapshot.ts";
import { resolvePricing } from "../kubernetes/pricing.ts";
import { resolvePoolKeys } from "../kubernetes/secrets.ts";
import { type DirectoryScan, directoryConfigMaps, directorySecrets, ManifestDirectory } from "./directory.ts";
import { type EnvPools, readEnvPools } from "./env.ts";
import { DirectoryFollower } from "./follow.ts";
import { errorCode } from "./fs-errors.ts";
import { STATE_FILE_VERSION, StateFile, type StandaloneState } from "./state-file.ts";

export interface StandaloneOptions {
  /**
   * *.yaml / *.yml / *.json, multi-document; KeyPool, Secret and ConfigMap (v1: spec.pricingRef's
   * price lists) objects; others are ignored.
   */
  manifestsDir: string | undefined;
  /** NAME_KEYS=k1,k2 → pool "name" (see env.ts). Read once, at start. */
  env: Readonly<Record<string, string | undefined>>;
  /** Namespace of manifests without one and of env pools. */
  defaultNamespace: string;
  /** JSON state; written atomically, mode 0600, at most every stateSaveIntervalMs and on stop(). */
  stateFile: string | undefined;
  registry: PoolRegistry;
  logger: Logger;
  clock: Clock;
  newLeaseToken: () => number;
  onTransition?: (ref: { namespace: string; name: string }, event: KeyTransitionEvent) => void;
  /** fs.watch misses events on some file systems, so the directory is also rescanned this often. */
  rescanIntervalMs?: number;
  /**
   * How often time-driven transitions (ended cooldowns, quiet Degraded keys) are applied when
   * nothing else touches a pool, so recoveries are logged and saved on time. Off when undefined.
   */
  recoveryIntervalMs?: number;
  stateSaveIntervalMs?: number;
}

/** One problem, one line. namespace and name are empty when it concerns a file, not a pool. */
export interface StandalonePoolProblem {
  namespace: string;
  name: string;
  message: string;
}

export type AddKeyResult =
  { ok: true; keyId: string } | { ok: false; reason: "pool_not_found" | "already_present" | "invalid_key" };

export type RemoveKeyResult =
  { ok: true } | { ok: false; reason: "pool_not_found" | "not_found" | "not_removable" };

const DEFAULT_RESCAN_INTERVAL_MS = 2_000;
const DEFAULT_STATE_SAVE_INTERVAL_MS = 5_000;

type Ref = { namespace: string; name: string };

/** What a pool should be now, from a manifest or a variable. */
interface DesiredPool {
  ref: Ref;
  origin: "manifest" | "env";
  spec: KeyPoolSpec;
  /** Env pools: the keys and the variable they came from. */
  env?: { variable: string; entries: KeyEntry[] };
  /** spec.pricingRef's price list, read from a ConfigMap in the directory. */
  prices?: ModelPrice[] | undefined;
}

/** A pool this source put in the registry. */
interface OwnedPool {
  runtime: PoolRuntime;
  origin: "manifest" | "env";
  /** Keys from the manifest's Secrets or the variable (the API cannot remove these). */
  base: KeyEntry[];
  baseIds: Set<string>;
  /**
   * Restored key states whose key has not arrived (its Secret is missing for now). The engine
   * holds them for the key, but its snapshot() has only present keys: without this, the next
   * save would drop an Invalid mark the moment a Secret is briefly missing.
   */
  unclaimed: Map<string, KeySnapshot>;
  /** spec.pricingRef's price list as last read (spec.pricing wins over it). */
  prices: ModelPrice[] | undefined;
}

export class StandaloneSource {
  readonly #o: StandaloneOptions;
  readonly #log: Logger;
  readonly #stateFile: StateFile | undefined;
  readonly #dir: ManifestDirectory | undefined;
  readonly #follower: DirectoryFollower | undefined;
  readonly #pools = new Map<string, OwnedPool>();
  /** Snapshots of pools not loaded now (invalid, removed, not there yet): kept so they resume. */
  #saved = new Map<string, EngineSnapshot>();
  /** Keys added through the API, by pool; kept while their pool is away, like snapshots. */
  #added = new Map<string, string[]>();
  /** Ids of `*_KEYS` keys removed through the API, by pool: gone until the process restarts. */
  readonly #removed = new Map<string, Set<string>>();
  #env: EnvPools = { pools: [], problems: [] };
  #problems: StandalonePoolProblem[] = [];
  #reported = new Set<string>();

  #queue: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;
  #writes: Promise<void> = Promise.resolve();
  #savedSignature: string | undefined;
  #saveError: string | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  #recoveryTimer: NodeJS.Timeout | undefined;
  #started = false;

  constructor(options: StandaloneOptions) {
    this.#o = options;
    this.#log = options.logger.child({ source: "standalone" });
    if (options.stateFile !== undefined) {
      this.#stateFile = new StateFile({ path: options.stateFile, logger: this.#log, clock: options.clock });
    }
    if (options.manifestsDir !== undefined) {
      this.#dir = new ManifestDirectory({
        dir: options.manifestsDir,
        defaultNamespace: options.defaultNamespace,
        logger: this.#log,
        ignore: options.stateFile !== undefined ? [options.stateFile] : [],
      });
      this.#follower = new DirectoryFollower({
        dir: options.manifestsDir,
        rescanIntervalMs: options.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS,
        logger: this.#log,
        onChange: () => {
          this.reload().catch((err: unknown) => this.#log.error({ err }, "rescan failed"));
        },
      });
    }
  }

  /** Restores the state file, loads every pool once, then follows the directory. */
  async start(): Promise<void> {
    if (this.#started) throw new Error("StandaloneSource already started");
    this.#started = true;
    if (this.#stateFile) {
      const state = await this.#stateFile.read();
      this.#saved = new Map(Object.entries(state.pools));
      this.#added = new Map(Object.entries(state.addedKeys));
    }
    this.#env = readEnvPools(this.#o.env);
    await this.reload();
    this.#log.info(
      { pools: this.#pools.size, problems: this.#problems.length, dir: this.#o.manifestsDir },
      "standalone pools loaded",
    );
    this.#follower?.start();
    if (this.#o.recoveryIntervalMs !== undefined) {
      this.#recoveryTimer = setInterval(() => {
        for (const pool of this.#pools.values()) pool.runtime.engine.tick();
      }, this.#o.recoveryIntervalMs);
      this.#recoveryTimer.unref();
    }
    if (this.#stateFile) {
      this.#saveTimer = setInterval(() => {
        void this.#save(false);
      }, this.#o.stateSaveIntervalMs ?? DEFAULT_STATE_SAVE_INTERVAL_MS);
      this.#saveTimer.unref();
    }
  }

  /** Stops following and writes the state file. Pools stay in the registry. */
  async stop(): Promise<void> {
    this.#follower?.stop();
    clearInterval(this.#saveTimer);
    this.#saveTimer = undefined;
    clearInterval(this.#recoveryTimer);
    this.#recoveryTimer = undefined;
    await this.#queue;
    if (this.#started) await this.#save(true);
    this.#started = false;
  }

  /** Rescans now. Calls made while a rescan waits to start share it. */
  reload(): Promise<void> {
    if (this.#queued) return this.#queued;
    const run = this.#queue.then(async () => {
      this.#queued = undefined;
      await this.#rescan();
    });
    this.#queued = run;
    this.#queue = run.catch(() => undefined);
    return run;
  }

  problems(): StandalonePoolProblem[] {
    return this.#problems.map((p) => ({ ...p }));
  }

  /**
   * Adds a key to a pool at run time (the compat API's POST /keys/:pool). The key is kept in the
   * state file (mode 0600) and survives restarts. A `*_KEYS` key removed through the API comes back.
   */
  addKey(ref: Ref, key: string): AddKeyResult {
    const value = key.trim();
    // One key: no separators (a Secret entry would split it) and no inner whitespace.
    if (value === "" || /[\s,]/.test(value)) return { ok: false, reason: "invalid_key" };
    const pool = this.#pools.get(refKey(ref));
    if (!pool) return { ok: false, reason: "pool_not_found" };
    const id = keyId(value);
    const removed = this.#removed.get(refKey(ref));
    if (removed?.delete(id)) {
      this.#applyKeys(pool);
      this.#log.info({ pool: refKey(ref), keyId: id }, "removed key added back through the API");
      return { ok: true, keyId: id };
    }
    const added = this.#added.get(refKey(ref)) ?? [];
    if (pool.baseIds.has(id) || added.some((k) => keyId(k) === id))
      return { ok: false, reason: "already_present" };
    this.#added.set(refKey(ref), [...added, value]);
    this.#applyKeys(pool);
    this.#log.info({ pool: refKey(ref), keyId: id }, "key added through the API");
    return { ok: true, keyId: id };
  }

  /**
   * Removes a key: one added through the API for good, one from a `*_KEYS` variable until the
   * process restarts (the variable still holds it). A manifest's key cannot be removed here: its
   * file is the source of truth, and a rescan would bring it back.
   */
  removeKey(ref: Ref, id: string): RemoveKeyResult {
    const pool = this.#pools.get(refKey(ref));
    if (!pool) return { ok: false, reason: "pool_not_found" };
    if (pool.baseIds.has(id)) {
      if (pool.origin !== "env") return { ok: false, reason: "not_removable" };
      const removed = this.#removed.get(refKey(ref)) ?? new Set<string>();
      if (removed.has(id)) return { ok: false, reason: "not_found" };
      removed.add(id);
      this.#removed.set(refKey(ref), removed);
      this.#applyKeys(pool);
      this.#log.info({ pool: refKey(ref), keyId: id }, "key removed through the API until restart");
      return { ok: true };
    }
    const added = this.#added.get(refKey(ref)) ?? [];
    const rest = added.filter((k) => keyId(k) !== id);
    if (rest.length === added.length) return { ok: false, reason: "not_found" };
    if (rest.length > 0) this.#added.set(refKey(ref), rest);
    else this.#added.delete(refKey(ref));
    this.#applyKeys(pool);
    this.#log.info({ pool: refKey(ref), keyId: id }, "key removed through the API");
    return { ok: true };
  }

  // --- loading ----------------------------------------------------------------------------

  async #rescan(): Promise<void> {
    const scan: DirectoryScan = this.#dir
      ? await this.#dir.scan()
      : { pools: new Map(), secrets: new Map(), configMaps: new Map(), problems: [] };
    const problems: StandalonePoolProblem[] = scan.problems.map((p) => ({
      namespace: p.ref?.namespace ?? "",
      name: p.ref?.name ?? "",
      message: p.message,
    }));

    const desired = new Map<string, DesiredPool>();
    for (const [key, manifest] of scan.pools) {
      if (manifest.result.ok) {
        desired.set(key, { ref: manifest.ref, origin: "manifest", spec: manifest.result.value.spec });
        continue;
      }
      // An invalid edit keeps the last valid version serving, as a rejected update would in a cluster.
      const current = this.#pools.get(key);
      const keep = current?.origin === "manifest";
      problems.push({
        ...manifest.ref,
        message:
          `${manifest.origin}: KeyPool ${key} is invalid: ${manifest.result.message}; ` +
          (keep ? "still serving its last valid version" : "not served until it is fixed"),
      });
      if (current && keep)
        desired.set(key, { ref: manifest.ref, origin: "manifest", spec: current.runtime.spec });
    }

    const namespace = this.#o.defaultNamespace;
    for (const problem of this.#env.problems) problems.push({ namespace, ...problem });
    for (const pool of this.#env.pools) {
      const ref = { namespace, name: pool.name };
      const manifest = scan.pools.get(refKey(ref));
      if (manifest && desired.has(refKey(ref))) {
        problems.push({
          ...ref,
          message: `${pool.variable} is ignored: KeyPool ${refKey(ref)} is defined in ${manifest.origin}`,
        });
        continue;
      }
      desired.set(refKey(ref), {
        ref,
        origin: "env",
        spec: pool.spec,
        env: { variable: pool.variable, entries: pool.entries },
      });
    }

    const secrets = directorySecrets(scan.secrets);
    const configMaps = directoryConfigMaps(scan.configMaps);
    for (const [key, want] of desired) {
      // Every ConfigMap in the directory is in the cache, so one outside it is simply missing.
      const pricing = await resolvePricing(want.ref.namespace, want.spec, configMaps, async () => "missing");
      want.prices = pricing.prices;
      if (pricing.problem)
        problems.push({ ...want.ref, message: `${pricing.problem.message} (in the manifests)` });
      const pool = this.#ensurePool(key, want);
      if (want.env) {
        pool.base = want.env.entries;
        pool.runtime.secretNames = new Set();
        pool.runtime.usesSelector = false;
      } else {
        // Every Secret in the directory is in the cache, so one outside it is simply missing.
        const resolved = await resolvePoolKeys(want.ref.namespace, want.spec, secrets, async () => "missing");
        pool.base = resolved.entries;
        pool.runtime.secretNames = resolved.secretNames;
        pool.runtime.webhooks = resolved.webhooks;
        pool.runtime.usesSelector = want.spec.secretSelector !== undefined;
        for (const p of resolved.problems)
          problems.push({ ...want.ref, message: `${p.message} in the manifests` });
      }
      pool.baseIds = new Set(pool.base.map((e) => keyId(e.key)));
      const total = this.#applyKeys(pool);
      if (total === 0) {
        const from = want.env ? `${want.env.variable} holds no keys` : "its Secrets hold no keys";
        problems.push({ ...want.ref, message: `KeyPool ${key} has no keys: ${from}` });
      }
    }

    for (const [key, pool] of this.#pools) {
      if (desired.has(key)) continue;
      this.#saved.set(key, this.#snapshot(pool));
      this.#pools.delete(key);
      this.#o.registry.delete(pool.runtime.ref);
      this.#log.info({ pool: key }, "pool removed: its manifest is gone");
    }

    this.#setProblems(problems);
  }

  #ensurePool(key: string, want: DesiredPool): OwnedPool {
    const existing = this.#pools.get(key);
    if (existing) {
      existing.prices = want.prices;
      // A changed spec applies at once; the keys follow when #applyKeys sets the new ones.
      if (this.#apply(existing.runtime.ref, want.spec, want.prices, this.#entries(existing)).configChanged)
        this.#log.info({ pool: key }, "pool spec changed");
      existing.origin = want.origin;
      return existing;
    }
    const saved = this.#saved.get(key);
    this.#saved.delete(key);
    const { runtime } = this.#apply(want.ref, want.spec, want.prices, [], saved);
    const pool: OwnedPool = {
      runtime,
      origin: want.origin,
      base: [],
      baseIds: new Set(),
      unclaimed: new Map((saved?.keys ?? []).map((k) => [k.id, k])),
      prices: want.prices,
    };
    this.#pools.set(key, pool);
    this.#log.info({ pool: key, from: want.origin, restored: saved !== undefined }, "pool added");
    return pool;
  }

  /**
   * The registry's pool as `spec`, its referenced `prices` and `entries` say (created, restored
   * from `saved`, the first time).
   */
  #apply(
    ref: Ref,
    spec: KeyPoolSpec,
    prices: readonly ModelPrice[] | undefined,
    entries: KeyEntry[],
    saved?: EngineSnapshot,
  ) {
    const at = { namespace: ref.namespace, name: ref.name };
    return applyPool(this.#o.registry, {
      ref: at,
      uid: undefined,
      generation: undefined,
      spec,
      referencedPrices: prices,
      entries,
      restoreFrom: () => saved,
      engine: {
        clock: this.#o.clock,
        newLeaseToken: this.#o.newLeaseToken,
        onTransition: (event) => this.#onTransition(at, event),
      },
    });
  }

  /** The pool's keys now: its source's (less those removed through the API) and the API's. */
  #entries(pool: OwnedPool): KeyEntry[] {
    const key = refKey(pool.runtime.ref);
    const added = (this.#added.get(key) ?? []).map((k): KeyEntry => ({ key: k, source: `api/${keyId(k)}` }));
    const removed = this.#removed.get(key);
    const base = removed?.size ? pool.base.filter((e) => !removed.has(keyId(e.key))) : pool.base;
    return [...base, ...added];
  }

  /** Gives the engine the pool's keys (its sources' and the API's) when they changed. Returns how many. */
  #applyKeys(pool: OwnedPool): number {
    const entries = this.#entries(pool);
    const change = this.#apply(pool.runtime.ref, pool.runtime.spec, pool.prices, entries);
    for (const id of change.added) pool.unclaimed.delete(id);
    if (change.added.length || change.removed.length) {
      this.#log.info(
        {
          pool: refKey(pool.runtime.ref),
          added: change.added,
          removed: change.removed,
          total: pool.runtime.engine.size,
        },
        "key set changed",
      );
    }
    return entries.length;
  }

  #onTransition(ref: Ref, event: KeyTransitionEvent) {
    this.#log.info(
      { pool: refKey(ref), keyId: event.keyId, from: event.from, to: event.to, reason: event.reason },
      "key state changed",
    );
    this.#o.onTransition?.(ref, event);
  }

  /** Logs each problem once, when it appears (and once more when it is gone). */
  #setProblems(problems: StandalonePoolProblem[]) {
    const lines = new Set(problems.map((p) => `${p.namespace}/${p.name}\n${p.message}`));
    for (const p of problems) {
      const line = `${p.namespace}/${p.name}\n${p.message}`;
      if (!this.#reported.has(line)) this.#log.warn({ pool: p.name ? refKey(p) : undefined }, p.message);
    }
    for (const line of this.#reported) {
      if (!lines.has(line)) this.#log.info({ problem: line.split("\n")[1] }, "problem resolved");
    }
    this.#reported = lines;
    this.#problems = problems;
  }

  // --- state file -------------------------------------------------------------------------

  #state(): StandaloneState {
    const pools: Record<string, EngineSnapshot> = Object.fromEntries(this.#saved);
    for (const [key, pool] of this.#pools) pools[key] = this.#snapshot(pool);
    const addedKeys = Object.fromEntries([...this.#added].filter(([, keys]) => keys.length > 0));
    return { version: STATE_FILE_VERSION, pools, addedKeys };
  }

  #snapshot(pool: OwnedPool): EngineSnapshot {
    const snapshot = pool.runtime.engine.snapshot();
    if (pool.unclaimed.size === 0) return snapshot;
    return { ...snapshot, keys: [...snapshot.keys, ...pool.unclaimed.values()] };
  }

  /** Writes the state when it changed since the last write (or always, when `force`). Never throws. */
  #save(force: boolean): Promise<void> {
    const file = this.#stateFile;
    if (!file) return Promise.resolve();
    this.#writes = this.#writes.then(async () => {
      const state = this.#state();
      // takenAtMs moves on every snapshot; it alone is no reason to write.
      const signature = JSON.stringify({
        pools: Object.entries(state.pools).map(([key, s]) => [key, { ...s, takenAtMs: 0 }]),
        addedKeys: state.addedKeys,
      });
      if (!force && signature === this.#savedSignature) return;
      try {
        await file.write(state);
        this.#savedSignature = signature;
        this.#saveError = undefined;
      } catch (err) {
        const code = errorCode(err);
        if (code !== this.#saveError)
          this.#log.error({ err: code, stateFile: file.path }, "cannot write the state file");
        this.#saveError = code;
      }
    });
    return this.#writes;
  }
}
