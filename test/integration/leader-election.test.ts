/**
 * Leader election against the real API server: replicas in one process, each with its own
 * LeaderElector, and a sampler that checks every 50 ms that no two of them say they lead.
 */
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Lease,
} from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { type LeaderElectionOptions, LeaderElector } from "../../src/controller/leader-election.ts";
import { Operator } from "../../src/controller/operator.ts";
import { createLogger } from "../../src/log.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually, tokenKubeConfig } from "../support/kube.ts";

const kc = adminKubeConfig();
const leases = kc.makeApiClient(CoordinationV1Api);
const LEASE = "keypool-operator";

type Timings = Pick<LeaderElectionOptions, "leaseDurationMs" | "renewDeadlineMs" | "retryPeriodMs">;
const FAST = { leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 300 } satisfies Timings;

interface Happening {
  at: number;
  who: string;
  what: "started" | "stopped" | "new-leader";
  leader?: string;
}

interface LogLine {
  time: string;
  level: string;
  msg: string;
  identity?: string;
  reason?: string;
}

/** What the tests observed, printed at the end so take-over times can be read from the run. */
const observed: Record<string, string> = {};
afterAll(() => {
  for (const [what, value] of Object.entries(observed)) console.info(`[leader-election] ${what}: ${value}`);
});

/** A group of electors on one Lease, watched by a sampler for two leaders at once. */
class Election {
  readonly namespace: string;
  readonly happenings: Happening[] = [];
  readonly logs: LogLine[] = [];
  /** Samples at which more than one elector said it leads. */
  readonly overlaps: string[][] = [];
  samples = 0;
  readonly #electors = new Map<string, LeaderElector>();
  readonly #sampler: ReturnType<typeof setInterval>;
  readonly #logger = createLogger({
    level: "info",
    destination: { write: (line: string) => void this.logs.push(JSON.parse(line) as LogLine) },
  });

  constructor(namespace: string) {
    this.namespace = namespace;
    this.#sampler = setInterval(() => {
      this.samples += 1;
      const leading = this.leaders();
      if (leading.length > 1) this.overlaps.push(leading);
    }, 50);
  }

  static async create(prefix: string): Promise<Election> {
    return new Election(await createTestNamespace(kc, prefix));
  }

  start(identity: string, options: { kc?: KubeConfig; timings?: Timings } = {}): LeaderElector {
    const note = (what: Happening["what"], leader?: string) =>
      this.happenings.push({ at: Date.now(), who: identity, what, ...(leader ? { leader } : {}) });
    const elector = new LeaderElector({
      kc: options.kc ?? kc,
      namespace: this.namespace,
      name: LEASE,
      identity,
      ...(options.timings ?? FAST),
      logger: this.#logger,
      clock: { now: () => Date.now() },
      onStartedLeading: () => note("started"),
      onStoppedLeading: () => note("stopped"),
      onNewLeader: (leader) => note("new-leader", leader),
    });
    this.#electors.set(identity, elector);
    elector.start();
    return elector;
  }

  leaders(): string[] {
    return [...this.#electors].filter(([, e]) => e.isLeader).map(([id]) => id);
  }

  /** When `who` last did `what`. */
  last(who: string, what: Happening["what"]): Happening | undefined {
    return this.happenings.findLast((h) => h.who === who && h.what === what);
  }

  count(who: string, what: Happening["what"]): number {
    return this.happenings.filter((h) => h.who === who && h.what === what).length;
  }

  lease(): Promise<V1Lease> {
    return leases.readNamespacedLease({ name: LEASE, namespace: this.namespace });
  }

  /** The callbacks never overlap: between two "started" there is always a "stopped". */
  callbacksAlternate(): boolean {
    let leading: string | undefined;
    for (const h of this.happenings) {
      if (h.what === "started") {
        if (leading !== undefined) return false;
        leading = h.who;
      } else if (h.what === "stopped" && h.who === leading) {
        leading = undefined;
      }
    }
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#electors.values()].map((e) => e.stop()));
    clearInterval(this.#sampler);
  }
}

/** Starts "a", waits until it leads, then starts "b" and waits until b has seen a lead. */
async function aLeadsBFollows(
  election: Election,
  options: { kcA?: KubeConfig; timings?: Timings } = {},
): Promise<{ a: LeaderElector; b: LeaderElector }> {
  const a = election.start("a", { kc: options.kcA, timings: options.timings });
  await eventually(async () => a.isLeader);
  const b = election.start("b", { timings: options.timings });
  await eventually(async () => b.leader === "a");
  return { a, b };
}

describe("leader election with a Lease", () => {
  it("elects exactly one of two replicas, and the Lease names it", async () => {
    const election = await Election.create("le-one");
    try {
      election.start("a");
      election.start("b");
      const [leader] = await eventually(async () => {
        const leading = election.leaders();
        return leading.length === 1 && leading;
      });
      // A few renewals later it is still the only one.
      await new Promise((r) => setTimeout(r, 5 * FAST.retryPeriodMs));
      expect(election.leaders()).toEqual([leader]);

      const lease = await election.lease();
      expect(lease.spec?.holderIdentity).toBe(leader);
      expect(lease.spec?.leaseDurationSeconds).toBe(2);
      expect(lease.spec?.leaseTransitions).toBe(0);
      expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

      const follower = leader === "a" ? "b" : "a";
      await eventually(async () => election.last(follower, "new-leader")?.leader === leader);
      expect(election.count(leader as string, "started")).toBe(1);
      expect(election.count(follower, "started")).toBe(0);
      expect(election.logs).toContainEqual(
        expect.objectContaining({ level: "info", msg: "acquired the lease: leading", identity: leader }),
      );
    } finally {
      await election.close();
    }
    expect(election.samples).toBeGreaterThan(0);
    expect(election.overlaps).toEqual([]);
  });

  it("lets the other replica take over once a crashed leader's lease expires, and not before", async () => {
    const election = await Election.create("le-crash");
    try {
      const { a } = await aLeadsBFollows(election);
      const before = (await election.lease()).spec?.leaseTransitions ?? 0;

      // A crash: timers stop, the Lease is left as it is.
      const killedAt = Date.now();
      await a.stop({ release: false });
      const left = await election.lease();
      expect(left.spec?.holderIdentity).toBe("a");
      const lastRenewal = Date.parse(String(left.spec?.renewTime));

      await eventually(async () => election.leaders().includes("b"), 15_000);
      const tookOverAt = election.last("b", "started")?.at ?? Number.NaN;
      // b waited a whole leaseDuration after a's last renewal (same machine, same clock).
      expect(tookOverAt - lastRenewal).toBeGreaterThanOrEqual(FAST.leaseDurationMs);

      const lease = await election.lease();
      expect(lease.spec?.holderIdentity).toBe("b");
      expect(lease.spec?.leaseTransitions).toBe(before + 1);
      expect(election.last("b", "new-leader")?.leader).toBe("b");
      observed["take-over after a crash (leaseDuration 2000 ms)"] =
        `${tookOverAt - killedAt} ms after the kill, ${tookOverAt - lastRenewal} ms after the last renewal`;
    } finally {
      await election.close();
    }
    expect(election.overlaps).toEqual([]);
    expect(election.callbacksAlternate()).toBe(true);
  });

  it("hands over at once when the leader stops gracefully and releases the Lease", async () => {
    // A long lease: a take-over well before it ends can only come from the release.
    const timings = { leaseDurationMs: 10_000, renewDeadlineMs: 1500, retryPeriodMs: 300 };
    const election = await Election.create("le-release");
    try {
      const { a } = await aLeadsBFollows(election, { timings });
      const before = (await election.lease()).spec?.leaseTransitions ?? 0;

      const stoppedAt = Date.now();
      const stopping = a.stop();
      expect(a.isLeader).toBe(false); // at once, before the release is even written
      await stopping;
      expect(election.count("a", "stopped")).toBe(1);
      await a.stop(); // idempotent
      expect(election.count("a", "stopped")).toBe(1);

      await eventually(async () => election.leaders().includes("b"), timings.leaseDurationMs);
      const tookOverAt = election.last("b", "started")?.at ?? Number.NaN;
      expect(tookOverAt - stoppedAt).toBeLessThan(timings.leaseDurationMs);

      const lease = await election.lease();
      expect(lease.spec?.holderIdentity).toBe("b");
      expect(lease.spec?.leaseTransitions).toBe(before + 1);
      expect(election.logs).toContainEqual(
        expect.objectContaining({ msg: "released the lease", identity: "a" }),
      );
      observed["take-over after a graceful stop (leaseDuration 10000 ms)"] = `${tookOverAt - stoppedAt} ms`;
    } finally {
      await election.close();
    }
    expect(election.overlaps).toEqual([]);
  });

  it("makes a leader that loses API access stop leading within renewDeadline, then lets the other take over", async () => {
    const election = await Election.create("le-revoked");
    const namespace = election.namespace;
    const core = kc.makeApiClient(CoreV1Api);
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "elector" } } });
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "lease-elector" },
        // All that leader election needs.
        rules: [
          { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "elector-leases" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "lease-elector" },
        subjects: [{ kind: "ServiceAccount", name: "elector", namespace }],
      },
    });
    const token = (
      await core.createNamespacedServiceAccountToken({ namespace, name: "elector", body: { spec: {} } })
    ).status?.token as string;

    try {
      const { a } = await aLeadsBFollows(election, { kcA: tokenKubeConfig(token) });

      const revokedAt = Date.now();
      await rbac.deleteNamespacedRoleBinding({ namespace, name: "elector-leases" });

      // Its renewals now fail with 403; within renewDeadline of its last good one it stops leading.
      await eventually(async () => election.last("a", "stopped"), FAST.renewDeadlineMs + 3000, 20);
      const stoppedAt = election.last("a", "stopped")?.at ?? Number.NaN;
      expect(a.isLeader).toBe(false);
      expect(election.logs).toContainEqual(
        expect.objectContaining({
          level: "warn",
          msg: "renewing the lease failed",
          identity: "a",
          reason: expect.stringContaining("HTTP 403 Forbidden"),
        }),
      );
      expect(election.logs).toContainEqual(
        expect.objectContaining({
          msg: "stopped leading",
          identity: "a",
          reason: expect.stringContaining(`could not renew the lease within ${FAST.renewDeadlineMs} ms`),
        }),
      );

      await eventually(async () => election.leaders().includes("b"), 15_000);
      const tookOverAt = election.last("b", "started")?.at ?? Number.NaN;
      expect(stoppedAt).toBeLessThan(tookOverAt);
      expect((await election.lease()).spec?.holderIdentity).toBe("b");

      // a keeps trying as a candidate, warning at most once per try (tries are >= retryPeriod apart).
      await new Promise((r) => setTimeout(r, 4 * FAST.retryPeriodMs));
      const warnings = election.logs.filter(
        (l) => l.identity === "a" && l.level === "warn" && Date.parse(l.time) >= revokedAt,
      ).length;
      expect(warnings).toBeGreaterThan(1);
      expect(warnings).toBeLessThanOrEqual(Math.floor((Date.now() - revokedAt) / FAST.retryPeriodMs) + 1);
      observed["leader with revoked access"] =
        `stopped leading ${stoppedAt - revokedAt} ms after the revocation, taken over ${tookOverAt - revokedAt} ms after it`;
    } finally {
      await election.close();
    }
    expect(election.overlaps).toEqual([]);
    expect(election.callbacksAlternate()).toBe(true);
  });
});

describe("an operator that leads", () => {
  it("stops writing status the moment its lease is past the renew deadline, before any timer tells it", async () => {
    await installKeyPoolCrd();
    const namespace = await createTestNamespace(kc, "le-status");
    // The operator watches another (empty) namespace: only this test writes the pool's status.
    const watched = await createTestNamespace(kc, "le-status-watched");
    const pools = poolApi(kc);
    await pools.createPool(namespace, "gated", {
      provider: "openai",
      keys: [{ secretRef: { name: "none" } }],
    });
    const timings = { leaseDurationMs: 1500, renewDeadlineMs: 600, retryPeriodMs: 200 };
    const operator = new Operator({
      kc,
      logger: createLogger({ level: "silent" }),
      clock: { now: () => Date.now() },
      namespaces: [watched],
      leaderElection: { enabled: true, namespace, name: LEASE, ...timings },
      probes: false,
    });
    const ref = { namespace, name: "gated" };
    try {
      await operator.start();
      await eventually(async () => operator.isLeader);
      operator.statusWriter.submit(ref, { observedGeneration: 1 });
      await operator.statusWriter.flush();
      expect((await pools.readPool(namespace, "gated")).status?.observedGeneration).toBe(1);

      // The event loop stalls (a long GC, a starved core) past the renew deadline: no renewal, and
      // no timer has run to tell the operator. Another replica may lead by now: no write may go out.
      const stalledAt = Date.now();
      while (Date.now() - stalledAt <= timings.renewDeadlineMs + 20) {
        // busy: nothing else runs
      }
      operator.statusWriter.submit(ref, { observedGeneration: 2 });
      await operator.statusWriter.flush();
      expect((await pools.readPool(namespace, "gated")).status?.observedGeneration).toBe(1);
    } finally {
      await operator.stop();
    }
  });
});
