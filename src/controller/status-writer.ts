/**
 * Writes KeyPool status through the status subresource only, as JSON merge patches, debounced:
 * a change of state (conditions, key states, key set) is written soon; counters alone at most
 * every `counterIntervalMs`; nothing is written when nothing changed. Only the leader writes.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../api/keypool.ts";
import type { KeyPoolStatus } from "../api/status.ts";
import type { Logger } from "../log.ts";
import { apiClient } from "../kube-client.ts";

export interface PoolRef {
  namespace: string;
  name: string;
}

export const refKey = (ref: PoolRef) => `${ref.namespace}/${ref.name}`;

export interface StatusWriterOptions {
  kc: KubeConfig;
  logger: Logger;
  /** Writes happen only while this says true (the leader). */
  isLeader: () => boolean;
  /** Delay before writing a change of state, to batch a burst. */
  transitionDelayMs?: number;
  /** Minimum time between two writes that only change counters. */
  counterIntervalMs?: number;
  now?: () => number;
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
    k: status.keyStatuses?.map((k) => [k.id, k.state, k.until, k.source, k.lastError?.reason]),
    p: status.lastProbeRequest,
  });
}

export class StatusWriter {
  readonly #api: CustomObjectsApi;
  readonly #logger: Logger;
  readonly #isLeader: () => boolean;
  readonly #transitionDelayMs: number;
  readonly #counterIntervalMs: number;
  readonly #now: () => number;
  readonly #pending = new Map<string, Pending>();
  readonly #written = new Map<string, { full: string; significant: string; at: number }>();
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;
  readonly stats = { writes: 0, skipped: 0, failures: 0 };

  constructor(options: StatusWriterOptions) {
    this.#api = apiClient(options.kc, CustomObjectsApi);
    this.#logger = options.logger.child({ component: "status-writer" });
    this.#isLeader = options.isLeader;
    this.#transitionDelayMs = options.transitionDelayMs ?? 100;
    this.#counterIntervalMs = options.counterIntervalMs ?? 5_000;
    this.#now = options.now ?? Date.now;
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
    const now = this.#now();
    const urgent = !last || last.significant !== significant(status);
    const dueAt = urgent
      ? now + this.#transitionDelayMs
      : Math.max(now + this.#transitionDelayMs, last.at + this.#counterIntervalMs);
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

  /** Writes now, bypassing the debounce (the first status of a new pool). */
  async writeNow(ref: PoolRef, status: KeyPoolStatus): Promise<void> {
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
  }

  /** Forgets what was written (a new leader must not trust the old one's view). */
  resetWritten(): void {
    this.#written.clear();
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
      Math.max(0, dueAt - this.#now()),
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
      await this.#api.patchNamespacedCustomObjectStatus(
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
      this.stats.writes++;
      this.#written.set(key, {
        full: JSON.stringify(status),
        significant: significant(status),
        at: this.#now(),
      });
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) {
        this.forget(ref);
        return;
      }
      this.stats.failures++;
      this.#logger.warn({ pool: key, code, err: (err as Error).message }, "status write failed; retrying");
      if (!this.#pending.has(key) && !this.#stopped) {
        const retry: Pending = { ref, status, dueAt: 0, timer: undefined };
        this.#pending.set(key, retry);
        this.#schedule(retry, this.#now() + 1_000);
      }
    }
  }
}
