/**
 * Budgets through the real proxy: a key over its daily budget is not handed out, and is again at
 * the next UTC day (the injected clock moves there); three replicas on one Redis hold a pool's
 * budget together, not three times over. In-process replicas (the serving handler `keypool serve`
 * runs, each with its own registry and state-store connection) in front of a tiny upstream that
 * answers every chat completion with 1000 tokens (999 in, 1 out): at $1000 per million tokens
 * each way, every call costs exactly $1.
 */
import type { Server } from "node:http";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import { createLogger } from "../../src/log.ts";
import { applyPool } from "../../src/pool/apply.ts";
import { ManualClock } from "../../src/pool/clock.ts";
import { keyId } from "../../src/pool/identity.ts";
import type { KeyEntry } from "../../src/pool/key.ts";
import { PoolRegistry } from "../../src/pool/registry.ts";
import { addressPort, closeServer, servingHandler } from "../../src/run-common.ts";
import { NoAuth } from "../../src/server/authorizer.ts";
import { listen } from "../../src/server/probes.ts";
import { type OpenedStateStore, openStateStore } from "../../src/state/open.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { type FixedUsageUpstream, startFixedUsageUpstream } from "../support/shared-state.ts";

const KEY = "sk-test-budget-key-a-000000001";
const OTHER = "sk-test-budget-key-b-000000002";
const PRICES = [{ model: "gpt-4o-mini", inputPerMillion: 1000, outputPerMillion: 1000 }];
/** 23:00 UTC: the budget day ends in an hour. */
const LATE = Date.UTC(2026, 11, 4, 23, 0, 0);
const MIDNIGHT = Date.UTC(2026, 11, 5, 0, 0, 0);
const logger = createLogger({ level: "silent" });
const ref = { namespace: "default", name: "chat" };

let upstream: FixedUsageUpstream;
let redis: RedisServer;
const closers: Array<() => Promise<void>> = [];

interface Replica {
  url: string;
  registry: PoolRegistry;
  metrics: Registry;
}

async function replica(
  clock: ManualClock,
  spec: Record<string, unknown>,
  entries: KeyEntry[],
  stateStore = "memory",
): Promise<Replica> {
  const registry = new PoolRegistry();
  const state: OpenedStateStore = await openStateStore(
    { stateStore, stateStorePrefix: "kpbudget:", stateStoreFailure: "open" },
    { env: {}, registry, logger, clock },
  );
  let n = 0;
  applyPool(registry, {
    ref,
    uid: "uid-chat",
    generation: 1,
    spec: KeyPoolSpec.parse({ provider: "openai", baseURL: upstream.url, pricing: PRICES, ...spec }),
    entries,
    engine: { clock, newLeaseToken: () => ++n },
  });
  await state.shared?.resync();
  const metrics = new Registry();
  const handler = servingHandler(
    { proxyMaxBody: 1_000_000, proxyRetryBody: 1_000_000, proxyMaxWaitLimit: 0 },
    metrics,
    {
      registry,
      auth: new NoAuth(),
      logger,
      clock,
      mode: "standalone",
      defaultNamespace: "default",
      coordinator: state.coordinator,
    },
  );
  const server: Server = await listen(handler, 0, "127.0.0.1");
  closers.push(async () => {
    await closeServer(server);
    await state.close();
  });
  return { url: `http://127.0.0.1:${addressPort(server)}`, registry, metrics };
}

/** One proxied chat completion; its status. */
async function chat(r: Replica): Promise<number> {
  const res = await fetch(`${r.url}/proxy/default/chat/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-keypool-max-wait": "0" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

const view = (r: Replica) => {
  const runtime = r.registry.get(ref);
  if (!runtime) throw new Error("no pool");
  return { keys: runtime.engine.keys(), spending: runtime.engine.spendingView() };
};

beforeAll(async () => {
  upstream = await startFixedUsageUpstream(1000);
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  for (const close of closers.splice(0)) await close();
  await upstream?.close();
  await redis?.stop();
});

describe("a key's daily budget", () => {
  it("stops the key at its budget and brings it back at the next UTC day", async () => {
    const clock = new ManualClock(LATE);
    const r = await replica(clock, { strategy: "RoundRobin" }, [
      { key: KEY, source: "secret/keys#a", budget: { dailyUSD: 3 } },
    ]);
    const statuses = [await chat(r), await chat(r), await chat(r), await chat(r)];
    expect(statuses).toEqual([200, 200, 200, 429]);
    const [key] = view(r).keys;
    expect(key).toMatchObject({
      id: keyId(KEY),
      state: "QuotaExhausted",
      reason: "budget_exhausted",
      untilMs: MIDNIGHT,
      costTodayUSD: 3,
      budget: { daily: { limitUSD: 3, spentUSD: 3, resetsAtMs: MIDNIGHT } },
    });
    clock.set(MIDNIGHT);
    expect(await chat(r)).toBe(200);
    expect(view(r).keys[0]).toMatchObject({ state: "Healthy", costTodayUSD: 1, costThisMonthUSD: 4 });
  });
});

describe("a pool's budget over three replicas on one Redis", () => {
  it("serves exactly the budget's worth of calls in total, not a budget per replica", async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 4, 12, 0, 0));
    const spec = { strategy: "RoundRobin", budget: { dailyUSD: 10 } };
    const entries: KeyEntry[] = [
      { key: KEY, source: "secret/keys#a" },
      { key: OTHER, source: "secret/keys#b" },
    ];
    const replicas = [
      await replica(clock, spec, entries, redis.url),
      await replica(clock, spec, entries, redis.url),
      await replica(clock, spec, entries, redis.url),
    ];
    const before = upstream.calls;
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push(await chat(replicas[i % 3] as Replica));
    const served = statuses.filter((s) => s === 200).length;
    console.log(
      `pool budget $10 at $1 a call over 3 replicas: ${served} of 30 calls served (per replica ${replicas
        .map((_, i) => statuses.filter((s, j) => j % 3 === i && s === 200).length)
        .join("/")}), upstream saw ${upstream.calls - before}`,
    );
    expect(served).toBe(10);
    expect(upstream.calls - before).toBe(10);
    // Each replica knows the total as of its own last call; the last to spend knows all of it.
    expect(Math.max(...replicas.map((r) => view(r).spending.costTodayUSD))).toBe(10);
    for (const r of replicas) {
      const { keys } = view(r);
      expect(keys.map((k) => [k.state, k.reason])).toEqual([
        ["QuotaExhausted", "pool_budget_exhausted"],
        ["QuotaExhausted", "pool_budget_exhausted"],
      ]);
    }
  });
});

describe("a forecast through the proxy", () => {
  it("says when a pool budget runs out at the rate calls come, before the day ends", async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 4, 12, 0, 0));
    const r = await replica(clock, { budget: { dailyUSD: 100 } }, [{ key: KEY, source: "secret/keys#a" }]);
    // $1 a minute for half an hour: $30 spent, $70 left, so about 70 minutes more.
    for (let i = 0; i < 30; i++) {
      expect(await chat(r)).toBe(200);
      clock.advance(60_000);
    }
    const res = await fetch(`${r.url}/v1/pools/default/chat`);
    const view = (await res.json()) as {
      costTodayUSD: number;
      budget: { daily: { spentUSD: number; limitUSD: number } };
      forecast: { limit: string; exhaustsAt: string; beforeReset: boolean };
    };
    expect(view.costTodayUSD).toBe(30);
    expect(view.budget.daily).toMatchObject({ spentUSD: 30, limitUSD: 100 });
    expect(view.forecast).toMatchObject({ limit: "poolDailyBudget", beforeReset: true });
    const minutes = (Date.parse(view.forecast.exhaustsAt) - clock.now()) / 60_000;
    console.log(`forecast after 30 min at $1/min with $70 left: runs out in ${minutes.toFixed(1)} min`);
    expect(minutes).toBeGreaterThan(55);
    expect(minutes).toBeLessThan(90);
  });
});
