import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WorkQueue, type WorkQueueOptions } from "../../../src/controller/work-queue.ts";
import { createLogger } from "../../../src/log.ts";

/** A promise with its resolve exposed, to hold a worker inside its run. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** vitest fakes Date with the timers: the queue's clock and its timers move together. */
const clock = { now: () => Date.now() };
const newQueue = (options: Partial<WorkQueueOptions> = {}) => new WorkQueue({ clock, ...options });

/** Lets pending promise callbacks run without moving the clock. */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("WorkQueue", () => {
  it("processes a key added many times while it waits once", async () => {
    const queue = newQueue();
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) queue.add("ai/openai");
    queue.add("ai/anthropic");
    expect(queue.length).toBe(2);
    queue.start(async (key) => {
      seen.push(key);
    });
    await settle();
    expect(seen).toEqual(["ai/openai", "ai/anthropic"]);
    await queue.shutdown();
  });

  it("never hands one key to two workers at once, and runs it again when it was added meanwhile", async () => {
    const queue = newQueue();
    const running = new Map<string, number>();
    let maxParallelOfOneKey = 0;
    let runs = 0;
    const held = gate();
    queue.start(async (key) => {
      runs++;
      running.set(key, (running.get(key) ?? 0) + 1);
      maxParallelOfOneKey = Math.max(maxParallelOfOneKey, running.get(key) ?? 0);
      if (runs === 1) await held.promise;
      running.set(key, (running.get(key) ?? 0) - 1);
    }, 4);
    queue.add("ai/pool");
    await settle();
    expect(queue.processing).toBe(1);
    // Three adds during the run: one more run after it, never a parallel one.
    queue.add("ai/pool");
    queue.add("ai/pool");
    queue.add("ai/pool");
    await settle();
    expect(runs).toBe(1);
    expect(queue.length).toBe(0);
    held.open();
    await settle();
    expect(runs).toBe(2);
    expect(maxParallelOfOneKey).toBe(1);
    expect(queue.processing).toBe(0);
    await queue.shutdown();
  });

  it("processes different keys in parallel up to the concurrency", async () => {
    const queue = newQueue();
    const held = gate();
    queue.start(() => held.promise, 2);
    for (const key of ["a", "b", "c"]) queue.add(key);
    await settle();
    expect(queue.processing).toBe(2);
    expect(queue.length).toBe(1);
    held.open();
    await settle();
    expect(queue.processing).toBe(0);
    expect(queue.length).toBe(0);
    await queue.shutdown();
  });

  it("hands delayed keys out in the order of their times, not of the calls", async () => {
    const queue = newQueue();
    const seen: [string, number][] = [];
    const t0 = Date.now();
    queue.start(async (key) => {
      seen.push([key, Date.now() - t0]);
    });
    queue.addAfter("late", 300);
    queue.addAfter("early", 100);
    queue.addAfter("now", 0);
    await settle();
    expect(seen).toEqual([["now", 0]]);
    expect(queue.delayed).toBe(2);
    await vi.advanceTimersByTimeAsync(99);
    expect(seen.map(([key]) => key)).toEqual(["now"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen).toEqual([
      ["now", 0],
      ["early", 100],
    ]);
    await vi.advanceTimersByTimeAsync(200);
    expect(seen).toEqual([
      ["now", 0],
      ["early", 100],
      ["late", 300],
    ]);
    await queue.shutdown();
  });

  it.each([
    { case: "a later addAfter with an earlier time moves the key forward", first: 500, second: 100 },
    { case: "a later addAfter with a later time leaves the earlier time", first: 100, second: 500 },
  ])("$case", async ({ first, second }) => {
    const queue = newQueue();
    const at: number[] = [];
    const t0 = Date.now();
    queue.start(async () => {
      at.push(Date.now() - t0);
    });
    queue.addAfter("ai/pool", first);
    queue.addAfter("ai/pool", second);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(at).toEqual([100]);
    await queue.shutdown();
  });

  it("backs a failing key off exponentially up to the ceiling, and forget starts it over", async () => {
    // random() = 0.5 puts each delay at 3/4 of its ceiling: 75, 150, 300, 600, 750 (max 1000).
    const queue = newQueue({ baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0.5 });
    const delays: number[] = [];
    let last = Date.now();
    queue.start(async () => {
      delays.push(Date.now() - last);
    });
    for (let i = 0; i < 5; i++) {
      last = Date.now();
      queue.addRateLimited("ai/pool");
      await vi.advanceTimersByTimeAsync(2_000);
    }
    expect(delays).toEqual([75, 150, 300, 600, 750]);
    expect(queue.retries("ai/pool")).toBe(5);
    queue.forget("ai/pool");
    expect(queue.retries("ai/pool")).toBe(0);
    last = Date.now();
    queue.addRateLimited("ai/pool");
    await vi.advanceTimersByTimeAsync(2_000);
    expect(delays.at(-1)).toBe(75);
    await queue.shutdown();
  });

  it("keeps jittered delays between half and all of the doubling ceiling, per key", async () => {
    const queue = newQueue({ baseDelayMs: 100, maxDelayMs: 300_000 });
    const done = new Map<string, number>();
    queue.start(async (key) => {
      done.set(key, Date.now());
    });
    for (let attempt = 0; attempt < 4; attempt++) {
      const ceiling = 100 * 2 ** attempt;
      const t0 = Date.now();
      // The previous attempt may have run at this very millisecond (jitter near 1): start clean.
      done.delete("a");
      queue.addRateLimited("a");
      await vi.advanceTimersByTimeAsync(ceiling / 2 - 1);
      expect(done.has("a")).toBe(false);
      await vi.advanceTimersByTimeAsync(ceiling / 2 + 1);
      expect(done.get("a")).toBeGreaterThanOrEqual(t0 + ceiling / 2);
    }
    // Another key's backoff is its own.
    const t0 = Date.now();
    queue.addRateLimited("b");
    await vi.advanceTimersByTimeAsync(100);
    expect(done.get("b")).toBeGreaterThanOrEqual(t0 + 50);
    await queue.shutdown();
  });

  it("leaves a worker's error to the caller: logs it and does not retry", async () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: "error",
      destination: { write: (line: string) => lines.push(line) },
    });
    const queue = newQueue({ logger });
    let runs = 0;
    queue.start(async () => {
      runs++;
      throw new Error("reconcile failed");
    });
    queue.add("ai/pool");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toBe(1);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      item: "ai/pool",
      err: { message: "reconcile failed" },
    });
    // The queue still works.
    queue.add("ai/pool");
    await settle();
    expect(runs).toBe(2);
    await queue.shutdown();
  });

  it("waits in shutdown for the keys in flight, then hands out nothing more", async () => {
    const queue = newQueue();
    const held = gate();
    const seen: string[] = [];
    let finished = false;
    queue.start(async (key) => {
      seen.push(key);
      await held.promise;
      finished = true;
    });
    queue.add("in-flight");
    queue.add("queued");
    queue.addAfter("delayed", 100);
    await settle();
    let shutDown = false;
    const shutdown = queue.shutdown().then(() => {
      shutDown = true;
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(shutDown).toBe(false);
    queue.add("after-shutdown");
    held.open();
    await shutdown;
    expect(finished).toBe(true);
    expect(seen).toEqual(["in-flight"]);
    expect(queue.length).toBe(0);
    expect(queue.delayed).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("shuts down at once when idle, with no timer left behind", async () => {
    const queue = newQueue();
    queue.start(async () => undefined, 3);
    queue.addAfter("ai/pool", 10_000);
    queue.addRateLimited("ai/other");
    expect(vi.getTimerCount()).toBe(1);
    await queue.shutdown();
    expect(vi.getTimerCount()).toBe(0);
  });
});
