/**
 * Kubernetes Events on KeyPools (key state transitions, Secret problems), rate-limited so a
 * flapping key cannot flood the API server: the same (pool, reason, subject) at most once per
 * interval, and a token bucket over all events. Messages name keys by id and masked form only.
 */
import { refKey } from "../pool/registry.ts";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { describeError } from "../describe-error.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { apiClient } from "../kube-client.ts";

export interface EventTarget {
  namespace: string;
  name: string;
  uid?: string;
  apiVersion: string;
  kind: string;
}

export interface EventRecorderOptions {
  kc: KubeConfig;
  logger: Logger;
  /** reportingInstance: this replica. */
  instance: string;
  clock: Clock;
  /** Minimum time between two events with the same dedup key. */
  repeatIntervalMs?: number;
  /** Token bucket over all events. */
  burst?: number;
  perSecond?: number;
}

const COMPONENT = "keypool-operator";

export class EventRecorder {
  readonly #api: CoreV1Api;
  readonly #logger: Logger;
  readonly #instance: string;
  readonly #clock: Clock;
  readonly #repeatMs: number;
  readonly #burst: number;
  readonly #perSecond: number;
  readonly #lastSent = new Map<string, number>();
  #tokens: number;
  #refilledAt: number;
  #dropped = 0;

  constructor(options: EventRecorderOptions) {
    this.#api = apiClient(options.kc, CoreV1Api);
    this.#logger = options.logger.child({ component: "events" });
    this.#instance = options.instance;
    this.#clock = options.clock;
    this.#repeatMs = options.repeatIntervalMs ?? 60_000;
    this.#burst = options.burst ?? 25;
    this.#perSecond = options.perSecond ?? 1;
    this.#tokens = this.#burst;
    this.#refilledAt = this.#clock.now();
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Records an event unless rate limits say no. Never throws; failures are logged. */
  record(
    target: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    subject = "",
  ): void {
    const now = this.#clock.now();
    const dedup = `${target.namespace}/${target.name}/${reason}/${subject}`;
    const last = this.#lastSent.get(dedup);
    if ((last !== undefined && now - last < this.#repeatMs) || !this.#takeToken(now)) {
      this.#dropped++;
      this.#logger.debug({ pool: refKey(target), reason }, "event rate-limited");
      return;
    }
    this.#lastSent.set(dedup, now);
    if (this.#lastSent.size > 10_000) this.#forgetOld(now);
    const time = new Date(now);
    this.#api
      .createNamespacedEvent({
        namespace: target.namespace,
        body: {
          metadata: { generateName: `${target.name}.`, namespace: target.namespace },
          involvedObject: {
            apiVersion: target.apiVersion,
            kind: target.kind,
            name: target.name,
            namespace: target.namespace,
            ...(target.uid ? { uid: target.uid } : {}),
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: COMPONENT },
          reportingComponent: `keypool.dev/${COMPONENT}`,
          reportingInstance: this.#instance,
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      })
      .catch((err: unknown) => {
        this.#logger.warn({ err: describeError(err), reason }, "could not record event");
      });
  }

  #takeToken(now: number): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#perSecond);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  #forgetOld(now: number) {
    for (const [key, at] of this.#lastSent) if (now - at >= this.#repeatMs) this.#lastSent.delete(key);
  }
}
