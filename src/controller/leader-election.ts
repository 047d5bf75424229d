/**
 * Leader election with a coordination.k8s.io/v1 Lease, as client-go does it
 * (k8s.io/client-go/tools/leaderelection/leaderelection.go and resourcelock/leaselock.go).
 *
 * - A candidate reads the Lease (creating it if missing) and writes itself in as holder only when
 *   the Lease is free (no holder: released) or its record has not changed for the holder's lease
 *   duration as observed on this replica's own clock. Timestamps in the record are never compared
 *   with the local clock, so clock skew between replicas does not matter; only equal clock rates do.
 * - Every write is a PUT with the resourceVersion that was read: a 409 Conflict means another
 *   replica wrote first, and this one looks again on its next try.
 * - The leader renews every retryPeriod (first optimistically with the Lease it last wrote, like
 *   client-go's fast path). A successful write that was *sent* at t makes it leader until
 *   t + renewDeadline; past that, without another successful renewal, it stops leading. Others can
 *   take over no earlier than leaseDuration after they *saw* that write, which is later than t, so
 *   with renewDeadline < leaseDuration two replicas never lead at once. `holdsLease()` (and
 *   `isLeader`) checks that deadline itself, so it is right even when a timer runs late: gate
 *   leader-only writes on it, not on a flag the callbacks set.
 * - After losing the lease the elector goes back to being a candidate: onStartedLeading and
 *   onStoppedLeading alternate, and a caller that wants client-go's "exit on loss" exits in
 *   onStoppedLeading.
 * - stop() releases the Lease (client-go's ReleaseOnCancel: holder cleared, leaseDurationSeconds 1)
 *   so another replica takes over on its next try. Callers stop the work the lease guards first.
 */
import {
  ApiException,
  type ConfigurationOptions,
  CoordinationV1Api,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1Lease,
  type V1LeaseSpec,
  V1MicroTime,
} from "@kubernetes/client-node";
import { describeError } from "../describe-error.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { apiClient } from "../kube-client.ts";

/** The Lease calls election makes (CoordinationV1Api's; tests pass a fake). */
export type LeaseApi = Pick<
  CoordinationV1Api,
  "readNamespacedLease" | "createNamespacedLease" | "replaceNamespacedLease"
>;

export interface LeaderElectionOptions {
  /** The cluster holding the Lease; or `api` (tests). */
  kc?: KubeConfig;
  api?: LeaseApi;
  /** Where the Lease lives. */
  namespace: string;
  /** Lease name, e.g. "keypool-operator". */
  name: string;
  /** This replica's id (hostname + random suffix). */
  identity: string;
  /**
   * How long others wait, after they last saw the Lease change, before taking it over. The
   * timings have no defaults here: the operator passes its --leader-election-* flags (config.ts
   * holds their defaults, client-go's 15 s / 10 s / 2 s).
   */
  leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it stops leading; below leaseDurationMs. */
  renewDeadlineMs: number;
  /** Time between tries (jittered by up to JITTER_FACTOR while not leading). */
  retryPeriodMs: number;
  logger: Logger;
  onStartedLeading?: () => void;
  /** Lost the lease (renew failed past renewDeadline, or someone else took it), or stop(). */
  onStoppedLeading?: () => void;
  /** A holder other than the last one reported was observed (this replica included). */
  onNewLeader?: (identity: string) => void;
  /** Time for lease bookkeeping; the timers are real. */
  clock: Clock;
}

export interface StopOptions {
  /**
   * Clear the holder so that another replica takes over at once (default true). `false` leaves
   * the Lease to expire, as a crash would.
   */
  release?: boolean;
}

/** Candidates wait retryPeriod plus up to this factor of it more (client-go's JitterFactor). */
export const JITTER_FACTOR = 1.2;

export interface ElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** The timings, checked for the relations client-go's NewLeaderElector checks. */
export function checkTimings(options: ElectionTimings): ElectionTimings {
  const timings: ElectionTimings = {
    leaseDurationMs: options.leaseDurationMs,
    renewDeadlineMs: options.renewDeadlineMs,
    retryPeriodMs: options.retryPeriodMs,
  };
  for (const [name, value] of Object.entries(timings)) {
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
    }
  }
  if (timings.leaseDurationMs <= timings.renewDeadlineMs) {
    throw new RangeError("leaseDurationMs must be greater than renewDeadlineMs");
  }
  if (timings.renewDeadlineMs <= JITTER_FACTOR * timings.retryPeriodMs) {
    throw new RangeError(`renewDeadlineMs must be greater than retryPeriodMs * ${JITTER_FACTOR}`);
  }
  return timings;
}

/**
 * The Lease's whole seconds: rounded up, so that others never wait less than the holder's
 * leaseDuration (which is what keeps renewDeadline < the wait of others).
 */
export function leaseDurationSeconds(leaseDurationMs: number): number {
  return Math.max(1, Math.ceil(leaseDurationMs / 1000));
}

/** The part of a Lease that election reads (client-go's LeaderElectionRecord). */
export interface ElectionRecord {
  /** "" when nobody holds the Lease (released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: string;
  renewTime: string;
  leaseTransitions: number;
}

/** MicroTime fields arrive as strings at run time (the client does not revive them). */
function timeText(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  return typeof value === "string" ? value : "";
}

export function recordOf(lease: V1Lease): ElectionRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    acquireTime: timeText(spec.acquireTime),
    renewTime: timeText(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

export function sameRecord(a: ElectionRecord, b: ElectionRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/**
 * Whether a candidate must keep waiting: the Lease has a holder other than `identity` and its
 * record changed, as observed locally at `observedAtMs`, less than the holder's lease duration
 * ago (the duration the holder wrote; `fallbackMs` when it wrote none).
 */
export function heldByOther(
  record: ElectionRecord,
  identity: string,
  observedAtMs: number,
  nowMs: number,
  fallbackMs: number,
): boolean {
  if (record.holderIdentity === "" || record.holderIdentity === identity) return false;
  const durationMs = record.leaseDurationSeconds > 0 ? record.leaseDurationSeconds * 1000 : fallbackMs;
  return nowMs < observedAtMs + durationMs;
}

/** client-go's wait.Jitter: periodMs plus a random part of up to JITTER_FACTOR * periodMs. */
export function jitteredDelay(periodMs: number, random: () => number = Math.random): number {
  return periodMs + random() * JITTER_FACTOR * periodMs;
}

function hasCode(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

/** Per-request options that make the request abortable. */
function abortable(signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" };
}

export class LeaderElector {
  readonly #api: LeaseApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #identity: string;
  readonly #timings: ElectionTimings;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #callbacks: Pick<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "onNewLeader">;

  #started = false;
  #stopped = false;
  #stopping: Promise<void> | undefined;
  /** The next try. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Fires when leadership runs out unless a renewal pushes it back. */
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #inflight: { controller: AbortController; done: Promise<void> } | undefined;

  /** The Lease as last read or written (its resourceVersion is what the next PUT sends). */
  #lease: V1Lease | undefined;
  #observed: ElectionRecord | undefined;
  /** Local time at which #observed last changed. */
  #observedAt = 0;
  #leading = false;
  /** Local time until which this replica may act as leader. */
  #leadingUntil = 0;
  #reportedLeader: string | undefined;
  #failures = 0;
  #lastError: string | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#timings = checkTimings(options);
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#identity = options.identity;
    this.#clock = options.clock;
    this.#callbacks = {
      onStartedLeading: options.onStartedLeading,
      onStoppedLeading: options.onStoppedLeading,
      onNewLeader: options.onNewLeader,
    };
    this.#log = options.logger.child({
      component: "leader-election",
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
    if (options.api) this.#api = options.api;
    else if (options.kc) this.#api = apiClient(options.kc, CoordinationV1Api);
    else throw new Error("LeaderElector needs kc or api");
  }

  /** True while this replica holds the Lease and its last renewal is within renewDeadline. */
  get isLeader(): boolean {
    return this.holdsLease();
  }

  /**
   * Whether this replica may act as leader at `now`: it holds the Lease and `now` is before the
   * renew deadline of its last successful write. Judged by the clock, not by the callbacks, so a
   * leader whose renewals stall stops at the deadline even when the event loop was too busy for
   * the deadline timer (and onStoppedLeading) to run yet. Gate every leader-only write on this.
   */
  holdsLease(now: number = this.#clock.now()): boolean {
    return this.#leading && now < this.#leadingUntil;
  }

  /** The holder last observed; undefined when none was seen or the Lease was released. */
  get leader(): string | undefined {
    return this.#observed?.holderIdentity || undefined;
  }

  /** Starts trying to acquire the Lease, then renewing it. Never throws; calling it again does nothing. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#log.info(this.#timings, "trying to acquire the lease");
    this.#schedule(0);
  }

  /**
   * Stops all timers and aborts the request in flight; then, unless `release: false`, releases the
   * Lease if this replica holds it; then calls onStoppedLeading if it was leading. Idempotent.
   */
  stop(options: StopOptions = {}): Promise<void> {
    if (!this.#stopping) {
      this.#stopped = true;
      this.#stopping = this.#shutdown(options.release ?? true);
    }
    return this.#stopping;
  }

  async #shutdown(release: boolean): Promise<void> {
    clearTimeout(this.#timer);
    clearTimeout(this.#deadlineTimer);
    this.#timer = this.#deadlineTimer = undefined;
    const wasLeading = this.#leading;
    this.#leading = false;
    this.#leadingUntil = 0;
    const inflight = this.#inflight;
    if (inflight) {
      inflight.controller.abort(new Error("the elector is stopping"));
      await inflight.done;
    }
    // An aborted try may have written us in without our hearing of it: look then too.
    const mayHold = this.#observed?.holderIdentity === this.#identity || inflight !== undefined;
    if (release && mayHold) await this.#release();
    if (wasLeading) {
      this.#log.info({ reason: "stopped", released: release }, "stopped leading");
      this.#call("onStoppedLeading", () => this.#callbacks.onStoppedLeading?.());
    }
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (this.#stopped) return;
    const controller = new AbortController();
    const { renewDeadlineMs, retryPeriodMs } = this.#timings;
    const timeout = setTimeout(
      () => controller.abort(new Error(`no answer within ${renewDeadlineMs} ms`)),
      renewDeadlineMs,
    );
    const done = this.#attempt(controller.signal).finally(() => clearTimeout(timeout));
    this.#inflight = { controller, done };
    await done;
    this.#inflight = undefined;
    if (this.#stopped) return;
    // A leader retries at the plain period (client-go's renew loop); candidates jitter theirs.
    this.#schedule(this.#leading ? retryPeriodMs : jitteredDelay(retryPeriodMs));
  }

  /** One try; failures are logged (at most one warning per try), never thrown. */
  async #attempt(signal: AbortSignal): Promise<void> {
    const sentAt = this.#clock.now();
    try {
      const wrote = await this.#tryAcquireOrRenew(signal, sentAt);
      if (this.#stopped) return;
      this.#failures = 0;
      this.#lastError = undefined;
      if (wrote) this.#confirmed(sentAt);
    } catch (err) {
      if (this.#stopped) return;
      this.#failures += 1;
      this.#lastError = describeError(err);
      if (hasCode(err, 409)) {
        this.#log.debug({ reason: this.#lastError }, "another replica wrote the lease first");
      } else {
        this.#log.warn(
          { reason: this.#lastError, failures: this.#failures, leading: this.#leading },
          this.#leading ? "renewing the lease failed" : "acquiring the lease failed",
        );
      }
    }
    this.#reportLeader();
  }

  /** Returns true when this replica wrote itself into the Lease, false when another holds it. */
  async #tryAcquireOrRenew(signal: AbortSignal, sentAt: number): Promise<boolean> {
    const options = abortable(signal);
    const ref = { name: this.#name, namespace: this.#namespace };

    // 1. Fast path: the leader updates the Lease it last wrote.
    if (this.#leading && this.#lease && this.#observed?.holderIdentity === this.#identity) {
      const body = this.#withSpec(this.#lease, {
        acquireTime: this.#lease.spec?.acquireTime,
        renewTime: new V1MicroTime(sentAt),
        leaseTransitions: this.#observed.leaseTransitions,
      });
      try {
        this.#observe(await this.#api.replaceNamespacedLease({ ...ref, body }, options));
        return true;
      } catch (err) {
        if (!hasCode(err, 409)) throw err;
        this.#log.debug("the lease changed since the last renewal; reading it again");
      }
    }

    // 2. Read the Lease, or create it.
    let current: V1Lease;
    try {
      current = await this.#api.readNamespacedLease(ref, options);
    } catch (err) {
      if (!hasCode(err, 404)) throw err;
      this.#loseLeadership("the lease was deleted");
      const body: V1Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: ref,
        spec: this.#spec({
          acquireTime: new V1MicroTime(sentAt),
          renewTime: new V1MicroTime(sentAt),
          leaseTransitions: 0,
        }),
      };
      this.#observe(await this.#api.createNamespacedLease({ namespace: this.#namespace, body }, options));
      return true;
    }

    // 3. Look at the holder and at when the record last changed, on our clock.
    const record = this.#observe(current);
    const holder = record.holderIdentity;
    if (holder !== this.#identity) {
      this.#loseLeadership(
        holder ? `the lease is held by ${holder}` : "the lease was released by someone else",
      );
    }
    if (
      heldByOther(record, this.#identity, this.#observedAt, this.#clock.now(), this.#timings.leaseDurationMs)
    ) {
      this.#log.debug({ holder }, "the lease is held by another replica and has not expired");
      return false;
    }

    // 4. Write ourselves in: a renewal keeps acquireTime and the count; a take-over bumps it.
    const ours = holder === this.#identity;
    const body = this.#withSpec(current, {
      acquireTime: ours && this.#leading ? current.spec?.acquireTime : new V1MicroTime(sentAt),
      renewTime: new V1MicroTime(sentAt),
      leaseTransitions: ours ? record.leaseTransitions : record.leaseTransitions + 1,
    });
    if (!ours) this.#log.debug({ previous: holder || undefined }, "taking over the lease");
    this.#observe(await this.#api.replaceNamespacedLease({ ...ref, body }, options));
    return true;
  }

  #spec(times: Pick<V1LeaseSpec, "acquireTime" | "renewTime" | "leaseTransitions">): V1LeaseSpec {
    return {
      holderIdentity: this.#identity,
      leaseDurationSeconds: leaseDurationSeconds(this.#timings.leaseDurationMs),
      ...times,
    };
  }

  /** The Lease to PUT: as read (with its resourceVersion), with the spec replaced, as client-go does. */
  #withSpec(
    lease: V1Lease,
    times: Pick<V1LeaseSpec, "acquireTime" | "renewTime" | "leaseTransitions">,
  ): V1Lease {
    return { ...lease, spec: this.#spec(times) };
  }

  /** Remembers a Lease read or written, and the local time whenever its record changed. */
  #observe(lease: V1Lease): ElectionRecord {
    const record = recordOf(lease);
    this.#lease = lease;
    if (!this.#observed || !sameRecord(this.#observed, record)) {
      this.#observed = record;
      this.#observedAt = this.#clock.now();
    }
    return record;
  }

  /** A write sent at `sentAt` succeeded: this replica leads until sentAt + renewDeadline. */
  #confirmed(sentAt: number): void {
    const until = sentAt + this.#timings.renewDeadlineMs;
    const now = this.#clock.now();
    if (until <= now) {
      // The answer came too late to act on; the next try renews or re-acquires.
      this.#log.warn({ tookMs: now - sentAt }, "the lease write was confirmed only after renewDeadline");
      return;
    }
    this.#leadingUntil = until;
    this.#armDeadline(until - now);
    if (this.#leading) return;
    this.#leading = true;
    this.#reportLeader();
    this.#log.info(
      { leaseTransitions: this.#observed?.leaseTransitions, leadingForMs: until - now },
      "acquired the lease: leading",
    );
    this.#call("onStartedLeading", () => this.#callbacks.onStartedLeading?.());
  }

  #armDeadline(delayMs: number): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      const left = this.#leadingUntil - this.#clock.now();
      if (left > 0) return this.#armDeadline(left);
      const cause = this.#lastError ? `: ${this.#lastError}` : "";
      this.#loseLeadership(`could not renew the lease within ${this.#timings.renewDeadlineMs} ms${cause}`);
    }, delayMs);
  }

  #loseLeadership(reason: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#leadingUntil = 0;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#log.info({ reason }, "stopped leading");
    this.#call("onStoppedLeading", () => this.#callbacks.onStoppedLeading?.());
  }

  #reportLeader(): void {
    const holder = this.#observed?.holderIdentity;
    if (!holder || holder === this.#reportedLeader) return;
    this.#reportedLeader = holder;
    this.#log.info({ leader: holder }, "new leader observed");
    this.#call("onNewLeader", () => this.#callbacks.onNewLeader?.(holder));
  }

  /** client-go's release: clears the holder if it is still us, with leaseDurationSeconds 1. */
  async #release(): Promise<void> {
    const controller = new AbortController();
    const timeout = setTimeout(
      () => controller.abort(new Error(`no answer within ${this.#timings.renewDeadlineMs} ms`)),
      this.#timings.renewDeadlineMs,
    );
    const options = abortable(controller.signal);
    const ref = { name: this.#name, namespace: this.#namespace };
    try {
      const lease = await this.#api.readNamespacedLease(ref, options);
      const record = this.#observe(lease);
      if (record.holderIdentity !== this.#identity) return;
      const now = new V1MicroTime(this.#clock.now());
      const spec: V1LeaseSpec = {
        leaseDurationSeconds: 1,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: record.leaseTransitions,
      };
      this.#observe(await this.#api.replaceNamespacedLease({ ...ref, body: { ...lease, spec } }, options));
      this.#log.info("released the lease");
    } catch (err) {
      if (hasCode(err, 404)) return;
      this.#log.warn(
        { reason: describeError(err) },
        "releasing the lease failed; others take over when it expires",
      );
    } finally {
      clearTimeout(timeout);
    }
  }

  #call(name: string, callback: () => void): void {
    try {
      callback();
    } catch (err) {
      this.#log.error({ reason: describeError(err) }, `${name} threw`);
    }
  }
}
