/**
 * The runtime model every part shares: a pool's reference, and the registry of the pools this
 * process knows, each with its engine and what the servers need to serve from it (provider,
 * spec, the problems its last evaluation found). The controller (from the cluster) and the
 * standalone source (from files and variables) keep it; the dispenser, the proxy and the prober
 * read it. Pure data: no I/O.
 */
import type { KeyPoolSpec } from "../api/keypool.ts";
import type { KeyPoolEngine, KeyTransitionEvent } from "./engine.ts";
import type { BudgetNotice } from "./spending.ts";
import type { NotificationType } from "../api/keypool.ts";

/** A KeyPool by namespace and name. */
export interface PoolRef {
  namespace: string;
  name: string;
}

/** "namespace/name": the one key a pool has in maps, logs, queues and messages. */
export const refKey = (ref: PoolRef): string => `${ref.namespace}/${ref.name}`;

/** Something wrong with where a pool's keys come from, or with its fallback, for a person to fix. */
export interface PoolProblem {
  /** A condition reason: SecretNotFound, DuplicateKeys, FallbackCycle, ... */
  reason: string;
  /** The Secret it concerns ("" when none). */
  secret: string;
  entry?: string;
  message: string;
}

export interface PoolRuntime {
  ref: PoolRef;
  uid: string | undefined;
  engine: KeyPoolEngine;
  /** The last valid spec (an invalid update keeps serving with this one). */
  spec: KeyPoolSpec;
  generation: number | undefined;
  /** Secret names the pool read at its last reconcile (to map Secret events to pools). */
  secretNames: Set<string>;
  /** Whether the pool has a secretSelector (any labelled Secret in its namespace may matter). */
  usesSelector: boolean;
  /**
   * What the last full reconcile found wrong with the pool's sources and fallback, and how many
   * empty values it skipped: every status built between reconciles (after dispenses, reports,
   * transitions) carries them, so conditions and their messages stay as the reconcile set them.
   */
  problems?: PoolProblem[];
  emptyValues?: number;
  /** Problems this replica recorded a Warning Event for while leading (reason + message). */
  recordedProblems?: Set<string>;
  /**
   * The keypool.dev/probe-requested-at value this replica handled last, while it leads (its
   * status write may not be back in the cache yet); undefined: status.lastProbeRequest says.
   */
  probeRequest?: string | undefined;
  /** spec.notifications.webhooks with their URLs and signing keys read from Secrets (never logged). */
  webhooks?: readonly PoolWebhook[] | undefined;
}

/** A webhook of a pool, resolved: where to post, what to sign with, which notifications it wants. */
export interface PoolWebhook {
  name: string;
  url: string;
  signingKey?: string | undefined;
  /** Empty: every notification type. */
  events: readonly NotificationType[];
}

export class PoolRegistry {
  readonly #pools = new Map<string, PoolRuntime>();
  readonly #listeners = new Set<(ref: PoolRef) => void>();
  readonly #transitionListeners = new Set<(ref: PoolRef, event: KeyTransitionEvent) => void>();
  readonly #budgetListeners = new Set<(ref: PoolRef, notice: BudgetNotice) => void>();

  get(ref: PoolRef): PoolRuntime | undefined {
    return this.#pools.get(refKey(ref));
  }

  set(runtime: PoolRuntime): void {
    this.#pools.set(refKey(runtime.ref), runtime);
  }

  delete(ref: PoolRef): void {
    this.#pools.delete(refKey(ref));
  }

  values(): IterableIterator<PoolRuntime> {
    return this.#pools.values();
  }

  get size(): number {
    return this.#pools.size;
  }

  /** Pools in `namespace` that read Secret `name` or select Secrets by label. */
  poolsReadingSecret(namespace: string, name: string): PoolRef[] {
    const refs: PoolRef[] = [];
    for (const p of this.#pools.values()) {
      if (p.ref.namespace === namespace && (p.usesSelector || p.secretNames.has(name))) refs.push(p.ref);
    }
    return refs;
  }

  /** Someone used a pool (dispensed, reported): the controller refreshes its status counters. */
  touched(ref: PoolRef): void {
    for (const listener of this.#listeners) listener(ref);
  }

  onTouched(listener: (ref: PoolRef) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A key of a pool changed state (every engine applyPool makes reports here). */
  transitioned(ref: PoolRef, event: KeyTransitionEvent): void {
    for (const listener of this.#transitionListeners) listener(ref, event);
  }

  /** Hears every key transition of every pool (the shared state store writes them out). */
  onTransition(listener: (ref: PoolRef, event: KeyTransitionEvent) => void): () => void {
    this.#transitionListeners.add(listener);
    return () => this.#transitionListeners.delete(listener);
  }

  /** A pool or key budget of a pool reached its warning share or its limit (engine onBudget). */
  budgetNoticed(ref: PoolRef, notice: BudgetNotice): void {
    for (const listener of this.#budgetListeners) listener(ref, notice);
  }

  /** Hears every budget notice of every pool (Events, notifications). */
  onBudget(listener: (ref: PoolRef, notice: BudgetNotice) => void): () => void {
    this.#budgetListeners.add(listener);
    return () => this.#budgetListeners.delete(listener);
  }
}
