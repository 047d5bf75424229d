/**
 * src/controller — the operator: watches KeyPools, labelled Secrets and labelled price-list
 * ConfigMaps (spec.pricingRef), reconciles each pool
 * into its engine and status, records Events, elects a leader (only the leader writes status).
 * May import: src/api, src/pool, src/providers, src/sources, src/log, src/describe-error,
 * src/lease-tokens, src/kube-client, @kubernetes/client-node. Time comes from `options.clock`.
 *
 * This file wires the parts: watchers -> work queue -> reconciler -> status writer.
 * The watchers' caches keep trimmed objects (trim.ts): Secrets only the entries some KeyPool
 * reads (secret-refs.ts), so the KeyPools are listed first, and an entry a pool starts reading
 * after its Secret was cached is fetched once (#refetchSecret).
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Secret,
} from "@kubernetes/client-node";
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../api/keypool.ts";
import type { KeyPoolStatus } from "../api/status.ts";
import { leaseTokenSource } from "../lease-tokens.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { type ConfigMapCache, PRICING_LABEL, type UncachedConfigMap } from "../sources/kubernetes/pricing.ts";
import {
  type CachedSecret,
  SECRET_LABEL,
  type SecretCache,
  type UncachedSecret,
} from "../sources/kubernetes/secrets.ts";
import { EventRecorder } from "./events.ts";
import { LeaderElector } from "./leader-election.ts";
import { type PoolRef, PoolRegistry, refKey } from "../pool/registry.ts";
import { onlyStatusChanged } from "./predicates.ts";
import { Prober } from "../providers/prober.ts";
import { Reconciler, type SharedStateView } from "./reconciler.ts";
import { snapshotFromStatus } from "./status.ts";
import { StatusWriter } from "./status-writer.ts";
import { EventReason } from "./conditions.ts";
import { type ReadsShrank, SecretReferences } from "./secret-refs.ts";
import { type SecretCacheStats, secretCacheStats, trimConfigMap, trimKeyPool, trimSecret } from "./trim.ts";
import { ResourceWatcher } from "./watcher.ts";
import { WorkQueue } from "./work-queue.ts";
import { apiClient } from "../kube-client.ts";

export interface OperatorOptions {
  kc: KubeConfig;
  logger: Logger;
  clock: Clock;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  leaderElection:
    | { enabled: false }
    | {
        enabled: true;
        namespace: string;
        name: string;
        /** The --leader-election-* timings (their defaults are config.ts's). */
        leaseDurationMs: number;
        renewDeadlineMs: number;
        retryPeriodMs: number;
      };
  /** This replica's identity (Lease holder, Event reportingInstance). */
  identity?: string;
  /** Reconciles running at once (different pools; one pool never runs twice at once). */
  concurrency?: number;
  watchdogMs?: number;
  relistIntervalMs?: number;
  statusCounterIntervalMs?: number;
  /** Active key probes (leader only); on by default. */
  probes?: boolean;
  /** The registry of pool runtimes to keep (default: a new one). */
  registry?: PoolRegistry;
  /** A shared state store (--state-store redis://): read before each status is built. */
  sharedState?: SharedStateView | undefined;
}

/** How long counter changes (dispenses, reports) wait to be reconciled into the status. */
const COUNTER_REFRESH_MS = 1_000;

export class Operator {
  readonly registry: PoolRegistry;
  readonly identity: string;
  readonly #o: OperatorOptions;
  readonly #logger: Logger;
  readonly #poolWatchers: ResourceWatcher<KubernetesObject>[] = [];
  readonly #secretWatchers = new Map<string, ResourceWatcher<CachedSecret>>();
  /** Which Secret entries the KeyPools read: what the Secret caches keep. */
  readonly #secretRefs = new SecretReferences();
  /** GETs of Secrets whose cached copy dropped an entry a pool reads now, by namespace/name. */
  readonly #refetching = new Map<
    string,
    { before: CachedSecret | undefined; answer: Promise<V1Secret | undefined> }
  >();
  /** ConfigMaps labelled keypool.dev/pricing (spec.pricingRef's price lists), per namespace scope. */
  readonly #pricingWatchers = new Map<string, ResourceWatcher<V1ConfigMap>>();
  readonly #queue: WorkQueue;
  readonly #status: StatusWriter;
  readonly #reconciler: Reconciler;
  readonly #elector: LeaderElector | undefined;
  readonly #core: CoreV1Api;
  readonly prober: Prober;
  /** Pools touched by dispenses or reports whose delayed reconcile is not done yet. */
  readonly #touched = new Set<string>();
  /** Set by the elector's callbacks: what this replica last heard. Writes ask #leadsNow(). */
  #leading: boolean;
  #started = false;
  #synced = false;

  constructor(options: OperatorOptions) {
    this.#o = options;
    this.registry = options.registry ?? new PoolRegistry();
    this.identity = options.identity ?? `${hostname()}-${randomBytes(4).toString("hex")}`;
    this.#logger = options.logger.child({ component: "operator" });
    this.#core = apiClient(options.kc, CoreV1Api);
    this.#leading = !options.leaderElection.enabled;
    this.#queue = new WorkQueue({ logger: this.#logger, clock: options.clock });
    const events = new EventRecorder({
      kc: options.kc,
      logger: options.logger,
      instance: this.identity,
      clock: options.clock,
    });
    this.#status = new StatusWriter({
      kc: options.kc,
      logger: options.logger,
      isLeader: () => this.#leadsNow(),
      counterIntervalMs: options.statusCounterIntervalMs,
      clock: options.clock,
      // Retrying alone will not fix it (403: RBAC, 422: a bug): say so on the KeyPool.
      onTerminalFailure: (ref, message) => {
        const uid = this.registry.get(ref)?.uid;
        const target = { ...ref, ...(uid ? { uid } : {}), apiVersion: API_VERSION, kind: KIND };
        events.record(target, "Warning", EventReason.StatusWriteFailed, message);
      },
    });

    const namespaces = options.namespaces.length ? options.namespaces : [undefined];
    for (const ns of namespaces) {
      const scope = ns ? `/namespaces/${ns}` : "";
      this.#poolWatchers.push(
        new ResourceWatcher<KubernetesObject>({
          kc: options.kc,
          path: `/apis/${GROUP}/${VERSION}${scope}/${PLURAL}`,
          logger: options.logger.child({ watch: `keypools${ns ? ` in ${ns}` : ""}` }),
          clock: options.clock,
          transform: trimKeyPool,
          onEvent: (type, object, old) => {
            // First, in the tick the cache changed: no reconcile sees a spec the index does not know.
            this.#readsChanged(
              type === "DELETED" ? this.#secretRefs.delete(object) : this.#secretRefs.set(object),
            );
            if (type === "MODIFIED" && old && onlyStatusChanged(old, object)) {
              this.#statusChanged(object);
              return;
            }
            this.#poolChanged(object);
          },
          watchdogMs: options.watchdogMs,
          relistIntervalMs: options.relistIntervalMs,
        }),
      );
      this.#secretWatchers.set(
        ns ?? "",
        new ResourceWatcher<CachedSecret>({
          kc: options.kc,
          path: `/api/v1${scope}/secrets`,
          labelSelector: SECRET_LABEL,
          logger: options.logger.child({ watch: `secrets${ns ? ` in ${ns}` : ""}` }),
          clock: options.clock,
          transform: (secret) => {
            const meta = secret.metadata;
            const wanted = this.#secretRefs.wanted(meta?.namespace ?? "", meta?.name ?? "", meta?.labels);
            return trimSecret(secret, wanted);
          },
          onEvent: (_type, secret) => this.#secretChanged(secret),
          watchdogMs: options.watchdogMs,
          relistIntervalMs: options.relistIntervalMs,
        }),
      );
      this.#pricingWatchers.set(
        ns ?? "",
        new ResourceWatcher<V1ConfigMap>({
          kc: options.kc,
          path: `/api/v1${scope}/configmaps`,
          labelSelector: PRICING_LABEL,
          logger: options.logger.child({ watch: `configmaps${ns ? ` in ${ns}` : ""}` }),
          clock: options.clock,
          transform: trimConfigMap,
          onEvent: (_type, configMap) => this.#configMapChanged(configMap),
          watchdogMs: options.watchdogMs,
          relistIntervalMs: options.relistIntervalMs,
        }),
      );
    }

    this.#reconciler = new Reconciler({
      pools: { get: (namespace, name) => this.#poolWatcherFor(namespace)?.get(namespace, name) },
      secrets: this.secretCache,
      lookupUncachedSecret: (namespace, name) => this.#lookupUncachedSecret(namespace, name),
      configMaps: this.#configMapCache,
      lookupUncachedConfigMap: (namespace, name) => this.#lookupUncachedConfigMap(namespace, name),
      registry: this.registry,
      status: this.#status,
      events,
      logger: options.logger.child({ component: "reconciler" }),
      clock: options.clock,
      newLeaseToken: leaseTokenSource(),
      isLeader: () => this.#leadsNow(),
      probePool: (ref) => this.prober.probePool(ref),
      markDirty: (ref) => this.#queue.add(refKey(ref)),
      sharedState: options.sharedState,
    });
    // Dispenses and reports change counters: the pool is reconciled (and its status rebuilt) at
    // most once a second for them, never once per request; the status writer then debounces.
    this.registry.onTouched((ref) => {
      const key = refKey(ref);
      if (this.#touched.has(key)) return;
      this.#touched.add(key);
      this.#queue.addAfter(key, COUNTER_REFRESH_MS);
    });
    this.prober = new Prober({
      registry: this.registry,
      logger: options.logger,
      clock: options.clock,
      isActive: () => this.#leadsNow() && this.#started,
    });

    if (options.leaderElection.enabled) {
      const le = options.leaderElection;
      this.#elector = new LeaderElector({
        kc: options.kc,
        namespace: le.namespace,
        name: le.name,
        identity: this.identity,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        logger: options.logger,
        clock: options.clock,
        onStartedLeading: () => this.#becameLeader(),
        onStoppedLeading: () => this.#lostLeadership(),
      });
    }
  }

  /** The Secret cache, as the reconciler and the dispenser read it. */
  get secretCache(): SecretCache {
    return {
      get: (namespace, name) => this.#secretWatcherFor(namespace)?.get(namespace, name),
      list: (namespace) => this.#secretWatcherFor(namespace)?.list(namespace) ?? [],
      refetch: (namespace, name) => this.#refetchSecret(namespace, name),
    };
  }

  /** What the Secret caches hold: entries kept and dropped (trim.ts). */
  secretCacheStats(): SecretCacheStats {
    return secretCacheStats([...this.#secretWatchers.values()].flatMap((w) => w.list()));
  }

  /** The cache of labelled price-list ConfigMaps, as the reconciler reads it. */
  get #configMapCache(): ConfigMapCache {
    return { get: (namespace, name) => this.#pricingWatcherFor(namespace)?.get(namespace, name) };
  }

  /** Whether this replica may act as leader right now (the elector's renew deadline included). */
  get isLeader(): boolean {
    return this.#leadsNow();
  }

  get statusWriter(): StatusWriter {
    return this.#status;
  }

  /** Starts watching, waits for the caches to fill, then reconciles. */
  async start(): Promise<void> {
    this.#started = true;
    // KeyPools first: the Secret caches keep what they read, so the first Secret list needs them.
    await Promise.all(this.#poolWatchers.map((w) => w.start()));
    const watchers = this.#watchers();
    await Promise.all(watchers.map((w) => w.start()));
    this.#synced = true;
    this.#logger.info(
      {
        pools: this.#poolWatchers.reduce((n, w) => n + w.size, 0),
        namespaces: this.#o.namespaces.length ? this.#o.namespaces : "all",
      },
      "caches synced",
    );
    this.#queue.start((key) => this.#work(key), this.#o.concurrency ?? 4);
    for (const w of this.#poolWatchers) for (const pool of w.list()) this.#enqueue(pool);
    this.#elector?.start();
    if (this.#o.probes !== false) this.prober.start();
  }

  /** Stops in order: no new work, pending status flushed, lease released, watches closed. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.prober.stop();
    await this.#queue.shutdown();
    await this.#status.stop();
    await this.#elector?.stop();
    await Promise.all(this.#watchers().map((w) => w.stop()));
  }

  /** Reconciles every known pool again (the shared state store went away or came back). */
  requeueAll(): void {
    if (!this.#synced) return;
    for (const w of this.#poolWatchers) for (const pool of w.list()) this.#enqueue(pool);
  }

  /** Liveness: every watch showed a sign of life recently. Readiness: caches synced. */
  health(now = this.#o.clock.now()): { live: boolean; ready: boolean; details: Record<string, unknown> } {
    const watchers = this.#watchers();
    const limit = 3 * (this.#o.watchdogMs ?? 120_000);
    const stale = watchers.map((w) => w.staleForMs(now));
    return {
      live: stale.every((ms) => ms < limit),
      ready: watchers.every((w) => w.synced),
      details: {
        leader: this.#leading,
        pools: this.registry.size,
        watchStaleMs: Math.max(0, ...stale),
        queue: this.#queue.length,
      },
    };
  }

  /** Every watcher: they start, sync, stop and answer liveness together. */
  #watchers(): ResourceWatcher<KubernetesObject>[] {
    return [...this.#poolWatchers, ...this.#secretWatchers.values(), ...this.#pricingWatchers.values()];
  }

  async #work(key: string): Promise<void> {
    // Touches from now on need a reconcile of their own.
    this.#touched.delete(key);
    const [namespace, name] = key.split("/") as [string, string];
    try {
      const result = await this.#reconciler.reconcile({ namespace, name });
      this.#queue.forget(key);
      if (result.requeueAfterMs !== undefined) this.#queue.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      this.#logger.warn(
        { pool: key, err: (err as Error).message },
        "reconcile failed; retrying with backoff",
      );
      this.#queue.addRateLimited(key);
    }
  }

  #enqueue(object: KubernetesObject) {
    const namespace = object.metadata?.namespace;
    const name = object.metadata?.name;
    if (namespace && name) this.#queue.add(refKey({ namespace, name }));
  }

  /** A KeyPool changed: it, and the pools that fall back to it (a fallback cycle may close or open). */
  #poolChanged(object: KubernetesObject) {
    this.#enqueue(object);
    // Until the caches are synced every pool is queued anyway (start()): no need to look.
    if (!this.#synced) return;
    const namespace = object.metadata?.namespace;
    const name = object.metadata?.name;
    if (!namespace || !name) return;
    for (const other of this.#poolWatcherFor(namespace)?.list(namespace) ?? []) {
      const fallback = (other as { spec?: { fallbackPoolRef?: { name?: string } } }).spec?.fallbackPoolRef
        ?.name;
      if (fallback === name) this.#enqueue(other);
    }
  }

  /**
   * Only a KeyPool's status changed (the leader wrote it): a follower takes what it says into its
   * engine, the newer fact winning per key, so a key the leader saw rate-limited or invalid stops
   * being handed out here too, within a status write and a watch event (~0.2 s). No reconcile:
   * nothing the reconciler reads from the object changed. The leader skips its own writes.
   */
  #statusChanged(object: KubernetesObject) {
    if (this.#leading) return;
    const namespace = object.metadata?.namespace;
    const name = object.metadata?.name;
    if (!namespace || !name) return;
    const runtime = this.registry.get({ namespace, name });
    const status = (object as { status?: KeyPoolStatus }).status;
    if (!runtime || runtime.uid !== object.metadata?.uid || !status) return;
    runtime.engine.merge(snapshotFromStatus(status, this.#o.clock.now()));
  }

  #secretChanged(secret: V1Secret) {
    const namespace = secret.metadata?.namespace;
    const name = secret.metadata?.name;
    if (!namespace || !name) return;
    // Until the caches are synced no pool has been reconciled and every pool is queued at
    // start(): nothing to look for (a cold start's Secret list would otherwise scan every pool
    // once per Secret).
    if (!this.#synced) return;
    const refs = this.registry.poolsReadingSecret(namespace, name);
    // A pool that never resolved (new, or waiting for this very Secret) is not indexed yet.
    const watcher = this.#poolWatcherFor(namespace);
    for (const pool of watcher?.list(namespace) ?? []) {
      const ref: PoolRef = { namespace, name: pool.metadata?.name ?? "" };
      if (!this.registry.get(ref)) refs.push(ref);
    }
    for (const ref of refs) this.#queue.add(refKey(ref));
  }

  /**
   * The whole Secret from the API server, for an entry a pool reads that its cached copy dropped
   * (the pool began reading it after the Secret was cached). Race-free because:
   * - the GET begins after the reader saw the cached copy, so its answer is as new or newer
   *   (a GET without resourceVersion is a quorum read); a reader joins a GET in flight only while
   *   the cache still holds the copy that GET began from;
   * - the answer is stored (trimmed by the reads known when it arrives) only if the cache still
   *   holds that copy, or one of the same resourceVersion (ObjectCache.swap): a newer copy the
   *   watch stored meanwhile is never replaced by an older one;
   * - a cached copy names every entry it dropped, so no reader takes a dropped entry for a
   *   missing one: at worst it GETs again.
   */
  #refetchSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    const key = `${namespace}/${name}`;
    const before = this.#secretWatcherFor(namespace)?.get(namespace, name);
    const inFlight = this.#refetching.get(key);
    if (inFlight && inFlight.before === before) return inFlight.answer;
    const answer = this.#readSecret(namespace, name, before).finally(() => {
      if (this.#refetching.get(key)?.answer === answer) this.#refetching.delete(key);
    });
    this.#refetching.set(key, { before, answer });
    return answer;
  }

  async #readSecret(
    namespace: string,
    name: string,
    before: CachedSecret | undefined,
  ): Promise<V1Secret | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.#core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
    // Unlabelled now: the watch reports it deleted; the resolver says why.
    if (secret.metadata?.labels?.[SECRET_LABEL] === undefined) return undefined;
    const whole = { ...secret, apiVersion: secret.apiVersion ?? "v1", kind: secret.kind ?? "Secret" };
    const stored = before ? this.#secretWatcherFor(namespace)?.swap(before, whole) : false;
    this.#logger.debug(
      { namespace, name, resourceVersion: secret.metadata?.resourceVersion, stored },
      "Secret refetched for an entry the cache had dropped",
    );
    return secret;
  }

  /** A pool reads less than before: cached Secrets drop what nobody reads now. */
  #readsChanged(shrank: ReadsShrank | undefined): void {
    if (!shrank) return;
    const { namespace } = shrank;
    const watcher = this.#secretWatcherFor(namespace);
    if (!watcher) return;
    const names = shrank.anySecret
      ? watcher.list(namespace).map((s) => s.metadata?.name ?? "")
      : shrank.secrets;
    for (const name of names) watcher.retransform(namespace, name);
  }

  async #lookupUncachedSecret(namespace: string, name: string): Promise<UncachedSecret> {
    try {
      const secret = await this.#core.readNamespacedSecret({ namespace, name });
      // Only the label matters here; the Secret's data is dropped with this object.
      return secret.metadata?.labels?.[SECRET_LABEL] !== undefined ? "missing" : "unlabelled";
    } catch (err) {
      if ((err as { code?: number }).code === 404) return "missing";
      throw err;
    }
  }

  /**
   * A labelled ConfigMap changed (or lost its label, which the watch reports as a deletion): every
   * pool of its namespace whose spec.pricingRef names it, read from the KeyPool cache (the
   * registry may not hold a pool that never resolved).
   */
  #configMapChanged(configMap: V1ConfigMap) {
    const namespace = configMap.metadata?.namespace;
    const name = configMap.metadata?.name;
    if (!namespace || !name || !this.#synced) return;
    for (const pool of this.#poolWatcherFor(namespace)?.list(namespace) ?? []) {
      const ref = (pool as { spec?: { pricingRef?: { name?: string } } }).spec?.pricingRef?.name;
      if (ref === name) this.#enqueue(pool);
    }
  }

  async #lookupUncachedConfigMap(namespace: string, name: string): Promise<UncachedConfigMap> {
    try {
      const configMap = await this.#core.readNamespacedConfigMap({ namespace, name });
      return configMap.metadata?.labels?.[PRICING_LABEL] !== undefined ? "missing" : "unlabelled";
    } catch (err) {
      if ((err as { code?: number }).code === 404) return "missing";
      throw err;
    }
  }

  #poolWatcherFor(namespace: string): ResourceWatcher<KubernetesObject> | undefined {
    if (!this.#o.namespaces.length) return this.#poolWatchers[0];
    const index = this.#o.namespaces.indexOf(namespace);
    return index >= 0 ? this.#poolWatchers[index] : undefined;
  }

  #secretWatcherFor(namespace: string): ResourceWatcher<CachedSecret> | undefined {
    return this.#secretWatchers.get(this.#o.namespaces.length ? namespace : "");
  }

  #pricingWatcherFor(namespace: string): ResourceWatcher<V1ConfigMap> | undefined {
    return this.#pricingWatchers.get(this.#o.namespaces.length ? namespace : "");
  }

  /**
   * Whether leader-only work (status writes, Events, probes) may run now: without election,
   * always; with it, only while the elector's lease is within its renew deadline, asked at the
   * moment of the write, so a leader that cannot renew stops at once, not when a timer tells it.
   */
  #leadsNow(): boolean {
    return this.#leading && (this.#elector?.holdsLease() ?? true);
  }

  #becameLeader() {
    this.#logger.info({ identity: this.identity }, "became leader; writing status");
    this.#leading = true;
    // A new leader trusts nothing it did not write itself: re-evaluate every pool. Probe requests
    // handled in an earlier term are forgotten too: the status says what the last leader handled.
    this.#status.resetWritten();
    for (const runtime of this.registry.values()) runtime.probeRequest = undefined;
    for (const w of this.#poolWatchers) for (const pool of w.list()) this.#enqueue(pool);
  }

  #lostLeadership() {
    this.#logger.warn({ identity: this.identity }, "lost leadership; no longer writing status");
    this.#leading = false;
  }
}
