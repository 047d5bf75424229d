import { ApiException, type V1Lease } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseOperatorConfig } from "../../../src/config.ts";
import {
  type ElectionRecord,
  JITTER_FACTOR,
  type LeaseApi,
  LeaderElector,
  heldByOther,
  jitteredDelay,
  leaseDurationSeconds,
  recordOf,
  checkTimings,
  sameRecord,
} from "../../../src/controller/leader-election.ts";
import { createLogger } from "../../../src/log.ts";
import { ManualClock } from "../../../src/pool/clock.ts";

const record = (over: Partial<ElectionRecord> = {}): ElectionRecord => ({
  holderIdentity: "other",
  leaseDurationSeconds: 15,
  acquireTime: "2026-01-01T00:00:00.000000Z",
  renewTime: "2026-01-01T00:00:10.000000Z",
  leaseTransitions: 3,
  ...over,
});

describe("timings", () => {
  // client-go's documented defaults (tools/leaderelection, and kube-controller-manager's
  // --leader-elect-lease-duration / -renew-deadline / -retry-period): 15 s, 10 s, 2 s.
  const CLIENT_GO = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

  it("come from the operator's --leader-election-* flags, which default to client-go's 15 s / 10 s / 2 s", () => {
    const config = parseOperatorConfig([], {});
    const timings = {
      leaseDurationMs: config.leaderElectionLeaseDuration,
      renewDeadlineMs: config.leaderElectionRenewDeadline,
      retryPeriodMs: config.leaderElectionRetryPeriod,
    };
    expect(timings).toEqual(CLIENT_GO);
    expect(checkTimings(timings)).toEqual(CLIENT_GO);
  });

  it.each([
    [
      "a lease no longer than the renew deadline",
      { leaseDurationMs: 10_000 },
      /leaseDurationMs must be greater/,
    ],
    [
      "a renew deadline within one jittered retry period",
      { renewDeadlineMs: 2_400 },
      /renewDeadlineMs must be greater than retryPeriodMs/,
    ],
    ["a zero retry period", { retryPeriodMs: 0 }, /retryPeriodMs must be a positive/],
    [
      "a duration that is not a number",
      { leaseDurationMs: Number.NaN },
      /leaseDurationMs must be a positive/,
    ],
  ])("rejects %s", (_name, timings, message) => {
    expect(() => checkTimings({ ...CLIENT_GO, ...timings })).toThrow(message);
  });

  it.each([
    [2000, 2],
    [2500, 3],
    [300, 1],
    [15_000, 15],
  ])("writes a %d ms lease as %d s, rounding up so others never wait less", (ms, seconds) => {
    expect(leaseDurationSeconds(ms)).toBe(seconds);
  });

  it("jitters a candidate's retry period by up to JITTER_FACTOR of it", () => {
    expect(jitteredDelay(1000, () => 0)).toBe(1000);
    expect(jitteredDelay(1000, () => 0.999)).toBeCloseTo(1000 + 0.999 * JITTER_FACTOR * 1000);
  });
});

describe("whether a candidate must wait", () => {
  const observedAt = 1_000_000;
  it.each([
    ["a lease held by another and changed recently", record(), observedAt + 14_999, true],
    ["a lease held by another and unchanged for its duration", record(), observedAt + 15_000, false],
    ["a released lease (no holder)", record({ holderIdentity: "" }), observedAt, false],
    ["a lease it holds itself", record({ holderIdentity: "me" }), observedAt, false],
    [
      "a lease whose holder wrote no duration, by the candidate's own",
      record({ leaseDurationSeconds: 0 }),
      observedAt + 1_999,
      true,
    ],
  ])("%s", (_name, rec, now, waits) => {
    expect(heldByOther(rec, "me", observedAt, now, 2000)).toBe(waits);
  });

  it("ignores the record's timestamps: a renewTime far in the past is not an expiry", () => {
    const stale = record({ renewTime: "2000-01-01T00:00:00.000000Z" });
    expect(heldByOther(stale, "me", observedAt, observedAt + 1, 2000)).toBe(true);
  });
});

describe("records", () => {
  it("reads MicroTime fields as the strings the API server sent", () => {
    const lease = {
      spec: { holderIdentity: "a", renewTime: "2026-01-01T00:00:00.123456Z", leaseTransitions: 2 },
    } as unknown as V1Lease;
    expect(recordOf(lease)).toEqual({
      holderIdentity: "a",
      leaseDurationSeconds: 0,
      acquireTime: "",
      renewTime: "2026-01-01T00:00:00.123456Z",
      leaseTransitions: 2,
    });
  });

  it("treats any change of the record as a sign of life", () => {
    expect(sameRecord(record(), record())).toBe(true);
    expect(sameRecord(record(), record({ renewTime: "2026-01-01T00:00:12.000000Z" }))).toBe(false);
    expect(sameRecord(record(), record({ leaseTransitions: 4 }))).toBe(false);
  });
});

/**
 * The Lease API in memory, like the API server: resourceVersions, 404 on a missing Lease, 409 on a
 * stale write. `down` makes every call fail as a refused connection does.
 */
class FakeLeaseApi implements LeaseApi {
  lease: V1Lease | undefined;
  down = false;
  calls = 0;
  #version = 0;

  async readNamespacedLease(): Promise<V1Lease> {
    this.#call();
    if (!this.lease) throw new ApiException(404, "NotFound", JSON.stringify({ reason: "NotFound" }), {});
    return structuredClone(this.lease);
  }

  async createNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.#call();
    if (this.lease) throw new ApiException(409, "Conflict", JSON.stringify({ reason: "AlreadyExists" }), {});
    return this.#store(param.body);
  }

  async replaceNamespacedLease(param: { body: V1Lease }): Promise<V1Lease> {
    this.#call();
    if (param.body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion)
      throw new ApiException(409, "Conflict", JSON.stringify({ reason: "Conflict" }), {});
    return this.#store(param.body);
  }

  #call() {
    this.calls++;
    if (this.down)
      throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:6443") });
  }

  #store(body: V1Lease): V1Lease {
    // MicroTimes travel as strings, as they do over the wire.
    this.lease = JSON.parse(JSON.stringify(body)) as V1Lease;
    this.lease.metadata = { ...this.lease.metadata, resourceVersion: String(++this.#version) };
    return structuredClone(this.lease);
  }
}

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const TIMINGS = { leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 200 };

/** An elector on a fake Lease API and a manual clock; timers are vitest's fake ones. */
function electorOnFakes(options: { api?: FakeLeaseApi; timings?: Partial<typeof TIMINGS> } = {}) {
  const api = options.api ?? new FakeLeaseApi();
  const clock = new ManualClock(T0);
  const lines: Array<{ level: string; msg: string }> = [];
  const logger = createLogger({
    level: "info",
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }),
    },
  });
  const calls: string[] = [];
  const elector = new LeaderElector({
    api,
    namespace: "ns",
    name: "lease",
    identity: "me",
    ...TIMINGS,
    ...options.timings,
    logger,
    clock,
    onStartedLeading: () => calls.push("started"),
    onStoppedLeading: () => calls.push("stopped"),
  });
  /** Moves the clock and the timers together, as real time does. */
  const elapse = async (ms: number) => {
    for (let left = ms; left > 0; left -= 10) {
      clock.advance(Math.min(10, left));
      await vi.advanceTimersByTimeAsync(Math.min(10, left));
    }
  };
  return { api, clock, elector, lines, calls, elapse };
}

describe("the elector on a fake Lease API and fake time", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([
    { name: "holds the lease right after acquiring it", after: 0, holds: true },
    {
      name: "still holds it 1 ms before the renew deadline",
      after: TIMINGS.renewDeadlineMs - 1,
      holds: true,
    },
    { name: "no longer holds it at the renew deadline", after: TIMINGS.renewDeadlineMs, holds: false },
    { name: "no longer holds it long after", after: 60_000, holds: false },
  ])("$name, judged by the time asked about", async ({ after, holds }) => {
    const { elector } = electorOnFakes();
    elector.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(elector.holdsLease()).toBe(true);
    expect(elector.holdsLease(T0 + after)).toBe(holds);
    await elector.stop();
  });

  it("stops holding the lease the moment its clock passes the renew deadline, before any timer or callback runs", async () => {
    const { api, clock, elector, calls } = electorOnFakes();
    elector.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual(["started"]);
    // The event loop stalls (GC, a busy core): time passes, no timer has run, no renewal went out.
    api.down = true;
    clock.advance(TIMINGS.renewDeadlineMs);
    expect(elector.holdsLease()).toBe(false);
    expect(elector.isLeader).toBe(false);
    expect(calls).toEqual(["started"]); // onStoppedLeading comes later, when its timer gets to run
    await vi.advanceTimersByTimeAsync(TIMINGS.renewDeadlineMs);
    expect(calls).toEqual(["started", "stopped"]);
    await elector.stop();
  });

  it("keeps holding the lease while renewals succeed, each pushing the deadline out", async () => {
    const { elector, clock, elapse, calls } = electorOnFakes();
    elector.start();
    await vi.advanceTimersByTimeAsync(0);
    await elapse(5 * TIMINGS.renewDeadlineMs);
    expect(elector.holdsLease()).toBe(true);
    expect(elector.holdsLease(clock.now() + TIMINGS.renewDeadlineMs)).toBe(false);
    expect(calls).toEqual(["started"]);
    await elector.stop();
  });

  it("stops holding the lease renewDeadline after its last successful renewal when the API server goes away", async () => {
    const { api, elector, clock, elapse } = electorOnFakes();
    elector.start();
    await vi.advanceTimersByTimeAsync(0);
    await elapse(TIMINGS.retryPeriodMs); // one renewal, sent at T0 + retryPeriod
    expect(api.calls).toBe(3); // read (404) and create; then one renewal: the fast-path replace
    const lastRenewal = T0 + TIMINGS.retryPeriodMs;
    api.down = true;
    await elapse(lastRenewal + TIMINGS.renewDeadlineMs - 1 - clock.now());
    expect(elector.holdsLease()).toBe(true);
    await elapse(1);
    expect(elector.holdsLease()).toBe(false);
    await elector.stop();
  });
});

describe("an elector that cannot reach the API server", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("never throws, never leads, warns at most once per try, and stops cleanly", async () => {
    const api = new FakeLeaseApi();
    api.down = true;
    const { elector, lines, calls, elapse } = electorOnFakes({
      api,
      timings: { leaseDurationMs: 400, renewDeadlineMs: 200, retryPeriodMs: 50 },
    });
    elector.start();
    elector.start();
    await elapse(600);
    await elector.stop();
    await elector.stop();

    const warnings = lines.filter((l) => l.level === "warn");
    expect(warnings.length).toBeGreaterThan(0);
    // Every try is one call, and warns at most once; candidates wait at least retryPeriod between tries.
    expect(warnings.length).toBeLessThanOrEqual(api.calls);
    expect(api.calls).toBeLessThanOrEqual(Math.floor(600 / 50) + 1);
    expect(warnings[0]?.msg).toBe("acquiring the lease failed");
    expect(elector.isLeader).toBe(false);
    expect(elector.holdsLease()).toBe(false);
    expect(elector.leader).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
