import { Writable } from "node:stream";
import { ApiException } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { KeyPoolStatus } from "../../../src/api/status.ts";
import { type PoolRef } from "../../../src/pool/registry.ts";
import {
  canonicalJson,
  StatusWriter,
  type StatusWriterOptions,
} from "../../../src/controller/status-writer.ts";
import { createLogger } from "../../../src/log.ts";

const REF: PoolRef = { namespace: "ai", name: "gpt" };
const status = (generation: number): KeyPoolStatus => ({ observedGeneration: generation });

/** An API server's Status answer, as client-node throws it. */
function apiError(code: number, reason: string, message: string): ApiException<string> {
  return new ApiException(code, reason, JSON.stringify({ kind: "Status", code, reason, message }), {});
}

const FORBIDDEN = apiError(
  403,
  "Forbidden",
  'keypools.keypool.dev "gpt" is forbidden: User "system:serviceaccount:keypool-system:keypool-operator" cannot patch resource "keypools/status"',
);
const INVALID = apiError(
  422,
  "Invalid",
  'KeyPool.keypool.dev "gpt" is invalid: status.keyStatuses[0].state: Unsupported value: "Sleeping"',
);
const UNAVAILABLE = apiError(
  503,
  "ServiceUnavailable",
  "the server is currently unable to handle the request",
);

interface Line {
  level: string;
  msg: string;
  pool?: string;
  reason?: string;
}

/** A writer over a fake API whose answers come from `answer`, on vitest's fake timers. */
function writerWith(answer: () => Error | undefined, options: Partial<StatusWriterOptions> = {}) {
  const lines: Line[] = [];
  const logger = createLogger({
    level: "debug",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Line);
        done();
      },
    }),
  });
  const calls: number[] = [];
  const events: Array<{ ref: PoolRef; message: string }> = [];
  const writer = new StatusWriter({
    logger,
    isLeader: () => true,
    // vitest fakes Date with the timers: this clock and the writer's timers move together.
    clock: { now: () => Date.now() },
    random: () => 0.5,
    patchStatus: async () => {
      calls.push(Date.now());
      const err = answer();
      if (err) throw err;
    },
    onTerminalFailure: (ref, message) => events.push({ ref, message }),
    ...options,
  });
  const intervals = () => calls.slice(1).map((at, i) => at - (calls[i] as number));
  const failureLines = () => {
    logger.flush();
    return lines.filter((l) => l.msg.startsWith("status write"));
  };
  return { writer, calls, events, intervals, failureLines };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("a status write the API server refuses", () => {
  // random() = 0.5 puts each retry at 3/4 of its ceiling: 1 s doubling up to 5 min.
  const GROWING = [750, 1_500, 3_000, 6_000, 12_000, 24_000, 48_000, 96_000, 192_000, 225_000, 225_000];

  it.each([
    {
      name: "a 403 (RBAC lost patch on keypools/status) backs off, warns once and records one Warning Event",
      err: FORBIDDEN,
      level: "warn",
      events: 1,
    },
    {
      name: "a 422 (our own status is invalid: a bug) backs off, logs one error with the API server's message and records one Event",
      err: INVALID,
      level: "error",
      events: 1,
    },
    {
      name: "a 503 (the API server is busy) backs off and warns once, with no Event: it is not the pool's problem",
      err: UNAVAILABLE,
      level: "warn",
      events: 0,
    },
  ])("$name", async ({ err, level, events: eventCount }) => {
    const { writer, intervals, events, failureLines } = writerWith(() => err);
    writer.submit(REF, status(1));
    await vi.advanceTimersByTimeAsync(20 * 60_000);

    expect(intervals().slice(0, GROWING.length)).toEqual(GROWING);
    expect(Math.max(...intervals())).toBe(225_000);
    const failed = failureLines();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level, pool: "ai/gpt" });
    expect(failed[0]?.reason).toContain(`HTTP ${err.code}`);
    expect(events).toHaveLength(eventCount);
    if (eventCount) expect(events[0]?.message).toContain(`HTTP ${err.code}`);
    expect(writer.stats.failures).toBe(intervals().length + 1);
    await writer.stop();
  });

  it("names the API server's complaint about an invalid status in the error line", async () => {
    const { writer, failureLines } = writerWith(() => INVALID);
    writer.submit(REF, status(1));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(failureLines()[0]?.reason).toBe(
      'HTTP 422 Invalid: KeyPool.keypool.dev "gpt" is invalid: status.keyStatuses[0].state: Unsupported value: "Sleeping"',
    );
    await writer.stop();
  });

  it("does not let newer statuses jump the backoff: they wait for the next retry and replace what it writes", async () => {
    let fail = true;
    const written: KeyPoolStatus[] = [];
    const { writer, calls } = writerWith(() => (fail ? FORBIDDEN : undefined), {
      patchStatus: async (_ref, s) => {
        calls.push(Date.now());
        if (fail) throw FORBIDDEN;
        written.push(s);
      },
    });
    writer.submit(REF, status(1));
    await vi.advanceTimersByTimeAsync(100 + 750 + 1_500); // the first write and two retries
    expect(calls).toHaveLength(3);
    for (let g = 2; g < 12; g++) {
      writer.submit(REF, status(g));
      await vi.advanceTimersByTimeAsync(200);
    }
    expect(calls).toHaveLength(3);
    fail = false;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(calls).toHaveLength(4);
    expect(written).toEqual([status(11)]);
    await writer.stop();
  });

  it("starts a new episode after a success: one more line and Event, and the backoff starts over", async () => {
    let fail = true;
    const { writer, intervals, events, failureLines } = writerWith(() => (fail ? FORBIDDEN : undefined));
    writer.submit(REF, status(1));
    await vi.advanceTimersByTimeAsync(100 + 750 + 1_500 + 3_000);
    fail = false;
    await vi.advanceTimersByTimeAsync(6_000);
    expect(failureLines().map((l) => l.msg)).toEqual([
      "status write failed; retrying with backoff",
      "status write succeeded again",
    ]);
    fail = true;
    writer.submit(REF, status(2));
    await vi.advanceTimersByTimeAsync(100 + 750 + 1_500);
    expect(intervals().slice(-2)).toEqual([750, 1_500]);
    expect(failureLines()).toHaveLength(3);
    expect(events).toHaveLength(2);
    await writer.stop();
  });

  it("forgets a pool whose object is gone (404) without retrying", async () => {
    const { writer, calls, failureLines } = writerWith(() => apiError(404, "NotFound", "not found"));
    writer.submit(REF, status(1));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(1);
    expect(failureLines()).toEqual([]);
    expect(writer.pendingCount).toBe(0);
    await writer.stop();
  });
});

describe("status writes for many pools at once (a cold start)", () => {
  /** A fake API where every patch waits until released, recording what was in flight. */
  function gatedApi() {
    const inFlight = new Set<string>();
    let most = 0;
    const written: Array<{ pool: string; generation: number | undefined }> = [];
    const waiting: Array<() => void> = [];
    const patchStatus = async (ref: PoolRef, s: KeyPoolStatus) => {
      const pool = `${ref.namespace}/${ref.name}`;
      expect(inFlight.has(pool)).toBe(false); // one pool's writes never overlap
      inFlight.add(pool);
      most = Math.max(most, inFlight.size);
      await new Promise<void>((resolve) => waiting.push(resolve));
      inFlight.delete(pool);
      written.push({ pool, generation: s.observedGeneration });
    };
    const releaseAll = async () => {
      while (waiting.length) {
        for (const resolve of waiting.splice(0)) resolve();
        await vi.advanceTimersByTimeAsync(0);
      }
    };
    return { patchStatus, written, releaseAll, most: () => most, waiting };
  }
  const pool = (i: number): PoolRef => ({ namespace: "ai", name: `p${i}` });

  it("keeps at most maxConcurrentWrites in flight and writes every pool once, in the order they fell due", async () => {
    const api = gatedApi();
    const { writer } = writerWith(() => undefined, { patchStatus: api.patchStatus, maxConcurrentWrites: 4 });
    for (let i = 0; i < 40; i++) writer.submit(pool(i), status(1));
    await vi.advanceTimersByTimeAsync(100);
    expect(writer.inFlightCount).toBe(4);
    expect(api.waiting).toHaveLength(4);
    await api.releaseAll();
    expect(api.most()).toBe(4);
    expect(api.written.map((w) => w.pool)).toEqual(Array.from({ length: 40 }, (_, i) => `ai/p${i}`));
    expect(writer.stats.writes).toBe(40);
    await writer.stop();
  });

  it("writes a status that changed while its pool waited its turn once, with the newest status", async () => {
    const api = gatedApi();
    const { writer } = writerWith(() => undefined, { patchStatus: api.patchStatus, maxConcurrentWrites: 1 });
    writer.submit(pool(0), status(1));
    writer.submit(pool(1), status(1));
    await vi.advanceTimersByTimeAsync(100); // p0 in flight, p1 queued behind it
    writer.submit(pool(1), status(2));
    writer.submit(pool(1), status(3));
    await api.releaseAll();
    expect(api.written).toEqual([
      { pool: "ai/p0", generation: 1 },
      { pool: "ai/p1", generation: 3 },
    ]);
    await writer.stop();
  });

  it("holds a pool's next status until its write in flight has landed, so the older never lands last", async () => {
    const api = gatedApi();
    const { writer } = writerWith(() => undefined, { patchStatus: api.patchStatus, maxConcurrentWrites: 8 });
    writer.submit(pool(0), status(1));
    await vi.advanceTimersByTimeAsync(100);
    writer.submit(pool(0), status(2));
    await vi.advanceTimersByTimeAsync(100); // due, but generation 1 is still in flight
    expect(api.waiting).toHaveLength(1);
    await api.releaseAll();
    expect(api.written.map((w) => w.generation)).toEqual([1, 2]);
    await writer.stop();
  });

  it("drops a queued status that went back to what is written, and flush waits for every write without bursting", async () => {
    const api = gatedApi();
    const { writer } = writerWith(() => undefined, { patchStatus: api.patchStatus, maxConcurrentWrites: 2 });
    writer.observe(pool(9), status(1));
    for (let i = 0; i < 10; i++) writer.submit(pool(i), status(2));
    await vi.advanceTimersByTimeAsync(100);
    writer.submit(pool(9), status(1)); // back to what the object says: nothing to write
    let flushed = false;
    const flushing = writer.flush().then(() => (flushed = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.inFlightCount).toBe(2);
    expect(flushed).toBe(false);
    await api.releaseAll();
    await flushing;
    expect(api.most()).toBe(2);
    expect(api.written.map((w) => w.pool)).toEqual(Array.from({ length: 9 }, (_, i) => `ai/p${i}`));
    await writer.stop();
  });
});

describe("a status equal to the object's", () => {
  it("is not written whatever the order of its keys (the API server sorts them)", async () => {
    const { writer, calls } = writerWith(() => undefined);
    const ours: KeyPoolStatus = {
      observedGeneration: 3,
      keys: { total: 2, usable: 2 },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KeysAvailable",
          message: "2 of 2",
          lastTransitionTime: "2026-12-05T00:00:00Z",
          observedGeneration: 3,
        },
      ],
    } as KeyPoolStatus;
    // The same status as a watch hands it over: every object's keys in sorted order.
    const fromApi = JSON.parse(canonicalJson(ours)) as KeyPoolStatus;
    expect(Object.keys(fromApi)).toEqual(["conditions", "keys", "observedGeneration"]);
    writer.observe(REF, fromApi);
    writer.submit(REF, ours);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toEqual([]);
    expect(writer.stats).toMatchObject({ writes: 0, skipped: 1 });
    await writer.stop();
  });
});
