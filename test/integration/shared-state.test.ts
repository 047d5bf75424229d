/**
 * Several `keypool operator` replicas sharing key state on a real Redis (--state-store redis://),
 * against the real control plane, leader election on:
 * - limits are exact across replicas (a key's requestsPerMinute, a quota group's, tokensPerMinute
 *   through the proxy);
 * - a report made on one replica stops the others at once, and the leader's status shows it,
 *   also when a follower got the report;
 * - a lease opened on one replica can be reported on another; LeastLoaded sees every replica's
 *   in-flight calls;
 * - a cooldown survives kill -9 of every replica;
 * - no key material ever reaches Redis;
 * - store outages: `open` keeps serving (metric, condition, Warning Event, resync on return),
 *   `closed` answers 503 state_store_unavailable until the store is back.
 * Timings are printed; only the propagation bound (< 1 s) is asserted.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, type KeyPoolObject, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import {
  FAST_LEADER_ELECTION,
  localOperatorArgs,
  type OperatorProcess,
  startOperator,
} from "../support/operator-process.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import {
  type Dispensed,
  dispenseAt,
  type FixedUsageUpstream,
  metricValue,
  poolViewAt,
  reportAt,
  sleep,
  startFixedUsageUpstream,
} from "../support/shared-state.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const PREFIX = "keypool:";

/** Every raw key any pool of this file holds: none may show up in Redis. */
const RAW_KEYS: string[] = [];

/** A Secret `<pool>-keys` with `keys` (entry k0, k1, ...) and the KeyPool `pool` using it. */
async function createPool(
  ns: string,
  pool: string,
  keys: string[],
  spec: Record<string, unknown>,
  keySource: Record<string, unknown> = {},
): Promise<string[]> {
  RAW_KEYS.push(...keys);
  const secret = `${pool}-keys`;
  await api.putSecret(ns, secret, Object.fromEntries(keys.map((k, i) => [`k${i}`, k])));
  await api.createPool(ns, pool, {
    provider: "openai",
    keys: [{ secretRef: { name: secret }, ...keySource }],
    ...spec,
  });
  return keys.map((k) => keyId(k));
}

interface Replicas {
  ops: OperatorProcess[];
  urls: string[];
  probes: string[];
}

const started: OperatorProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((o) => o.kill()));
});

/** `n` operators on `redis`, electing a leader in `ns`, each serving `pools` (name → key count). */
async function startReplicas(
  ns: string,
  redis: RedisServer,
  n: number,
  pools: Record<string, number>,
  extra: string[] = [],
): Promise<Replicas> {
  const ops = Array.from({ length: n }, () => {
    const op = startOperator([
      ...localOperatorArgs(inject("kubeconfig"), ns),
      ...FAST_LEADER_ELECTION,
      ...["--leader-election-namespace", ns],
      ...["--state-store", redis.url],
      ...extra,
    ]);
    started.push(op);
    return op;
  });
  const urls = await Promise.all(ops.map((o) => o.dispenserUrl()));
  const probes = await Promise.all(ops.map((o) => o.probesUrl()));
  await Promise.all(ops.map((o) => o.waitForLog((l) => l.msg === "state store connected", 15_000)));
  for (const url of urls) {
    for (const [pool, total] of Object.entries(pools)) {
      await eventually(async () => (await poolViewAt(url, ns, pool)).length === total, 30_000, 100);
    }
  }
  return { ops, urls, probes };
}

/** Index of the one replica whose /metrics says keypool_leader 1. */
async function leaderIndex(r: Replicas): Promise<number> {
  return eventually(
    async () => {
      const flags = await Promise.all(r.probes.map((p) => metricValue(p, "keypool_leader")));
      const leaders = flags.flatMap((f, i) => (f === 1 ? [i] : []));
      return leaders.length === 1 ? (leaders[0] as number) + 1 : undefined;
    },
    30_000,
    100,
  ).then((i) => i - 1);
}

/** `total` dispenses, round-robin over `urls`, `concurrency` at a time; in the order they were sent. */
async function burst(urls: string[], ns: string, pool: string, total: number, concurrency: number) {
  const results: Array<Dispensed & { replica: number }> = new Array(total);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        const replica = i % urls.length;
        results[i] = { ...(await dispenseAt(urls[replica] as string, ns, pool)), replica };
      }
    }),
  );
  return results;
}

/** Dispenses on `url` and closes the lease there (success); the key id handed out. */
async function useOnce(url: string, ns: string, pool: string): Promise<Dispensed> {
  const d = await dispenseAt(url, ns, pool);
  if (d.status === 200) {
    const closed = await reportAt(url, ns, pool, { leaseId: d.leaseId, outcome: "success" });
    expect(closed.status, JSON.stringify(closed.json)).toBe(200);
  }
  return d;
}

const keyStatus = (pool: KeyPoolObject, id: string) => pool.status?.keyStatuses?.find((k) => k.id === id);

const refusalsOk = (refused: Dispensed[], code: string) =>
  refused.filter((d) => d.status !== 503 || d.code !== code || !(Number(d.retryAfter) > 0));

beforeAll(async () => {
  await installKeyPoolCrd();
});

describe("three operator replicas on one Redis", () => {
  let ns: string;
  let redis: RedisServer;
  let upstream: FixedUsageUpstream;
  let r: Replicas;
  const ids: Record<string, string[]> = {};
  const POOLS = {
    rpm: 1,
    group: 2,
    tokens: 1,
    "propagate-leader": 2,
    "propagate-follower": 2,
    leases: 2,
    "leases-drop": 2,
    restart: 2,
  };

  beforeAll(async () => {
    ns = await createTestNamespace(kc, "shared-state");
    redis = await startRedis();
    upstream = await startFixedUsageUpstream(30);
    ids.rpm = await createPool(
      ns,
      "rpm",
      ["sk-test-shared-rpm-only-key-000001"],
      { strategy: "RoundRobin" },
      { limits: { requestsPerMinute: 20 } },
    );
    ids.group = await createPool(
      ns,
      "group",
      ["sk-test-shared-group-key-one-00002", "sk-test-shared-group-key-two-00003"],
      { strategy: "RoundRobin", quotaGroups: [{ name: "acct", limits: { requestsPerMinute: 20 } }] },
      { quotaGroup: "acct" },
    );
    ids.tokens = await createPool(
      ns,
      "tokens",
      ["sk-test-shared-tokens-key-0000004"],
      { baseURL: upstream.url, proxy: { maxWait: "0s" } },
      { limits: { tokensPerMinute: 100 } },
    );
    ids["propagate-leader"] = await createPool(
      ns,
      "propagate-leader",
      ["sk-test-shared-prop-leader-a-0005", "sk-test-shared-prop-leader-b-0006"],
      { strategy: "RoundRobin" },
    );
    ids["propagate-follower"] = await createPool(
      ns,
      "propagate-follower",
      ["sk-test-shared-prop-follow-a-0007", "sk-test-shared-prop-follow-b-0008"],
      { strategy: "RoundRobin" },
    );
    ids.leases = await createPool(
      ns,
      "leases",
      ["sk-test-shared-least-loaded-a-0009", "sk-test-shared-least-loaded-b-0010"],
      { strategy: "LeastLoaded" },
    );
    ids["leases-drop"] = await createPool(
      ns,
      "leases-drop",
      ["sk-test-shared-lease-drop-a-00011", "sk-test-shared-lease-drop-b-00012"],
      { strategy: "LeastLoaded" },
    );
    ids.restart = await createPool(
      ns,
      "restart",
      ["sk-test-shared-restart-a-0000013", "sk-test-shared-restart-b-0000014"],
      { strategy: "RoundRobin" },
    );
    const t = performance.now();
    r = await startReplicas(ns, redis, 3, POOLS);
    console.log(`three replicas serving every pool after ${Math.round(performance.now() - t)} ms`);
  }, 180_000);

  afterAll(async () => {
    await Promise.all((r?.ops ?? []).map((o) => o.stop()));
    await upstream?.close();
    await redis?.stop();
  });

  it("a key's requestsPerMinute is exact across replicas: 300 dispenses over three replicas, exactly 20 succeed", async () => {
    const t = performance.now();
    const results = await burst(r.urls, ns, "rpm", 300, 10);
    const ms = Math.round(performance.now() - t);
    const ok = results.filter((d) => d.status === 200);
    const perReplica = r.urls.map((_, i) => ok.filter((d) => d.replica === i).length);
    console.log(`rpm 20: 300 dispenses in ${ms} ms; 200s per replica ${perReplica.join("/")}`);
    expect(ok.length).toBe(20);
    const refused = results.filter((d) => d.status !== 200);
    expect(refused.length).toBe(280);
    expect(refusalsOk(refused, "no_usable_key").slice(0, 3)).toEqual([]);
  });

  it("a quota group's requestsPerMinute is exact across replicas and keys: exactly 20 of 300 succeed", async () => {
    const t = performance.now();
    const results = await burst(r.urls, ns, "group", 300, 10);
    const ms = Math.round(performance.now() - t);
    const ok = results.filter((d) => d.status === 200);
    const perKey = (ids.group ?? []).map((id) => ok.filter((d) => d.keyId === id).length);
    console.log(`group rpm 20: 300 dispenses in ${ms} ms; 200s per key ${perKey.join("/")}`);
    expect(ok.length).toBe(20);
    expect(
      refusalsOk(
        results.filter((d) => d.status !== 200),
        "no_usable_key",
      ).slice(0, 3),
    ).toEqual([]);
  });

  it("tokensPerMinute counts the tokens proxied on every replica: 30 tokens a call, limit 100, exactly 4 calls pass", async () => {
    const answers: Array<{ status: number; code: string | null; replica: number }> = [];
    for (let i = 0; i < 12; i++) {
      const replica = i % r.urls.length;
      const res = await fetch(`${r.urls[replica]}/proxy/${ns}/tokens/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-keypool-max-wait": "0" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }),
      });
      await res.arrayBuffer();
      answers.push({ status: res.status, code: res.headers.get("x-keypool-error"), replica });
    }
    console.log(`tokens: ${answers.map((a) => `${a.status}${a.code ? `/${a.code}` : ""}`).join(" ")}`);
    expect(answers.filter((a) => a.status === 200).length).toBe(4);
    expect(upstream.calls).toBe(4);
    // The first four pass (0, 30, 60, 90 tokens used before each < 100); every later one is refused.
    expect(answers.slice(0, 4).every((a) => a.status === 200)).toBe(true);
    const refusals = answers.slice(4);
    expect(
      refusals.filter(
        (a) =>
          !(
            (a.code === "rate_limited" && a.status === 429) ||
            (a.code === "no_usable_key" && a.status === 503)
          ),
      ),
    ).toEqual([]);
  });

  /**
   * Dispenses key K on `reporter` and reports its lease there as a 429 (retry-after 60); measures
   * until the other replicas no longer hand K out, then until the leader's status shows it.
   */
  async function propagation(pool: string, reporter: number, leader: number) {
    const others = r.urls.map((_, i) => i).filter((i) => i !== reporter);
    const at = r.urls[reporter] as string;
    const first = await dispenseAt(at, ns, pool);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const k = first.keyId as string;
    const reported = await reportAt(at, ns, pool, {
      leaseId: first.leaseId,
      statusCode: 429,
      headers: { "retry-after": "60" },
    });
    const t0 = performance.now();
    const reportedAt = Date.now();
    expect(reported.status, JSON.stringify(reported.json)).toBe(200);
    expect(reported.json.state).toBe("RateLimited");

    // Rounds of two dispenses on each other replica (RoundRobin over two keys: a usable K would
    // come up in every round), until five rounds in a row were without K.
    let handedOutAfter = 0;
    let propagatedMs: number | undefined;
    let clean = 0;
    const deadline = t0 + 10_000;
    while (clean < 5 && performance.now() < deadline) {
      const round = await Promise.all(
        others.map(async (i) => [
          await useOnce(r.urls[i] as string, ns, pool),
          await useOnce(r.urls[i] as string, ns, pool),
        ]),
      );
      const flat = round.flat();
      expect(flat.filter((d) => d.status !== 200).map((d) => d.body)).toEqual([]);
      const withK = flat.filter((d) => d.keyId === k).length;
      handedOutAfter += withK;
      if (withK) {
        clean = 0;
        propagatedMs = undefined;
      } else {
        clean++;
        propagatedMs ??= performance.now() - t0;
      }
    }
    expect(clean, "the other replicas stopped handing out the rate-limited key").toBe(5);
    const ms = Math.round(propagatedMs ?? Number.NaN);
    console.log(
      `${pool}: report on replica ${reporter} (leader ${leader}); the others stopped handing out ` +
        `the key within ${ms} ms (end of the first round without it); handed out after the report: ${handedOutAfter}`,
    );
    expect(ms).toBeLessThan(1_000);
    expect(handedOutAfter, "a reservation refuses a key whose stored state is unusable").toBe(0);

    const shown = await api.waitForPool(
      ns,
      pool,
      (p) => keyStatus(p, k)?.state === "RateLimited" && p,
      5_000,
    );
    console.log(
      `${pool}: the leader's status shows the key RateLimited ${Date.now() - reportedAt} ms after the report`,
    );
    const until = Date.parse(keyStatus(shown, k)?.until ?? "");
    expect(Math.abs(until - (reportedAt + 60_000))).toBeLessThan(2_000);
  }

  it("a 429 reported on the leader stops the other replicas at once and is in the status", async () => {
    await propagation("propagate-leader", await leaderIndex(r), await leaderIndex(r));
  });

  it("a 429 reported on a follower stops the other replicas at once and the leader's status shows it", async () => {
    const leader = await leaderIndex(r);
    await propagation("propagate-follower", (leader + 1) % 3, leader);
  });

  it("a cooldown survives kill -9 of every replica: new replicas on the same Redis keep refusing the key, and the status keeps its deadline", async () => {
    const pool = "restart";
    const first = await dispenseAt(r.urls[0] as string, ns, pool);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const k = first.keyId as string;
    const other = (ids.restart ?? []).find((id) => id !== k) as string;
    const reported = await reportAt(r.urls[0] as string, ns, pool, {
      leaseId: first.leaseId,
      statusCode: 429,
      headers: { "retry-after": "60" },
    });
    expect(reported.json.state).toBe("RateLimited");
    const before = await api.waitForPool(
      ns,
      pool,
      (p) => keyStatus(p, k)?.state === "RateLimited" && p,
      5_000,
    );
    const deadline = Date.parse(keyStatus(before, k)?.until ?? "");
    const stored = JSON.parse(String(await redis.command("GET", `${PREFIX}{${ns}/${pool}}:s:${k}`))) as {
      state: string;
      untilMs: number;
    };
    console.log(
      `restart: status until ${new Date(deadline).toISOString()}, Redis holds ${stored.state} until ${new Date(stored.untilMs).toISOString()}`,
    );
    expect(stored.state).toBe("RateLimited");

    await Promise.all(r.ops.map((o) => o.kill()));
    // The status must not be where the new replicas learn it from: only Redis remembers.
    await api.patchPoolStatus(ns, pool, { keyStatuses: null } as unknown as Parameters<
      typeof api.patchPoolStatus
    >[2]);
    expect((await api.readPool(ns, pool)).status?.keyStatuses).toBeUndefined();

    const t = performance.now();
    r = await startReplicas(ns, redis, 3, POOLS);
    console.log(`restart: three new replicas serving after ${Math.round(performance.now() - t)} ms`);
    const handedOut: string[] = [];
    for (let i = 0; i < 12; i++) {
      const d = await useOnce(r.urls[i % 3] as string, ns, pool);
      expect(d.status === 200 || d.code === "no_usable_key", JSON.stringify(d.body)).toBe(true);
      if (d.keyId) handedOut.push(d.keyId);
    }
    expect(handedOut.filter((id) => id === k)).toEqual([]);
    expect(handedOut.length, "the other key is still handed out").toBeGreaterThan(0);
    expect(new Set(handedOut)).toEqual(new Set([other]));
    const views = await Promise.all(
      r.urls.map(async (url) => (await poolViewAt(url, ns, pool)).find((v) => v.id === k)),
    );
    console.log(
      `restart: the new replicas show the key as ${views.map((v) => `${v?.state}${v?.until ? ` until ${v.until}` : ""}`).join(" / ")}; ` +
        `Redis holds ${String(await redis.command("GET", `${PREFIX}{${ns}/${pool}}:s:${k}`))}`,
    );
    const after = await api.waitForPool(
      ns,
      pool,
      (p) => keyStatus(p, k)?.state === "RateLimited" && p,
      15_000,
    );
    const untilAfter = Date.parse(keyStatus(after, k)?.until ?? "");
    console.log(`restart: new leader's status: RateLimited until ${keyStatus(after, k)?.until}`);
    expect(Math.abs(untilAfter - deadline)).toBeLessThanOrEqual(1_000);
  }, 120_000);

  it("a lease opened on one replica is reported on another, and a third sees the key's in-flight count drop", async () => {
    const [a, b, c] = r.urls as [string, string, string];
    const pool = "leases-drop";
    const taken = await dispenseAt(a, ns, pool);
    expect(taken.status).toBe(200);
    expect(taken.leaseId).toMatch(/^[^.]+\.[^.]+\.[0-9a-f]{8}$/);
    const k = taken.keyId as string;
    // C learns other replicas' leases when it picks (LeastLoaded): one dispense there, closed.
    const onC = await useOnce(c, ns, pool);
    expect(onC.keyId, "C sees A's lease and picks the other key").not.toBe(k);
    const inFlightOnC = async () => (await poolViewAt(c, ns, pool)).find((v) => v.id === k)?.inFlight;
    expect(await inFlightOnC()).toBe(1);

    const reported = await reportAt(b, ns, pool, { leaseId: taken.leaseId, outcome: "success" });
    expect(reported.status, JSON.stringify(reported.json)).toBe(200);
    expect(reported.json).toMatchObject({ keyId: k });
    // A's own view: the lease was closed on B.
    await eventually(
      async () => (await poolViewAt(a, ns, pool)).find((v) => v.id === k)?.inFlight === 0,
      3_000,
      50,
    );
    // C's view, without C dispensing again.
    const t = performance.now();
    let seen: number | undefined;
    await eventually(
      async () => {
        seen = await inFlightOnC();
        return seen === 0;
      },
      3_000,
      50,
    ).catch(() => undefined);
    console.log(
      `leases-drop: C's GET shows inFlight ${seen} for the key ${Math.round(performance.now() - t)} ms after the report on B`,
    );
    // What C shows after it picks once more (its in-flight counts are fetched before a pick).
    await useOnce(c, ns, pool);
    console.log(`leases-drop: after one more dispense on C, C's GET shows inFlight ${await inFlightOnC()}`);
    expect(seen, "C's GET shows the key's in-flight count drop without C dispensing").toBe(0);
  });

  it("LeastLoaded sees every replica's in-flight calls: with a lease open on one replica, another hands out the other key", async () => {
    const pool = "leases";
    const pairs: Array<[number, number]> = [
      [0, 2],
      [1, 0],
      [2, 1],
      [0, 1],
      [1, 2],
      [2, 0],
    ];
    for (const [holder, picker] of pairs) {
      const held = await dispenseAt(r.urls[holder] as string, ns, pool);
      expect(held.status).toBe(200);
      const next = await dispenseAt(r.urls[picker] as string, ns, pool);
      expect(next.status).toBe(200);
      expect(next.keyId, `replica ${picker} picked while replica ${holder} holds ${held.keyId}`).not.toBe(
        held.keyId,
      );
      // Close both leases, each on the other replica.
      for (const [at, leaseId] of [
        [picker, held.leaseId],
        [holder, next.leaseId],
      ] as const) {
        const closed = await reportAt(r.urls[at] as string, ns, pool, { leaseId, outcome: "success" });
        expect(closed.status, JSON.stringify(closed.json)).toBe(200);
      }
    }
  });

  it("times stay right after LeastLoaded picks: a 429 (retry-after 60) is stored and shown as ending in 60 s", async () => {
    const pool = "leases";
    // Picks with leases open on every replica (each pick fetches the in-flight counts).
    const open: Array<[number, string]> = [];
    for (let i = 0; i < 30; i++) {
      const d = await dispenseAt(r.urls[i % 3] as string, ns, pool);
      expect(d.status).toBe(200);
      open.push([i % 3, d.leaseId as string]);
    }
    const [at, leaseId] = open.pop() as [number, string];
    const reportedAt = Date.now();
    const reported = await reportAt(r.urls[at] as string, ns, pool, {
      leaseId,
      statusCode: 429,
      headers: { "retry-after": "60" },
    });
    expect(reported.status, JSON.stringify(reported.json)).toBe(200);
    const id = reported.json.keyId as string;
    const raw = String(await redis.command("GET", `${PREFIX}{${ns}/${pool}}:s:${id}`));
    const views = await Promise.all(
      r.urls.map(async (url) => (await poolViewAt(url, ns, pool)).find((v) => v.id === id)),
    );
    console.log(
      `leases: 429 at ${new Date(reportedAt).toISOString()}; Redis holds ${raw}; ` +
        `the replicas show ${views.map((v) => `${v?.state} until ${v?.until}`).join(" / ")}`,
    );
    const stored = JSON.parse(raw) as { sinceMs: number; untilMs: number } | null;
    expect(Math.abs((stored?.sinceMs ?? 0) - reportedAt)).toBeLessThan(2_000);
    expect(Math.abs((stored?.untilMs ?? 0) - (reportedAt + 60_000))).toBeLessThan(2_000);
    for (const v of views) {
      expect(v?.state).toBe("RateLimited");
      expect(Math.abs(Date.parse(v?.until ?? "") - (reportedAt + 60_000))).toBeLessThan(2_000);
    }
    for (const [replica, lease] of open) {
      await reportAt(r.urls[replica] as string, ns, pool, { leaseId: lease, outcome: "success" });
    }
  });

  it("no key material is in Redis: no key name or value holds any raw key", async () => {
    const dump = await redis.dump();
    console.log(
      `Redis holds ${dump.length} keys, e.g. ${dump
        .slice(0, 6)
        .map((d) => d.key)
        .join(", ")}`,
    );
    expect(dump.length).toBeGreaterThan(0);
    const leaks = dump.flatMap((entry) =>
      RAW_KEYS.filter((raw) => entry.key.includes(raw) || entry.value.includes(raw)).map(
        (raw) => `${entry.key} holds ${raw.slice(0, 16)}...`,
      ),
    );
    expect(leaks).toEqual([]);
    // Every key is under the prefix.
    expect(dump.filter((d) => !d.key.startsWith(PREFIX)).map((d) => d.key)).toEqual([]);
  });
});

describe("a store outage with --state-store-failure=open", () => {
  let ns: string;
  let redis: RedisServer;
  let r: Replicas;
  let ids: string[] = [];

  beforeAll(async () => {
    ns = await createTestNamespace(kc, "shared-open");
    redis = await startRedis();
    ids = await createPool(
      ns,
      "steady",
      [
        "sk-test-shared-open-steady-a-0021",
        "sk-test-shared-open-steady-b-0022",
        "sk-test-shared-open-steady-c-0023",
      ],
      { strategy: "RoundRobin" },
      { limits: { requestsPerMinute: 100_000 } },
    );
    await createPool(ns, "idle", ["sk-test-shared-open-idle-a-000024"], {});
    r = await startReplicas(ns, redis, 3, { steady: 3, idle: 1 });
  }, 180_000);

  afterAll(async () => {
    await Promise.all((r?.ops ?? []).map((o) => o.stop()));
    await redis?.stop();
  });

  it("replicas keep serving alone, say so (metric, condition, Warning Event), and bring the store up to date when it is back", async () => {
    const results: Array<{ at: number; status: number; code: string | undefined }> = [];
    const inFlight = new Set<Promise<void>>();
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const url = r.urls[i % 3] as string;
        const p = dispenseAt(url, ns, "steady").then(
          (d) => void results.push({ at: Date.now(), status: d.status, code: d.code }),
          (err: unknown) => void results.push({ at: Date.now(), status: 0, code: (err as Error).message }),
        );
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        await sleep(20);
      }
    })();
    const leader = await leaderIndex(r);
    await sleep(1_000);

    const killedAt = Date.now();
    await redis.kill();
    const t = performance.now();
    await eventually(
      async () =>
        (await Promise.all(r.probes.map((p) => metricValue(p, "keypool_state_store_up")))).every(
          (v) => v === 0,
        ),
      5_000,
      50,
    );
    console.log(
      `open: every replica shows keypool_state_store_up 0 ${Math.round(performance.now() - t)} ms after the kill`,
    );
    for (const p of r.probes) expect((await fetch(`${p}/readyz`)).status).toBe(200);

    for (const pool of ["steady", "idle"]) {
      const degraded = await api.waitForPool(
        ns,
        pool,
        (p) => {
          const c = condition(p, "Degraded");
          return c?.status === "True" && c.reason === "StateStoreUnavailable" && c;
        },
        15_000,
      );
      console.log(`open: ${pool} Degraded: ${degraded.message}`);
    }
    await eventually(
      async () =>
        (await api.events(ns)).some(
          (e) =>
            e.type === "Warning" &&
            e.reason === "StateStoreUnavailable" &&
            e.involvedObject?.name === "steady",
        ),
      10_000,
    );

    // Learned during the outage, on one replica only.
    const k = ids[0] as string;
    const reporter = (leader + 1) % 3;
    const invalid = await reportAt(r.urls[reporter] as string, ns, "steady", {
      keyId: k,
      statusCode: 401,
      body: { error: { message: "Incorrect API key provided", code: "invalid_api_key" } },
    });
    expect(invalid.status, JSON.stringify(invalid.json)).toBe(200);
    expect(invalid.json.state).toBe("Invalid");

    await sleep(Math.max(0, killedAt + 3_500 - Date.now()));
    for (const p of r.probes) expect((await fetch(`${p}/readyz`)).status).toBe(200);
    const outageEnd = Date.now();
    await redis.restart();
    const back = performance.now();
    await eventually(
      async () =>
        (await Promise.all(r.probes.map((p) => metricValue(p, "keypool_state_store_up")))).every(
          (v) => v === 1,
        ),
      5_000,
      50,
    );
    console.log(
      `open: every replica shows keypool_state_store_up 1 ${Math.round(performance.now() - back)} ms after the restart`,
    );
    await sleep(500);
    stop = true;
    await load;
    await Promise.all([...inFlight]);

    const during = results.filter((x) => x.at >= killedAt && x.at <= outageEnd);
    const failed = results.filter((x) => x.status !== 200);
    console.log(
      `open: ${results.length} dispenses, ${during.length} during the ${outageEnd - killedAt} ms outage, ${failed.length} failed`,
    );
    expect(during.length).toBeGreaterThan(50);
    expect(failed.slice(0, 5)).toEqual([]);

    const stateKey = `${PREFIX}{${ns}/steady}:s:${k}`;
    const stored = await eventually(
      async () => {
        const raw = (await redis.command("GET", stateKey)) as string | null;
        return raw ? (JSON.parse(raw) as { state: string }) : undefined;
      },
      5_000,
      100,
    );
    expect(stored.state).toBe("Invalid");
    // Every replica took it from the store.
    await eventually(
      async () => {
        for (const url of r.urls) {
          for (let i = 0; i < 3; i++) if ((await useOnce(url, ns, "steady")).keyId === k) return false;
        }
        return true;
      },
      5_000,
      100,
    );
    for (const pool of ["steady", "idle"]) {
      await api.waitForPool(
        ns,
        pool,
        (p) => condition(p, "Degraded")?.reason !== "StateStoreUnavailable",
        15_000,
      );
    }
    const dump = await redis.dump();
    expect(dump.filter((d) => RAW_KEYS.some((raw) => d.key.includes(raw) || d.value.includes(raw)))).toEqual(
      [],
    );
  }, 90_000);
});

describe("a store outage with --state-store-failure=closed", () => {
  let ns: string;
  let redis: RedisServer;
  let upstream: FixedUsageUpstream;
  let r: Replicas;

  beforeAll(async () => {
    ns = await createTestNamespace(kc, "shared-closed");
    redis = await startRedis();
    upstream = await startFixedUsageUpstream(10);
    await createPool(ns, "closed", ["sk-test-shared-closed-a-00000031", "sk-test-shared-closed-b-00000032"], {
      strategy: "RoundRobin",
      baseURL: upstream.url,
    });
    r = await startReplicas(ns, redis, 2, { closed: 2 }, ["--state-store-failure", "closed"]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all((r?.ops ?? []).map((o) => o.stop()));
    await upstream?.close();
    await redis?.stop();
  });

  it("dispense and proxy answer 503 state_store_unavailable while the store is away, and serve again once it is back", async () => {
    const phase = performance.now();
    for (const url of r.urls) expect((await useOnce(url, ns, "closed")).status).toBe(200);
    console.log(`closed: first dispenses took ${Math.round(performance.now() - phase)} ms`);

    await redis.kill();
    const answers: Dispensed[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(await dispenseAt(r.urls[i % 2] as string, ns, "closed"));
      await sleep(50);
    }
    const codes = new Map<string, number>();
    for (const a of answers)
      codes.set(`${a.status}/${a.code}`, (codes.get(`${a.status}/${a.code}`) ?? 0) + 1);
    console.log(`closed: while the store is away: ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(refusalsOk(answers, "state_store_unavailable").map((a) => [a.status, a.body])).toEqual([]);

    const proxied = await fetch(`${r.urls[0]}/proxy/${ns}/closed/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-keypool-max-wait": "0" },
      body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hi" }] }),
    });
    const proxiedBody = await proxied.text();
    expect(proxied.status, proxiedBody).toBe(503);
    expect(proxied.headers.get("x-keypool-error")).toBe("state_store_unavailable");
    expect(Number(proxied.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(upstream.calls).toBe(0);
    for (const p of r.probes) expect(await metricValue(p, "keypool_state_store_up")).toBe(0);

    await redis.restart();
    const t = performance.now();
    await eventually(
      async () => {
        for (const url of r.urls) if ((await useOnce(url, ns, "closed")).status !== 200) return false;
        return true;
      },
      5_000,
      50,
    );
    console.log(
      `closed: both replicas serve again ${Math.round(performance.now() - t)} ms after the restart`,
    );
  }, 60_000);

  it("replicas still shut down cleanly on SIGTERM after the outage", async () => {
    const exits = await Promise.all(
      r.ops.map(async (op, i) => {
        const t = performance.now();
        const code = await Promise.race([op.stop(), sleep(15_000).then(() => "hung" as const)]);
        const ms = Math.round(performance.now() - t);
        if (code === "hung")
          console.log(
            `closed: replica ${i} still running 15 s after SIGTERM; last lines:\n${op.lines.slice(-25).join("\n")}`,
          );
        else console.log(`closed: replica ${i} exited ${code} ${ms} ms after SIGTERM`);
        return code;
      }),
    );
    expect(exits).toEqual(r.ops.map(() => 0));
  }, 30_000);
});
