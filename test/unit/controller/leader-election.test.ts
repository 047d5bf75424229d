import { ApiException, KubeConfig, type V1Lease } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  type ElectionRecord,
  JITTER_FACTOR,
  LeaderElector,
  LEADER_ELECTION_DEFAULTS,
  describeError,
  heldByOther,
  jitteredDelay,
  leaseDurationSeconds,
  recordOf,
  resolveTimings,
  sameRecord,
} from "../../../src/controller/leader-election.ts";
import { createLogger } from "../../../src/log.ts";

const record = (over: Partial<ElectionRecord> = {}): ElectionRecord => ({
  holderIdentity: "other",
  leaseDurationSeconds: 15,
  acquireTime: "2026-01-01T00:00:00.000000Z",
  renewTime: "2026-01-01T00:00:10.000000Z",
  leaseTransitions: 3,
  ...over,
});

describe("timings", () => {
  it("defaults to client-go's 15 s / 10 s / 2 s", () => {
    expect(resolveTimings({})).toEqual(LEADER_ELECTION_DEFAULTS);
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
    expect(() => resolveTimings(timings)).toThrow(message);
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

describe("error descriptions", () => {
  it.each([
    [
      "an API Status",
      new ApiException(403, "x", JSON.stringify({ reason: "Forbidden", message: "leases is forbidden" }), {}),
      "HTTP 403 Forbidden: leases is forbidden",
    ],
    ["a bodyless 401", new ApiException(401, "Unauthorized", undefined, {}), "HTTP 401 Unauthorized"],
    [
      "a network error with its cause",
      new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") }),
      "fetch failed: connect ECONNREFUSED",
    ],
  ])("names %s", (_name, err, text) => {
    expect(describeError(err)).toBe(text);
  });
});

describe("an elector that cannot reach the API server", () => {
  it("never throws, never leads, warns at most once per try, and stops cleanly", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "nowhere", server: "https://127.0.0.1:1", skipTLSVerify: true }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "c", cluster: "nowhere", user: "u" }],
      currentContext: "c",
    });
    const lines: Array<{ level: string; msg: string }> = [];
    const logger = createLogger({
      level: "info",
      destination: {
        write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }),
      },
    });
    const calls: string[] = [];
    const retryPeriodMs = 50;
    const elector = new LeaderElector({
      kc,
      namespace: "ns",
      name: "lease",
      identity: "me",
      leaseDurationMs: 400,
      renewDeadlineMs: 200,
      retryPeriodMs,
      logger,
      onStartedLeading: () => calls.push("started"),
      onStoppedLeading: () => calls.push("stopped"),
    });
    const startedAt = Date.now();
    elector.start();
    elector.start();
    await new Promise((r) => setTimeout(r, 600));
    await elector.stop();
    const elapsed = Date.now() - startedAt;
    await elector.stop();

    const warnings = lines.filter((l) => l.level === "warn");
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThanOrEqual(Math.floor(elapsed / retryPeriodMs) + 2);
    expect(warnings[0]?.msg).toBe("acquiring the lease failed");
    expect(elector.isLeader).toBe(false);
    expect(elector.leader).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
