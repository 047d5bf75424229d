/**
 * Leases: a dispense opens one (id, key, expiry); a report closes it; an expired lease stops
 * counting as in flight. Every lease of a pool lives equally long, so expiry order is creation
 * order and a FIFO queue finds the expired ones without a heap.
 */
export interface Lease {
  id: string;
  keyId: string;
  openedAtMs: number;
  expiresAtMs: number;
  /** Whoever took it (for audit), when known. */
  holder: string | undefined;
  closed: boolean;
}

export class LeaseTable {
  readonly #byId = new Map<string, Lease>();
  #queue: Lease[] = [];
  #head = 0;

  get open(): number {
    return this.#byId.size;
  }

  get(id: string): Lease | undefined {
    return this.#byId.get(id);
  }

  add(lease: Lease): void {
    this.#byId.set(lease.id, lease);
    this.#queue.push(lease);
  }

  /** Closes a lease; false when it was unknown or already closed/expired. */
  close(id: string): Lease | undefined {
    const lease = this.#byId.get(id);
    if (!lease) return undefined;
    lease.closed = true;
    this.#byId.delete(id);
    return lease;
  }

  /** Removes and returns the leases that expired by `now` and were still open. */
  expire(now: number): Lease[] {
    const expired: Lease[] = [];
    while (this.#head < this.#queue.length) {
      const lease = this.#queue[this.#head] as Lease;
      if (!lease.closed && lease.expiresAtMs > now) break;
      this.#head++;
      if (!lease.closed) {
        lease.closed = true;
        this.#byId.delete(lease.id);
        expired.push(lease);
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return expired;
  }

  /** Drops every lease of a key that left the pool. */
  forgetKey(keyId: string): void {
    for (const [id, lease] of this.#byId) {
      if (lease.keyId === keyId) {
        lease.closed = true;
        this.#byId.delete(id);
      }
    }
  }
}
