/**
 * Rotation strategies. Each keeps the set of keys usable right now (the engine adds and removes
 * keys as states, limits and time change) and picks among them, so a pick never has to skip an
 * unusable key. Costs per pick: RoundRobin O(1), LeastRecentlyUsed, LeastLoaded and Weighted
 * O(log n).
 */
import type { Strategy } from "../api/keypool.ts";
import { IndexedHeap } from "./heap.ts";
import type { KeyRecord } from "./key.ts";

export interface ActiveSet {
  readonly strategy: Strategy;
  readonly size: number;
  add(rec: KeyRecord): void;
  remove(rec: KeyRecord): void;
  has(rec: KeyRecord): boolean;
  /** The key the strategy would hand out next; does not change anything. */
  peek(): KeyRecord | undefined;
  /** Tells the strategy `rec` was just handed out (lastUseSeq, inFlight, load already updated). */
  used(rec: KeyRecord): void;
  /** Tells the strategy `rec`'s load or weight changed (a lease closed, a report arrived). */
  changed(rec: KeyRecord): void;
  values(): Iterable<KeyRecord>;
}

/** In turn: a ring with a cursor. A key (re)joining goes last in the current round. */
export class RoundRobinSet implements ActiveSet {
  readonly strategy = "RoundRobin" as const;
  #cursor: KeyRecord | undefined;
  #size = 0;
  readonly #members = new Set<KeyRecord>();

  get size(): number {
    return this.#size;
  }

  has(rec: KeyRecord): boolean {
    return this.#members.has(rec);
  }

  add(rec: KeyRecord): void {
    if (this.#members.has(rec)) return;
    this.#members.add(rec);
    this.#size++;
    const cursor = this.#cursor;
    if (!cursor) {
      rec.prev = rec;
      rec.next = rec;
      this.#cursor = rec;
      return;
    }
    const before = cursor.prev as KeyRecord;
    before.next = rec;
    rec.prev = before;
    rec.next = cursor;
    cursor.prev = rec;
  }

  remove(rec: KeyRecord): void {
    if (!this.#members.delete(rec)) return;
    this.#size--;
    if (this.#size === 0) {
      this.#cursor = undefined;
    } else {
      (rec.prev as KeyRecord).next = rec.next;
      (rec.next as KeyRecord).prev = rec.prev;
      if (this.#cursor === rec) this.#cursor = rec.next;
    }
    rec.prev = undefined;
    rec.next = undefined;
  }

  peek(): KeyRecord | undefined {
    return this.#cursor;
  }

  used(rec: KeyRecord): void {
    if (this.#cursor === rec) this.#cursor = rec.next;
  }

  changed(): void {}

  values(): Iterable<KeyRecord> {
    return this.#members;
  }
}

/** A strategy that is a min-heap on some order of keys. */
abstract class HeapSet implements ActiveSet {
  abstract readonly strategy: Strategy;
  protected readonly heap: IndexedHeap<KeyRecord, "activeIndex">;

  constructor(less: (a: KeyRecord, b: KeyRecord) => boolean) {
    this.heap = new IndexedHeap<KeyRecord, "activeIndex">(less, "activeIndex");
  }

  get size(): number {
    return this.heap.size;
  }

  has(rec: KeyRecord): boolean {
    return this.heap.has(rec);
  }

  add(rec: KeyRecord): void {
    if (!this.heap.has(rec)) this.heap.push(rec);
  }

  remove(rec: KeyRecord): void {
    this.heap.remove(rec);
  }

  peek(): KeyRecord | undefined {
    return this.heap.peek();
  }

  used(rec: KeyRecord): void {
    this.heap.update(rec);
  }

  changed(rec: KeyRecord): void {
    this.heap.update(rec);
  }

  values(): Iterable<KeyRecord> {
    return this.heap.values();
  }
}

/** The key idle longest (never-used keys first, in the order they joined). */
export class LeastRecentlyUsedSet extends HeapSet {
  readonly strategy = "LeastRecentlyUsed" as const;
  constructor() {
    super((a, b) => a.lastUseSeq < b.lastUseSeq || (a.lastUseSeq === b.lastUseSeq && a.order < b.order));
  }
}

/**
 * Fewest open leases, then lowest use of its own limits (requests and tokens in the window
 * relative to the key's limits), then idle longest. `load` is computed by the engine when a
 * lease opens or closes or a report arrives.
 */
export class LeastLoadedSet extends HeapSet {
  readonly strategy = "LeastLoaded" as const;
  constructor() {
    super(
      (a, b) =>
        a.load < b.load ||
        (a.load === b.load &&
          (a.lastUseSeq < b.lastUseSeq || (a.lastUseSeq === b.lastUseSeq && a.order < b.order))),
    );
  }
}

/**
 * Effective weight: the configured weight scaled by health, never below 1% so a key can recover,
 * and by the key's headroom (1 unless spec.forecast.balance: see KeyRecord.headroom).
 */
export function effectiveWeight(rec: KeyRecord): number {
  return rec.weight * Math.max(rec.health, 0.01) * rec.headroom;
}

/**
 * Smooth weighted round-robin as stride scheduling: each key has a virtual time (`pass`) that
 * advances by 1/weight when it is picked, and the earliest goes next. Picks interleave smoothly
 * (10:5:5 gives A B C A A B C A ...) and are deterministic. A key joining starts at the current
 * virtual time, so a key back from a cooldown does not get a burst of catch-up turns.
 */
export class WeightedSet extends HeapSet {
  readonly strategy = "Weighted" as const;
  #virtualTime = 0;

  constructor() {
    super((a, b) => a.pass < b.pass || (a.pass === b.pass && a.order < b.order));
  }

  override add(rec: KeyRecord): void {
    if (this.heap.has(rec)) return;
    rec.pass = Math.max(rec.pass, this.#virtualTime);
    this.heap.push(rec);
  }

  override used(rec: KeyRecord): void {
    this.#virtualTime = rec.pass;
    rec.pass += 1 / effectiveWeight(rec);
    this.heap.update(rec);
  }

  override changed(): void {}
}

/**
 * The cheapest key first: lowest costMultiplier, then the order keys joined. A key at a limit or
 * over its budget leaves the set, so calls spill to the next cheapest as limits fill.
 */
export class LowestCostSet extends HeapSet {
  readonly strategy = "LowestCost" as const;
  constructor() {
    super(
      (a, b) =>
        a.costMultiplier < b.costMultiplier || (a.costMultiplier === b.costMultiplier && a.order < b.order),
    );
  }
}

/**
 * The active set for a pool: its strategy's, or with spec.forecast.balance, a weighted one whose
 * weights carry each key's headroom (every strategy then shares calls by what keys have left).
 */
export function createActiveSet(strategy: Strategy, balance = false): ActiveSet {
  return balance && strategy !== "LowestCost" ? new WeightedSet() : createStrategySet(strategy);
}

function createStrategySet(strategy: Strategy): ActiveSet {
  switch (strategy) {
    case "RoundRobin":
      return new RoundRobinSet();
    case "LeastRecentlyUsed":
      return new LeastRecentlyUsedSet();
    case "LeastLoaded":
      return new LeastLoadedSet();
    case "Weighted":
      return new WeightedSet();
    case "LowestCost":
      return new LowestCostSet();
  }
}
