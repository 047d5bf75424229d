/**
 * The event ids seen lately, so that one transition is delivered once however often the
 * operator reports it (every reconcile of a pool that stays Unavailable, every replica's restart
 * of the same reconcile). Bounded: the least recently seen id is forgotten first.
 */
export class RecentIds {
  readonly #capacity: number;
  /** Insertion order is recency order: a repeat moves its id to the end. */
  readonly #ids = new Set<string>();

  constructor(capacity: number) {
    this.#capacity = Math.max(1, Math.floor(capacity));
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Remembers `id`; true when it is new, false when it was remembered already. */
  add(id: string): boolean {
    const seen = this.#ids.delete(id);
    this.#ids.add(id);
    if (!seen && this.#ids.size > this.#capacity) {
      const oldest = this.#ids.values().next();
      if (!oldest.done) this.#ids.delete(oldest.value);
    }
    return !seen;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }
}
