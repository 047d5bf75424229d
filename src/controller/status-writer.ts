/**
 * Writes KeyPool status through the status subresource only, as JSON merge patches, debounced:
 * a change of state (conditions, key states, key set) is written soon; counters alone at most
 * every `counterIntervalMs`; nothing is written when nothing changed. Only the leader writes.
 *
 * A write that fails is retried with the controller's backoff (1 s doubling to 5 min, jittered),
 * and newer statuses wait for that retry instead of jumping it. A failure is logged once per
 * episode (a run of failures with the same cause, ended by a success), not once per retry. A
 * refusal that retrying alone will not fix (403: RBAC; 422: our own invalid status, a bug) is
 * also handed to `onTerminalFailure` once per episode: the operator records it as a Warning Event.
 */
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

interface Pending {
  ref: PoolRef;
  status: KeyPoolStatus;
  dueAt: number;
  timer: NodeJS.Timeout | undefined;
}

/** The part of a status whose change is worth writing at once (not counters, not times of use). */
function significant(status: KeyPoolStatus): string {
  return JSON.stringify({
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
  });
}

export class StatusWriter {
  readonly #patch: PatchStatus;
  readonly #logger: Logger;
  readonly #isLeader: () => boolean;
  readonly #transitionDelayMs: number;
  readonly #counterIntervalMs: number;
  readonly #clock: Clock;
  readonly #pending = new Map<string, Pending>();
  readonly #written = new Map<string, { full: string; significant: string; at: number }>();
  readonly #inFlight = new Set<Promise<void>>();
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
    this.#clock = options.clock;
    this.#backoff = options.retryBackoff ?? RETRY_BACKOFF;
    this.#random = options.random ?? Math.random;
    this.#onTerminalFailure = options.onTerminalFailure;
  }

  /** Remembers what the object's status already is (read from the API), so an equal one is not rewritten. */
  observe(ref: PoolRef, status: KeyPoolStatus | undefined): void {
    if (!status || this.#written.has(refKey(ref))) return;
    this.#written.set(refKey(ref), { full: JSON.stringify(status), significant: significant(status), at: 0 });
  }

  /** Asks for `status` to be written; decides when (or whether) by what changed. */
  submit(ref: PoolRef, status: KeyPoolStatus): void {
    const key = refKey(ref);
    const full = JSON.stringify(status);
    const last = this.#written.get(key);
    if (last?.full === full) {
      this.#cancel(key);
      this.stats.skipped++;
      return;
    }
    const now = this.#clock.now();
    const urgent = !last || last.significant !== significant(status);
    // While writes of this pool fail, nothing is due before the next retry.
    const dueAt = Math.max(
      urgent
        ? now + this.#transitionDelayMs
        : Math.max(now + this.#transitionDelayMs, last.at + this.#counterIntervalMs),
      this.#failing.get(key)?.retryAt ?? 0,
    );
    const pending = this.#pending.get(key);
    if (pending) {
      pending.status = status;
      if (dueAt < pending.dueAt) this.#schedule(pending, dueAt);
      return;
    }
    const fresh: Pending = { ref, status, dueAt, timer: undefined };
    this.#pending.set(key, fresh);
    this.#schedule(fresh, dueAt);
  }

  /** Writes now, bypassing the debounce (the first status of a new pool), but not a retry's backoff. */
  async writeNow(ref: PoolRef, status: KeyPoolStatus): Promise<void> {
    if (this.#failing.has(refKey(ref))) {
      this.submit(ref, status);
      return;
    }
    this.#cancel(refKey(ref));
    await this.#write(ref, status);
  }

  /** Writes everything pending now (on shutdown, or when leadership is lost... or gained). */
  async flush(): Promise<void> {
    const all = [...this.#pending.values()];
    for (const p of all) this.#cancel(refKey(p.ref));
    await Promise.all([...all.map((p) => this.#write(p.ref, p.status)), ...this.#inFlight]);
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

  async stop(): Promise<void> {
    await this.flush();
    this.#stopped = true;
  }

  #schedule(p: Pending, dueAt: number) {
    if (p.timer) clearTimeout(p.timer);
    p.dueAt = dueAt;
    p.timer = setTimeout(
      () => {
        const key = refKey(p.ref);
        if (this.#pending.get(key) !== p) return;
        this.#pending.delete(key);
        const write = this.#write(p.ref, p.status);
        this.#inFlight.add(write);
        void write.finally(() => this.#inFlight.delete(write));
      },
      Math.max(0, dueAt - this.#clock.now()),
    );
  }

  #cancel(key: string) {
    const p = this.#pending.get(key);
    if (p?.timer) clearTimeout(p.timer);
    this.#pending.delete(key);
  }

  async #write(ref: PoolRef, status: KeyPoolStatus): Promise<void> {
    if (this.#stopped || !this.#isLeader()) return;
    const key = refKey(ref);
    try {
      await this.#patch(ref, status);
      this.stats.writes++;
      this.#written.set(key, {
        full: JSON.stringify(status),
        significant: significant(status),
        at: this.#clock.now(),
      });
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
      this.#failed(ref, status, typeof code === "number" ? code : undefined, describeError(err));
    }
  }

  /** Backs off, and logs (and surfaces a terminal refusal) when a failure episode starts. */
  #failed(ref: PoolRef, status: KeyPoolStatus, code: number | undefined, reason: string) {
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
    const retry: Pending = { ref, status, dueAt: retryAt, timer: undefined };
    this.#pending.set(key, retry);
    this.#schedule(retry, retryAt);
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
