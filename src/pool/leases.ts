/**
 * Leases: a dispense opens one (key, expiry); a report closes it; an expired lease stops counting
 * as in flight. The table is a ring in creation order: slot = sequence number modulo capacity.
 *
 * An open lease is a few numbers in typed arrays and a reference to its key's id, not an object
 * of its own. Callers that never report leave every lease open for the whole lease duration (at
 * 14,000 dispenses/s and 5 s, 70,000 of them); as objects, each survived the young-generation GCs
 * it lived through and then filled the old generation, which is what made those GCs long.
 *
 * Expiry order is creation order only while every lease lives as long as the one before it. When
 * `leases.duration` shrinks (or the clock steps back), a new lease ends before older ones still
 * open. So the ring is cut into runs: a new run starts at a lease that expires earlier than the
 * lease before it, and within a run expiry order is creation order again. Each run keeps a cursor
 * (its first lease not yet known to have ended), and expiry scans each run from its cursor while
 * leases there are past their time: exact for mixed lifetimes, with nothing per lease beyond the
 * ring. A run is a pair of numbers and lives until its last lease ends, so there are as many runs
 * as shrinks within one (old) lease duration: almost always one, the path of a pool that never
 * changes its duration is what it was, and a change costs one more cursor check per tick until
 * the older leases have ended. (A min-heap of slots ordered by expiry would also be exact, but
 * costs a log-time sift on every dispense and expiry, and one more typed array, to handle an
 * event that happens at a config change.) The ring's head is the first run's cursor: slots
 * before it are free, slots after it are held, ended or not, until the runs before them end.
 *
 * A lease id is `<sequence>.<token>` in base 36: the sequence number finds the slot, and the
 * token, random per lease (from the injected source), has to match, so an id cannot be guessed
 * from another one and an id from another pool's table is not taken for one of this one's.
 *
 * The ring starts at MIN_CAPACITY slots and doubles when full; once every lease has ended it goes
 * back to MIN_CAPACITY. An operator holds one table per pool, most of them idle: at 10,000 pools
 * a fixed 1,024-slot ring was 24 KB each, 240 MB in all, for leases nobody had opened.
 */
const MIN_CAPACITY = 8;
const ID_RE = /^([0-9a-z]{1,11})\.([0-9a-z]{1,10})$/;

export class LeaseTable {
  #capacity = MIN_CAPACITY;
  #token = new Float64Array(MIN_CAPACITY);
  #expiresAt = new Float64Array(MIN_CAPACITY);
  /** The key's id while the lease is open; undefined once closed or expired. */
  #keyId: Array<string | undefined> = new Array<string | undefined>(MIN_CAPACITY).fill(undefined);
  /**
   * Sequence number of the oldest slot still held (open, or ended but not yet passed): the first
   * run's cursor. The held slots are exactly the sequence numbers head..tail-1, so a slot's
   * sequence number is implied.
   */
  #head = 0;
  /** Sequence number the next lease gets. */
  #tail = 0;
  #open = 0;
  /**
   * Runs of leases in expiry order, oldest first: run i holds the sequence numbers
   * runStart[i]..runStart[i+1]-1 (the last run: up to tail-1), and runCursor[i] is its first
   * lease not yet passed. runCursor[0] is head.
   */
  readonly #runStart: number[] = [0];
  readonly #runCursor: number[] = [0];
  /** Expiry of the newest lease (tail-1): a lease that ends earlier starts a run. */
  #lastExpiresAt = Number.NEGATIVE_INFINITY;

  get open(): number {
    return this.#open;
  }

  /** Opens a lease on `keyId` until `expiresAtMs`; returns its id. */
  add(keyId: string, expiresAtMs: number, token: number): string {
    if (this.#tail - this.#head === this.#capacity) this.#grow();
    const seq = this.#tail++;
    const last = this.#runCursor.length - 1;
    // An earlier end than the newest lease's, with leases of the last run still held: a new run.
    // (When the last run has nothing held, the new lease simply comes first in it.)
    if (expiresAtMs < this.#lastExpiresAt && (this.#runCursor[last] as number) < seq) {
      this.#runStart.push(seq);
      this.#runCursor.push(seq);
    }
    this.#lastExpiresAt = expiresAtMs;
    const slot = seq % this.#capacity;
    this.#token[slot] = token;
    this.#expiresAt[slot] = expiresAtMs;
    this.#keyId[slot] = keyId;
    this.#open++;
    return `${seq.toString(36)}.${token.toString(36)}`;
  }

  /** The key an open lease is on; undefined for an id that is not an open lease here. */
  get(id: string): string | undefined {
    const slot = this.#find(id);
    return slot === undefined ? undefined : this.#keyId[slot];
  }

  /** Closes a lease and returns its key's id; undefined when unknown, closed or expired. */
  close(id: string): string | undefined {
    const slot = this.#find(id);
    if (slot === undefined) return undefined;
    const keyId = this.#keyId[slot];
    this.#keyId[slot] = undefined;
    this.#open--;
    return keyId;
  }

  /** Ends the leases that expired by `now` and were still open, telling `ended` each one's key. */
  expire(now: number, ended: (keyId: string, now: number) => void): void {
    const runs = this.#runCursor.length;
    for (let run = 0; run < runs; run++) {
      const end = run + 1 < runs ? (this.#runStart[run + 1] as number) : this.#tail;
      let seq = this.#runCursor[run] as number;
      while (seq < end) {
        const slot = seq % this.#capacity;
        const keyId = this.#keyId[slot];
        if (keyId !== undefined && (this.#expiresAt[slot] as number) > now) break;
        seq++;
        if (keyId !== undefined) {
          this.#keyId[slot] = undefined;
          this.#open--;
          ended(keyId, now);
        }
      }
      this.#runCursor[run] = seq;
    }
    if (runs > 1) this.#dropEndedRuns();
    this.#head = this.#runCursor[0] as number;
    if (this.#head === this.#tail && this.#capacity > MIN_CAPACITY) this.#resize(MIN_CAPACITY);
  }

  /** Slots the ring has now (grows with the leases held, back to a few when none are). */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Runs whose every lease ended go; the last run stays (new leases join it). An ended run's
   * slots fall to the run before it: when that one had ended too, it ends where this one did
   * (and goes in turn); otherwise its cursor passes them as ended on a later tick. So once every
   * lease has ended, one run is left and the ring's head is its tail.
   */
  #dropEndedRuns(): void {
    for (let run = this.#runCursor.length - 2; run >= 0; run--) {
      if (this.#runCursor[run] === this.#runStart[run + 1]) {
        if (run > 0 && this.#runCursor[run - 1] === this.#runStart[run]) {
          this.#runCursor[run - 1] = this.#runCursor[run] as number;
        }
        this.#runStart.splice(run, 1);
        this.#runCursor.splice(run, 1);
      }
    }
  }

  /** Drops every lease of a key that left the pool. */
  forgetKey(keyId: string): void {
    for (let seq = this.#head; seq < this.#tail; seq++) {
      const slot = seq % this.#capacity;
      if (this.#keyId[slot] === keyId) {
        this.#keyId[slot] = undefined;
        this.#open--;
      }
    }
  }

  #find(id: string): number | undefined {
    const m = ID_RE.exec(id);
    if (!m) return undefined;
    const seq = Number.parseInt(m[1] as string, 36);
    if (seq < this.#head || seq >= this.#tail) return undefined;
    const slot = seq % this.#capacity;
    if (this.#keyId[slot] === undefined) return undefined;
    return this.#token[slot] === Number.parseInt(m[2] as string, 36) ? slot : undefined;
  }

  /** Twice the slots. */
  #grow(): void {
    this.#resize(this.#capacity * 2);
  }

  /** `capacity` slots (at least the ones held), the held ones moved to where their sequence numbers now map. */
  #resize(capacity: number): void {
    const tokens = new Float64Array(capacity);
    const expiries = new Float64Array(capacity);
    const keyIds = new Array<string | undefined>(capacity).fill(undefined);
    for (let seq = this.#head; seq < this.#tail; seq++) {
      const from = seq % this.#capacity;
      const to = seq % capacity;
      tokens[to] = this.#token[from] as number;
      expiries[to] = this.#expiresAt[from] as number;
      keyIds[to] = this.#keyId[from];
    }
    this.#capacity = capacity;
    this.#token = tokens;
    this.#expiresAt = expiries;
    this.#keyId = keyIds;
  }
}

/** Random bytes per lease token: 48 bits, exact in a double. */
export const LEASE_TOKEN_BYTES = 6;
/** Lease tokens are below this. */
export const LEASE_TOKEN_LIMIT = 2 ** (8 * LEASE_TOKEN_BYTES);
