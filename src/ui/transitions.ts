/** The status page's recent key transitions: the last ones of every pool, newest first. */
import type { KeyTransitionEvent } from "../pool/engine.ts";
import { type PoolRef, refKey } from "../pool/registry.ts";

/** One transition as the page shows it: ids and masked values, never a key. */
export interface TransitionEntry {
  /** "namespace/name" */
  pool: string;
  keyId: string;
  masked: string;
  from: string;
  to: string;
  reason: string;
  /** ISO 8601. */
  at: string;
  /** When the new state ends (a cooldown), ISO 8601; absent when it has no end. */
  until?: string;
}

export const TRANSITIONS_KEPT = 100;

export class TransitionLog {
  readonly #entries: TransitionEntry[] = [];
  readonly #limit: number;
  #version = 0;

  constructor(limit = TRANSITIONS_KEPT) {
    this.#limit = limit;
  }

  /** A registry onTransition listener. */
  readonly record = (ref: PoolRef, event: KeyTransitionEvent): void => {
    this.#entries.unshift({
      pool: refKey(ref),
      keyId: event.keyId,
      masked: event.masked,
      from: event.from,
      to: event.to,
      reason: event.reason,
      at: new Date(event.atMs).toISOString(),
      ...(event.untilMs > 0 ? { until: new Date(event.untilMs).toISOString() } : {}),
    });
    if (this.#entries.length > this.#limit) this.#entries.length = this.#limit;
    this.#version++;
  };

  /** Newest first. */
  entries(): readonly TransitionEntry[] {
    return this.#entries;
  }

  /** Grows by one with each transition recorded. */
  get version(): number {
    return this.#version;
  }
}
