/** Timers for the status page's tests: intervals fire when the test says. */
import type { Timers } from "../../../src/ui/history.ts";

/** Intervals a test fires by hand. */
export class ManualTimers implements Timers {
  readonly intervals = new Map<number, { fn: () => void; ms: number }>();
  #next = 1;
  setInterval(fn: () => void, ms: number): number {
    const handle = this.#next++;
    this.intervals.set(handle, { fn, ms });
    return handle;
  }
  clearInterval(handle: unknown): void {
    this.intervals.delete(handle as number);
  }
  /** Runs every interval's function once (only those of period `ms`, when given). */
  fire(ms?: number): void {
    for (const i of [...this.intervals.values()]) if (ms === undefined || i.ms === ms) i.fn();
  }
}
