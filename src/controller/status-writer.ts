/**
 * Writes KeyPool status through the status subresource only, as JSON merge patches, debounced:
 * a change of state (conditions, key states, key set) is written soon; counters alone at most
 * every `counterIntervalMs`; nothing is written when nothing changed. Only the leader writes.
 *
 * Writes are paced: at most `maxConcurrentWrites` are in flight, the rest wait in order of when
 * they fell due, one pool's writes never overlap (they land in the order they were made), and a
 * status submitted while its pool waits replaces the waiting one. A cold start of thousands of
 * pools is so a steady stream the API server can take, not thousands of requests at once, and
 * a pool whose status changes three times while it waits is written once.
 *
 * A write that fails is retried with the controller's backoff (1 s doubling to 5 min, jittered),
 * and newer statuses wait for that retry instead of jumping it. A failure is logged once per
 * episode (a run of failures with the same cause, ended by a success), not once per retry. A
 * refusal that retrying alone will not fix (403: RBAC; 422: our own invalid status, a bug) is
 * also handed to `onTerminalFailure` once per episode: the operator records it as a Warning Event.
 */
import { hash } from "node:crypto";
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../api/keypool.ts";
import type { KeyPoolStatus } from "../api/status.ts";
import { describeError } from "../describe-error.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { type PoolRef, refKey } from "../pool/registry.ts";
import { apiClient } from "../kube-client.ts";
import { type BackoffPolicy, backoffDelay } from "./backoff.ts";

/**
 * Refusals that retrying alone will not fix, so they are surfaced as an Event too. 404 is not
 * here: the object is gone, and its status with it.
 */
const TERMINAL_CODES: ReadonlyMap<number, string> = new Map([
  // RBAC: the operator's ServiceAccount may not patch keypools/status (a Role edited or missing).
  [403, "the operator's ServiceAccount needs patch on keypools/status"],
  // The API server's schema rejected the status we built: a bug in keypool-operator.
  [422, "the operator built a status the CRD schema rejects: a bug in keypool-operator, please report it"],
]);

/** Retries of a failed write: the first after about 1 s, growing to about 5 min. */
const RETRY_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 300_000 };

/** Sends one status merge patch; rejects with the API's error (an ApiException has `code`). */
export type PatchStatus = (ref: PoolRef, status: KeyPoolStatus) => Promise<void>;

export interface StatusWriterOptions {
  /** The cluster to write to; or `patchStatus` (tests). */
  kc?: KubeConfig;
  patchStatus?: PatchStatus;
  logger: Logger;
  /** Writes happen only while this says true (the leader). */
  isLeader: () => boolean;
  /** Delay before writing a change of state, to batch a burst. */
  transitionDelayMs?: number;
  /** Minimum time between two writes that only change counters. */
  counterIntervalMs?: number;
  /** Writes in flight at once; the rest wait their turn (default 16). */
  maxConcurrentWrites?: number;
  clock: Clock;
  /** Backoff of retries after a failed write. */
  retryBackoff?: BackoffPolicy;
  /** Jitter source in [0, 1) for the backoff; tests pin it. */
  random?: () => number;
  /**
   * Called once per failure episode when the API server refuses a write for a reason retrying
   * alone will not fix (403, 422), with a message naming it (never key material).
   */
  onTerminalFailure?: (ref: PoolRef, message: string) => void;
}

/** A pool whose writes are failing: since when, how often, why, and when the next try is due. */
interface Failing {
  failures: number;
  code: number | undefined;
  since: number;
  retryAt: number;
}

/**
 * A status waiting to be written: on its timer, then in the queue of due writes, or parked while
 * an earlier write of the same pool is in flight (queued again when it ends).
 */
interface Pending {
  ref: PoolRef;
  status: KeyPoolStatus;
  /** `status`'s fingerprint, made once when it was submitted. */
  fingerprint: Fingerprint;
  dueAt: number;
  timer: NodeJS.Timeout | undefined;
  state: "waiting" | "queued" | "parked";
}

/** Writes in flight at once unless told otherwise. */
const DEFAULT_MAX_CONCURRENT_WRITES = 16;

/**
 * What is remembered of a status to compare the next one with: a digest, not the JSON (the
 * statuses of 10,000 pools would hold about 35 MB of strings). SHA-1 only tells equal from
 * different here; nothing relies on it resisting a forger.
 */
function digest(json: string): string {
  return hash("sha1", json, "base64");
}

/**
 * JSON with every object's keys sorted: the API server hands a custom resource back with its
 * keys in Go's order (sorted), and the status we build has ours, so plain JSON.stringify called
 * the same status different and a restarted operator rewrote every pool's status.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}

/** What a status is compared by: the whole of it, and the part worth writing at once. */
interface Fingerprint {
  full: string;
  significant: string;
}

function fingerprintOf(status: KeyPoolStatus, full = digest(canonicalJson(status))): Fingerprint {
  return { full, significant: significant(status) };
}

/** The part of a status whose change is worth writing at once (not counters, not times of use). */
function significant(status: KeyPoolStatus): string {
  return digest(
    JSON.stringify({
      g: status.observedGeneration,
      c: status.conditions?.map((c) => [c.type, c.status, c.reason, c.message, c.observedGeneration]),
      k: status.keyStatuses?.map((k) => [
        k.id,
        k.state,
        k.until,
        k.source,
        k.lastError?.reason,
        k.disabledBySpec,
      ]),
      p: status.lastProbeRequest,
    }),
  );
}

export class StatusWriter {
  readonly #patch: PatchStatus;
  readonly #logger: Logger;
  readonly #isLeader: () => boolean;
  readonly #transitionDelayMs: number;
  readonly #counterIntervalMs: number;
  readonly #clock: Clock;
  readonly #pending = new Map<string, Pending>();
  /** Per pool, digests of the status last written (or read) and when it was written. */
  readonly #written = new Map<string, Fingerprint & { at: number }>();
  /** Due writes in the order they fell due; entries no longer in `#pending` are skipped. */
  readonly #due: Pending[] = [];
  /** Pools with a write in flight. */
  readonly #writing = new Set<string>();
  readonly #maxConcurrentWrites: number;
  #idleWaiters: Array<() => void> = [];
  readonly #failing = new Map<string, Failing>();
  readonly #backoff: BackoffPolicy;
  readonly #random: () => number;
  readonly #onTerminalFailure: ((ref: PoolRef, message: string) => void) | undefined;
  #stopped = false;
  readonly stats = { writes: 0, skipped: 0, failures: 0 };

  constructor(options: StatusWriterOptions) {
    this.#patch = options.patchStatus ?? mergePatchStatus(options.kc);
    this.#logger = options.logger.child({ component: "status-writer" });
    this.#isLeader = options.isLeader;
    this.#transitionDelayMs = options.transitionDelayMs ?? 100;
    this.#counterIntervalMs = options.counterIntervalMs ?? 5_000;
    this.#maxConcurrentWrites = Math.max(1, options.maxConcurrentWrites ?? DEFAULT_MAX_CONCURRENT_WRITES);
    this.#clock = options.clock;
    this.#backoff = options.retryBackoff ?? RETRY_BACKOFF;
    this.#random = options.random ?? Math.random;
    this.#onTerminalFailure = options.onTerminalFailure;
  }

  /** Remembers what the object's status already is (read from the API), so an equal one is not rewritten. */
  observe(ref: PoolRef, status: KeyPoolStatus | undefined): void {
    if (!status || this.#written.has(refKey(ref))) return;
    this.#written.set(refKey(ref), { ...fingerprintOf(status), at: 0 });
  }

  /** Asks for `status` to be written; decides when (or whether) by what changed. */
  submit(ref: PoolRef, status: KeyPoolStatus): void {
    const key = refKey(ref);
    const full = digest(canonicalJson(status));
    const last = this.#written.get(key);
    if (last?.full === full) {
      this.#cancel(key);
      this.stats.skipped++;
      return;
    }
    const now = this.#clock.now();
    // Only a status that may be written is fingerprinted whole; it is carried to the write.
    const fingerprint = fingerprintOf(status, full);
    const urgent = !last || last.significant !== fingerprint.significant;
    // While writes of this pool fail, nothing is due before the next retry.
    const dueAt = Math.max(
      urgent
        ? now + this.#transitionDelayMs
        : Math.max(now + this.#transitionDelayMs, last.at + this.#counterIntervalMs),
      this.#failing.get(key)?.retryAt ?? 0,
    );
    const pending = this.#pending.get(key);
    if (pending) {
      // Waiting its turn already: it takes the newer status along.
      pending.status = status;
      pending.fingerprint = fingerprint;
      if (pending.state === "waiting" && dueAt < pending.dueAt) this.#schedule(pending, dueAt);
      return;
    }
    const fresh: Pending = { ref, status, fingerprint, dueAt, timer: undefined, state: "waiting" };
    this.#pending.set(key, fresh);
    this.#schedule(fresh, dueAt);
  }

  /**
   * Writes everything pending now, paced like any write, and resolves when no write is left in
   * flight (on shutdown, or when leadership changes hands). Retries of writes that fail here keep
   * their backoff.
   */
  async flush(): Promise<void> {
    for (const p of this.#pending.values()) {
      if (p.state !== "waiting") continue;
      if (p.timer) clearTimeout(p.timer);
      p.timer = undefined;
      this.#enqueue(p);
    }
    this.#pump();
    if (this.#writing.size === 0) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Drops what is known about a pool that was deleted. */
  forget(ref: PoolRef): void {
    this.#cancel(refKey(ref));
    this.#written.delete(refKey(ref));
    this.#failing.delete(refKey(ref));
  }

  /** Forgets what was written (a new leader must not trust the old one's view). */
  resetWritten(): void {
    this.#written.clear();
    this.#failing.clear();
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Writes in flight now (at most `maxConcurrentWrites`). */
  get inFlightCount(): number {
    return this.#writing.size;
  }

  async stop(): Promise<void> {
    await this.flush();
    this.#stopped = true;
  }

  #schedule(p: Pending, dueAt: number) {
    if (p.timer) clearTimeout(p.timer);
    p.dueAt = dueAt;
    p.state = "waiting";
    p.timer = setTimeout(
      () => {
        p.timer = undefined;
        if (this.#pending.get(refKey(p.ref)) !== p || p.state !== "waiting") return;
        this.#enqueue(p);
        this.#pump();
      },
      Math.max(0, dueAt - this.#clock.now()),
    );
  }

  #enqueue(p: Pending) {
    p.state = "queued";
    this.#due.push(p);
  }

  /** Starts due writes while there is room, oldest first; a pool already writing waits for it. */
  #pump() {
    while (this.#writing.size < this.#maxConcurrentWrites) {
      const p = this.#due.shift();
      if (!p) return;
      const key = refKey(p.ref);
      // Cancelled, replaced, or rescheduled (a retry's backoff) since it was queued.
      if (this.#pending.get(key) !== p || p.state !== "queued") continue;
      if (this.#writing.has(key)) {
        p.state = "parked";
        continue;
      }
      this.#pending.delete(key);
      this.#writing.add(key);
      void this.#write(p).finally(() => this.#writeEnded(key));
    }
  }

  /** A write ended: the pool's parked status (if any) takes its turn, and the next writes start. */
  #writeEnded(key: string) {
    this.#writing.delete(key);
    const parked = this.#pending.get(key);
    if (parked?.state === "parked") this.#enqueue(parked);
    this.#pump();
    if (this.#writing.size === 0 && this.#idleWaiters.length) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  #cancel(key: string) {
    const p = this.#pending.get(key);
    if (p?.timer) clearTimeout(p.timer);
    // A queued entry is skipped when its turn comes: it is no longer the pool's pending status.
    this.#pending.delete(key);
  }

  async #write(p: Pending): Promise<void> {
    const { ref, status, fingerprint } = p;
    if (this.#stopped || !this.#isLeader()) return;
    const key = refKey(ref);
    try {
      await this.#patch(ref, status);
      this.stats.writes++;
      this.#written.set(key, { ...fingerprint, at: this.#clock.now() });
      const episode = this.#failing.get(key);
      if (episode) {
        this.#failing.delete(key);
        this.#logger.info(
          { pool: key, failures: episode.failures, failingForMs: this.#clock.now() - episode.since },
          "status write succeeded again",
        );
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 404) {
        this.forget(ref);
        return;
      }
      this.stats.failures++;
      this.#failed(p, typeof code === "number" ? code : undefined, describeError(err));
    }
  }

  /** Backs off, and logs (and surfaces a terminal refusal) when a failure episode starts. */
  #failed(failed: Pending, code: number | undefined, reason: string) {
    const { ref } = failed;
    const key = refKey(ref);
    const now = this.#clock.now();
    const episode = this.#failing.get(key);
    const failures = (episode?.failures ?? 0) + 1;
    const retryAt = now + backoffDelay(failures - 1, this.#backoff, this.#random);
    this.#failing.set(key, { failures, code, since: episode?.since ?? now, retryAt });
    // Once per episode; a new cause (403 after 503s) is news worth a line of its own.
    if (!episode || episode.code !== code) {
      const terminal = code !== undefined ? TERMINAL_CODES.get(code) : undefined;
      const fields = { pool: key, code, reason, retryInMs: Math.round(retryAt - now) };
      if (code === 422) {
        this.#logger.error(
          fields,
          "status write failed: our status is invalid (a bug); retrying with backoff",
        );
      } else {
        this.#logger.warn(fields, "status write failed; retrying with backoff");
      }
      if (terminal) this.#onTerminalFailure?.(ref, `Cannot write the status: ${reason}. ${terminal}.`);
    }
    if (this.#stopped) return;
    const pending = this.#pending.get(key);
    if (pending) {
      // A newer status waits: it is written by the retry, not before.
      if (pending.dueAt < retryAt) this.#schedule(pending, retryAt);
      return;
    }
    // The failed status itself is retried.
    this.#pending.set(key, failed);
    this.#schedule(failed, retryAt);
  }
}

/** The status subresource's JSON merge patch, through client-node. */
function mergePatchStatus(kc: KubeConfig | undefined): PatchStatus {
  if (!kc) throw new Error("StatusWriter needs kc or patchStatus");
  const api = apiClient(kc, CustomObjectsApi);
  return async (ref, status) => {
    await api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: ref.namespace,
        name: ref.name,
        body: { status },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  };
}
