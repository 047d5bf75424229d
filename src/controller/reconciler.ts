/**
 * Reconcile one KeyPool: level-triggered, from the caches only (never from the event that
 * queued it). Resolves the pool's keys from its Secrets, applies them to the pool's engine
 * (keeping the state of unchanged keys), and submits the status it should have. Returns when to
 * look again (the engine's next time-driven transition), or throws to be retried with backoff.
 * Invalid specs and missing Secrets are not errors: they are conditions, with no hot retry loop.
 * spec.pricingRef's ConfigMap is read the same way; a problem with it leaves the pool priced by
 * spec.pricing alone (Degraded, a Warning Event).
 * The leader also honours keypool.dev/probe-requested-at: a value it has not handled yet probes
 * every key of the pool before the status is computed.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { API_VERSION, KIND, PROBE_REQUEST_ANNOTATION } from "../api/keypool.ts";
import { type KeyPool, parseKeyPool } from "../api/parse.ts";
import type { KeyState } from "../api/keypool.ts";
import type { KeyPoolStatus } from "../api/status.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { applyPool } from "../pool/apply.ts";
import type { KeyTransitionEvent } from "../pool/engine.ts";
import type { BudgetNotice } from "../pool/spending.ts";
import {
  type ConfigMapCache,
  resolvePricing,
  type UncachedConfigMap,
} from "../sources/kubernetes/pricing.ts";
import {
  resolvePoolKeys,
  type SecretCache,
  type SourceProblem,
  type UncachedSecret,
} from "../sources/kubernetes/secrets.ts";
import { ConditionType, EventReason, findCondition } from "./conditions.ts";
import type { EventTarget } from "./events.ts";
import {
  type PoolProblem,
  type PoolRef,
  type PoolRegistry,
  type PoolRuntime,
  refKey,
} from "../pool/registry.ts";
import { desiredStatus, poolSpendingStatus, snapshotFromStatus } from "./status.ts";

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** What the reconciler reads: the KeyPool cache. */
export interface PoolCache {
  get(namespace: string, name: string): KubernetesObject | undefined;
}

/** Where the reconciler's statuses go (StatusWriter: merge patches, debounced, leader only). */
export interface StatusSink {
  /** The status the object has now, so an equal one is not written again. */
  observe(ref: PoolRef, status: KeyPoolStatus | undefined): void;
  /** The status the pool should have; written when (and if) the sink decides. */
  submit(ref: PoolRef, status: KeyPoolStatus): void;
  forget(ref: PoolRef): void;
}

/** Where the reconciler's Events go (EventRecorder: rate-limited, never throws). */
export interface EventSink {
  record(
    target: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    subject?: string,
  ): void;
}

export interface ReconcilerOptions {
  pools: PoolCache;
  secrets: SecretCache;
  lookupUncachedSecret: (namespace: string, name: string) => Promise<UncachedSecret>;
  /**
   * Labelled price-list ConfigMaps (spec.pricingRef), and what one outside the cache is. Without
   * them (a reconciler with no ConfigMap watch) every pricingRef is reported PricingNotFound.
   */
  configMaps?: ConfigMapCache;
  lookupUncachedConfigMap?: (namespace: string, name: string) => Promise<UncachedConfigMap>;
  registry: PoolRegistry;
  status: StatusSink;
  events: EventSink;
  logger: Logger;
  clock: Clock;
  newLeaseToken: () => number;
  /** Whether this replica leads (only the leader handles probe requests). */
  isLeader: () => boolean;
  /** Probes every key of a pool now; resolves with how many were probed. */
  probePool: (ref: PoolRef) => Promise<number>;
  /**
   * A key changed state (a report, a probe, time): the pool's status must be built again. The
   * operator enqueues the pool, so only the reconcile loop writes status, never a request.
   */
  markDirty: (ref: PoolRef) => void;
  /** A shared state store (--state-store redis://), when one is configured. */
  sharedState?: SharedStateView | undefined;
}

/**
 * What the reconciler asks a shared state store: to bring a pool's engine in step with it before
 * the status is built (so the status shows every replica's reports and counts), and what is wrong
 * with it (StateStoreUnavailable: a condition and a Warning Event on every pool).
 */
export interface SharedStateView {
  refresh(runtime: PoolRuntime): Promise<void>;
  problems(): PoolProblem[];
}

const NO_CONFIG_MAPS: ConfigMapCache = { get: () => undefined };

/** The Warning a key's move into a state that takes it out records; coming back is Normal KeyRecovered. */
const KEY_STATE_EVENT: Partial<Record<KeyState, EventReason>> = {
  RateLimited: EventReason.KeyRateLimited,
  QuotaExhausted: EventReason.KeyQuotaExhausted,
  Invalid: EventReason.KeyInvalid,
  Degraded: EventReason.KeyDegraded,
};

export class Reconciler {
  readonly #o: ReconcilerOptions;
  #runs = 0;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
  }

  async reconcile(ref: PoolRef): Promise<ReconcileResult> {
    const log = this.#o.logger.child({ pool: refKey(ref), reconcile: ++this.#runs });
    const object = this.#o.pools.get(ref.namespace, ref.name);
    if (!object) {
      this.#o.registry.delete(ref);
      this.#o.status.forget(ref);
      log.debug("pool gone; forgotten");
      return {};
    }
    const generation = object.metadata?.generation;
    const previous = (object as { status?: KeyPoolStatus }).status;
    this.#o.status.observe(ref, previous);
    const now = new Date(this.#o.clock.now());

    const parsed = parseKeyPool(object);
    if (!parsed.ok) {
      log.info({ problems: parsed.problems }, "invalid spec");
      this.#o.status.submit(
        ref,
        this.#withProbeRequest(
          ref,
          object.metadata?.uid,
          desiredStatus(previous, { kind: "invalidSpec", message: parsed.message }, generation, now),
        ),
      );
      // Once per generation: the status already saying so means this replica (or the last
      // leader) recorded it.
      const said = findCondition(previous?.conditions, "Ready");
      if (this.#o.isLeader() && !(said?.reason === "InvalidSpec" && said.observedGeneration === generation)) {
        this.#o.events.record(
          this.#target(object),
          "Warning",
          EventReason.InvalidSpec,
          parsed.message.slice(0, 1000),
          String(generation),
        );
      }
      return {};
    }
    const pool = parsed.value;

    // kstatus reads a status without Ready as done: a new pool gets Ready=Unknown first. It is
    // submitted like any status, not awaited: the pool's keys are served as soon as they are
    // applied below. When the evaluation below is quick (the usual case), the evaluated status
    // replaces it before it is due, and a new pool costs one write; when it is slow (Secrets
    // outside the cache, a requested probe), Reconciling goes out first and the evaluated status
    // after it, in that order.
    if (!findCondition(previous?.conditions, "Ready")) {
      this.#o.status.submit(ref, desiredStatus(previous, { kind: "reconciling" }, generation, now));
    }

    const resolved = await resolvePoolKeys(
      ref.namespace,
      pool.spec,
      this.#o.secrets,
      this.#o.lookupUncachedSecret,
    );
    const pricing = await resolvePricing(
      ref.namespace,
      pool.spec,
      this.#o.configMaps ?? NO_CONFIG_MAPS,
      this.#o.lookupUncachedConfigMap ?? (async () => "missing"),
    );
    if (pricing.problem) resolved.problems.push(pricing.problem);
    const target = this.#target(pool);
    const statusSnapshot = () => snapshotFromStatus(pool.status, this.#o.clock.now());
    const applied = applyPool(this.#o.registry, {
      ref,
      uid: pool.metadata.uid,
      generation: pool.metadata.generation,
      spec: pool.spec,
      referencedPrices: pricing.prices,
      entries: resolved.entries,
      // A new engine resumes cooldowns, Invalid marks and counters from the last status (a restart,
      // a new leader); an existing one merges it (level-triggered: other replicas' writes), the
      // newer fact winning per key.
      restoreFrom: statusSnapshot,
      mergeFrom: statusSnapshot,
      engine: {
        clock: this.#o.clock,
        newLeaseToken: this.#o.newLeaseToken,
        onTransition: (event) => this.#onTransition(target, event),
        onBudget: (notice) => this.#onBudget(target, notice),
      },
    });
    const runtime = applied.runtime;
    runtime.secretNames = resolved.secretNames;
    runtime.webhooks = resolved.webhooks;
    if (applied.added.length || applied.removed.length) {
      log.info(
        { added: applied.added, removed: applied.removed, total: runtime.engine.size },
        "key set changed",
      );
    }
    const fallback = this.#fallbackProblem(ref, pool.spec.fallbackPoolRef?.name);
    if (fallback) resolved.problems.push(fallback);
    const shared = this.#o.sharedState;
    if (shared) {
      try {
        await shared.refresh(runtime);
      } catch (err) {
        log.debug(
          { err: (err as Error).message },
          "could not read the shared state store; status from this replica",
        );
      }
    }
    const problems: PoolProblem[] = [...resolved.problems, ...(shared?.problems() ?? [])];
    this.#recordNewProblems(object, runtime, problems);
    runtime.problems = problems;
    runtime.emptyValues = resolved.emptyValues;

    await this.#probeIfRequested(runtime, pool, log);

    const views = runtime.engine.keys();
    const status = desiredStatus(
      previous,
      {
        kind: "evaluated",
        views,
        problems,
        emptyValues: resolved.emptyValues,
        spending: poolSpendingStatus(runtime.engine, views),
      },
      generation,
      new Date(this.#o.clock.now()),
    );
    this.#recordPrediction(object, previous, status);
    this.#o.status.submit(ref, this.#withProbeRequest(ref, pool.metadata.uid, status));

    const next = runtime.engine.nextTransitionAt();
    return next === undefined ? {} : { requeueAfterMs: Math.max(50, next - this.#o.clock.now()) };
  }

  /**
   * A Warning Event for each problem the leader has not recorded yet: once per problem (and once
   * more if it goes away and comes back), not once per reconcile. Only the leader records them
   * (every replica reconciles), so a new leader records the problems that stand once.
   */
  #recordNewProblems(object: KubernetesObject, runtime: PoolRuntime, problems: PoolProblem[]) {
    const current = new Set(problems.map((p) => `${p.reason}\n${p.message}`));
    const recorded = runtime.recordedProblems ?? new Set<string>();
    for (const key of recorded) if (!current.has(key)) recorded.delete(key);
    runtime.recordedProblems = recorded;
    if (!this.#o.isLeader()) return;
    for (const problem of problems) {
      const key = `${problem.reason}\n${problem.message}`;
      if (recorded.has(key)) continue;
      recorded.add(key);
      this.#o.events.record(this.#target(object), "Warning", problem.reason, problem.message, problem.secret);
    }
  }

  /**
   * What is wrong with the pool's fallbackPoolRef: it names a KeyPool that does not exist, or the
   * chain comes back to a pool already in it (the dispenser stops at the first pool seen twice).
   * Self-reference is an InvalidSpec.
   */
  #fallbackProblem(ref: PoolRef, first: string | undefined): SourceProblem | undefined {
    if (first && !this.#o.pools.get(ref.namespace, first)) {
      return {
        reason: "FallbackPoolNotFound",
        secret: "",
        message: `spec.fallbackPoolRef: KeyPool ${ref.namespace}/${first} not found; when this pool has no usable key, callers get 503`,
      };
    }
    const chain = [ref.name];
    for (let next = first; next;) {
      if (chain.includes(next)) {
        return {
          reason: "FallbackCycle",
          secret: "",
          message: `spec.fallbackPoolRef: ${[...chain, next].join(" -> ")} is a cycle; the dispenser stops at the first pool seen twice`,
        };
      }
      chain.push(next);
      const spec = (
        this.#o.pools.get(ref.namespace, next) as
          { spec?: { fallbackPoolRef?: { name?: string } } } | undefined
      )?.spec;
      next = spec?.fallbackPoolRef?.name;
    }
    return undefined;
  }

  /**
   * keypool.dev/probe-requested-at, like External Secrets' force-sync: when the leader sees a value
   * other than the one handled last (this replica's, else status.lastProbeRequest), it probes every
   * key now, and the value goes into status.lastProbeRequest, so neither a restart nor another
   * replica probes again for it.
   */
  async #probeIfRequested(runtime: PoolRuntime, pool: KeyPool, log: Logger): Promise<void> {
    const requested = pool.metadata.annotations?.[PROBE_REQUEST_ANNOTATION];
    if (requested === undefined || !this.#o.isLeader()) return;
    if (requested === (runtime.probeRequest ?? pool.status?.lastProbeRequest)) return;
    const probed = await this.#o.probePool(runtime.ref);
    runtime.probeRequest = requested;
    const shown = requested.length > 200 ? `${requested.slice(0, 200)}...` : requested;
    log.info({ probed, requested: shown }, "probed every key on request");
    this.#o.events.record(
      this.#target(pool),
      "Normal",
      EventReason.ProbeRequested,
      `Probed ${probed} key${probed === 1 ? "" : "s"} as requested by ${PROBE_REQUEST_ANNOTATION}: ${shown}`,
      requested,
    );
  }

  /** The status with the probe request this replica handled last (the cache may not show it yet). */
  #withProbeRequest(ref: PoolRef, uid: string | undefined, status: KeyPoolStatus): KeyPoolStatus {
    const runtime = this.#o.registry.get(ref);
    const handled = runtime && runtime.uid === uid ? runtime.probeRequest : undefined;
    return handled === undefined ? status : { ...status, lastProbeRequest: handled };
  }

  /**
   * A Warning Event when ExhaustionPredicted turns True (the leader records it, once per flip):
   * the condition's message says which limit runs out when.
   */
  #recordPrediction(object: KubernetesObject, previous: KeyPoolStatus | undefined, next: KeyPoolStatus) {
    const was = previous?.conditions?.find((c) => c.type === ConditionType.ExhaustionPredicted);
    const now = next.conditions?.find((c) => c.type === ConditionType.ExhaustionPredicted);
    if (!now || now.status !== "True" || was?.status === "True" || !this.#o.isLeader()) return;
    this.#o.events.record(this.#target(object), "Warning", EventReason.ExhaustionPredicted, now.message);
  }

  /** A budget reached its warning share or its limit: a Warning Event (leader only), and a status refresh. */
  #onBudget(target: EventTarget, notice: BudgetNotice) {
    const ref = { namespace: target.namespace, name: target.name };
    const whose = notice.scope === "pool" ? "The pool's" : `Key ${notice.keyId} (${notice.masked})`;
    const share = Math.floor((notice.spentUSD / notice.limitUSD) * 100);
    const message =
      `${whose} ${notice.period} budget is ${share}% spent ($${notice.spentUSD.toFixed(4)} of $${notice.limitUSD})` +
      (notice.level === "exhausted"
        ? `: no more keys handed out until ${new Date(notice.resetsAtMs).toISOString()}`
        : "");
    this.#o.logger.warn({ pool: refKey(ref), ...notice }, "budget notice");
    if (this.#o.isLeader())
      this.#o.events.record(
        target,
        "Warning",
        notice.level === "exhausted" ? EventReason.BudgetExhausted : EventReason.BudgetWarning,
        message,
        notice.keyId,
      );
    this.#o.markDirty(ref);
  }

  #onTransition(target: EventTarget, event: KeyTransitionEvent) {
    const ref = { namespace: target.namespace, name: target.name };
    if (event.merged) {
      // Learned from another replica (its status, or the shared store): that replica recorded the
      // Event. The status is built again: a leader shows what its followers learned.
      this.#o.logger.debug(
        { pool: refKey(ref), keyId: event.keyId, from: event.from, to: event.to },
        "key state taken from another replica",
      );
      this.#o.markDirty(ref);
      return;
    }
    const until = event.untilMs ? ` until ${new Date(event.untilMs).toISOString()}` : "";
    const message = `Key ${event.keyId} (${event.masked}, ${event.source}): ${event.from} -> ${event.to}${until} (${event.reason})`;
    this.#o.logger.info(
      { pool: refKey(ref), keyId: event.keyId, from: event.from, to: event.to, reason: event.reason },
      "key state changed",
    );
    if (event.to === "Draining") return; // key-set changes are reported by the reconcile that made them
    const warning = KEY_STATE_EVENT[event.to];
    this.#o.events.record(
      target,
      warning ? "Warning" : "Normal",
      warning ?? EventReason.KeyRecovered,
      message,
      event.keyId,
    );
    this.#o.markDirty(ref);
  }

  #target(object: KubernetesObject | KeyPool): EventTarget {
    return {
      namespace: object.metadata?.namespace ?? "",
      name: object.metadata?.name ?? "",
      ...(object.metadata?.uid ? { uid: object.metadata.uid } : {}),
      apiVersion: API_VERSION,
      kind: KIND,
    };
  }
}
