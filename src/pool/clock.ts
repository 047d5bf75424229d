/** Time as the engine sees it: injected, so tests move it by hand. Epoch milliseconds. */
export interface Clock {
  now(): number;
}

/** A clock tests set and advance. */
export class ManualClock implements Clock {
  #now: number;
  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  set(ms: number): void {
    this.#now = ms;
  }
}
