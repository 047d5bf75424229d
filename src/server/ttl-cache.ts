/** The bounded expiring map behind the auth caches (auth.ts). */
/**
 * A map with a size bound and per-entry expiry. Map order is recency: a hit moves its entry to
 * the end, and the first entry is evicted when full. Expired entries are never served as fresh;
 * an entry may be kept past its expiry (`keepUntil`) to be served by `stale` when no fresh
 * answer can be had. Kept entries count against the bound like any other.
 */
export class TtlCache<V> {
  readonly #max: number;
  readonly #entries = new Map<
    string,
    { value: V; storedAt: number; expiresAt: number; keepUntil: number; touchedAt: number }
  >();

  constructor(maxEntries: number) {
    if (!(maxEntries >= 1)) throw new Error(`maxEntries must be at least 1, got ${maxEntries}`);
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): V | undefined {
    return this.entry(key, now)?.value;
  }

  /** The live (unexpired) entry with its expiry, or undefined. */
  entry(key: string, now: number): { value: V; storedAt: number; expiresAt: number } | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      if (entry.keepUntil <= now) this.#entries.delete(key);
      return undefined;
    }
    // Move to the recent end at most once a second: on the hot path (one caller, thousands of
    // requests a second) re-inserting on every hit costs more than the rest of the lookup.
    if (now - entry.touchedAt >= 1_000) {
      entry.touchedAt = now;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** The value, expired or not, while it is kept (before `keepUntil`); else undefined. */
  stale(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.keepUntil <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Stores `value`, fresh until `expiresAt` and kept for `stale` until `keepUntil` (not before `expiresAt`). */
  set(key: string, value: V, expiresAt: number, now = 0, keepUntil = expiresAt): void {
    this.#entries.delete(key);
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, {
      value,
      storedAt: now,
      expiresAt,
      keepUntil: Math.max(keepUntil, expiresAt),
      touchedAt: now,
    });
  }
}
