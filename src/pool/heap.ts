/**
 * A binary min-heap whose items know their position, so an item's priority can change or the
 * item can leave in O(log n). The engine's strategies and wake-up queue are built on it.
 */
/**
 * An item may sit in several heaps at once; each heap keeps the item's position in its own
 * field (named by `position`), -1 when the item is not in it.
 */
export type PositionField = "activeIndex" | "wakeIndex";
export type HeapItem<K extends PositionField> = Record<K, number>;

export class IndexedHeap<T extends HeapItem<K>, K extends PositionField = PositionField> {
  readonly #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;
  readonly #pos: K;

  constructor(less: (a: T, b: T) => boolean, position: K) {
    this.#less = less;
    this.#pos = position;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  has(item: T): boolean {
    return item[this.#pos] >= 0 && this.#items[item[this.#pos]] === item;
  }

  push(item: T): void {
    (item as HeapItem<K>)[this.#pos] = this.#items.length;
    this.#items.push(item);
    this.#up(this.#items.length - 1);
  }

  pop(): T | undefined {
    const top = this.#items[0];
    if (top) this.remove(top);
    return top;
  }

  remove(item: T): void {
    if (!this.has(item)) return;
    const i = item[this.#pos];
    const last = this.#items.pop() as T;
    (item as HeapItem<K>)[this.#pos] = -1;
    if (last !== item) {
      this.#items[i] = last;
      (last as HeapItem<K>)[this.#pos] = i;
      this.update(last);
    }
  }

  /** Restores order after `item`'s priority changed. */
  update(item: T): void {
    if (!this.has(item)) return;
    this.#up(item[this.#pos]);
    this.#down(item[this.#pos]);
  }

  /** Items in no particular order. */
  values(): readonly T[] {
    return this.#items;
  }

  #up(i: number): void {
    const items = this.#items;
    const item = items[i] as T;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as T;
      if (!this.#less(item, p)) break;
      items[i] = p;
      (p as HeapItem<K>)[this.#pos] = i;
      i = parent;
    }
    items[i] = item;
    (item as HeapItem<K>)[this.#pos] = i;
  }

  #down(i: number): void {
    const items = this.#items;
    const n = items.length;
    const item = items[i] as T;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.#less(items[right] as T, items[left] as T) ? right : left;
      const c = items[child] as T;
      if (!this.#less(c, item)) break;
      items[i] = c;
      (c as HeapItem<K>)[this.#pos] = i;
      i = child;
    }
    items[i] = item;
    (item as HeapItem<K>)[this.#pos] = i;
  }
}
