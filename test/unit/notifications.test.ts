/**
 * When the operator notifies: one notification per transition, budget notices once over all
 * replicas, pool-level ones from the leader only. A fake notifier records what it was given.
 */
import { describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import { createLogger } from "../../src/log.ts";
import { PoolNotifications } from "../../src/notifications.ts";
import type { NotificationEvent } from "../../src/notify/event.ts";
import type { WebhookTarget } from "../../src/notify/notifier.ts";
import { applyPool } from "../../src/pool/apply.ts";
import { ManualClock } from "../../src/pool/clock.ts";
import { keyId } from "../../src/pool/identity.ts";
import { PoolRegistry } from "../../src/pool/registry.ts";

const KEYS = ["sk-test-notify-a-0123456789", "sk-test-notify-b-0123456789"];
const ref = { namespace: "ai", name: "chat" };

function setUp(
  options: { leader?: boolean; claim?: (pool: string, id: string) => Promise<boolean>; spec?: object } = {},
) {
  const clock = new ManualClock(Date.UTC(2026, 11, 4, 12));
  const registry = new PoolRegistry();
  const sent: NotificationEvent[] = [];
  const targets: Array<[string, WebhookTarget[]]> = [];
  let n = 0;
  const { runtime } = applyPool(registry, {
    ref,
    uid: "u1",
    generation: 1,
    spec: KeyPoolSpec.parse({
      provider: "openai",
      keys: [{ secretRef: { name: "k" } }],
      pricing: [{ model: "m", inputPerMillion: 1, outputPerMillion: 1 }],
      ...options.spec,
    }),
    entries: KEYS.map((key, i) => ({ key, source: `secret/k#${i}` })),
    engine: { clock, newLeaseToken: () => ++n },
  });
  runtime.webhooks = [{ name: "ops", url: "http://127.0.0.1:9/hook", signingKey: "s3cret", events: [] }];
  const hub = new PoolNotifications({
    registry,
    notifier: {
      notify: (e) => sent.push(e),
      setTargets: (pool, t) => targets.push([pool, [...t]]),
    },
    clock,
    logger: createLogger({ level: "silent" }),
    isLeader: () => options.leader ?? true,
    ...(options.claim ? { claim: options.claim } : {}),
  });
  hub.start();
  return { clock, registry, runtime, sent, targets, hub };
}

describe("notifications", () => {
  it("tells once per transition: Invalid, the pool running dry, and both coming back", () => {
    const { runtime, sent, targets, hub } = setUp();
    hub.check(); // the first look records the pool as available
    for (const key of KEYS)
      runtime.engine.report({ keyId: keyId(key) }, { kind: "invalidKey", reason: "invalid_api_key" });
    runtime.engine.report({ keyId: keyId(KEYS[0] as string) }, { kind: "invalidKey" }); // no transition: nothing
    runtime.engine.reset(keyId(KEYS[0] as string));
    expect(sent.map((e) => e.type)).toEqual([
      "KeyInvalid",
      "KeyInvalid",
      "PoolUnavailable",
      "KeyRecovered",
      "PoolRecovered",
    ]);
    expect(new Set(sent.map((e) => e.id)).size).toBe(sent.length);
    expect(sent[0]).toMatchObject({
      pool: ref,
      key: { id: keyId(KEYS[0] as string) },
      reason: "invalid_api_key",
    });
    expect(targets).toEqual([
      ["ai/chat", [{ name: "ops", url: "http://127.0.0.1:9/hook", signingKey: "s3cret", events: new Set() }]],
    ]);
    expect(JSON.stringify(sent)).not.toContain("sk-test-notify");
  });

  it("leaves pool-level notifications to the leader", () => {
    const { runtime, sent, hub } = setUp({ leader: false });
    hub.check();
    for (const key of KEYS) runtime.engine.report({ keyId: keyId(key) }, { kind: "invalidKey" });
    expect(sent.map((e) => e.type)).toEqual(["KeyInvalid", "KeyInvalid"]);
  });

  it("sends a budget notice once, and not when another replica claimed it", async () => {
    const claimed = new Set<string>();
    const { runtime, sent } = setUp({
      spec: { budget: { dailyUSD: 1 } },
      claim: async (_pool, id) => {
        if (claimed.has(id)) return false;
        claimed.add(id);
        return true;
      },
    });
    const usage = { model: "m", inputTokens: 450_000, outputTokens: 0 };
    for (let i = 0; i < 3; i++)
      runtime.engine.report({ keyId: keyId(KEYS[0] as string) }, { kind: "success", usage });
    await new Promise((r) => setImmediate(r));
    expect(
      sent.filter((e) => e.type.startsWith("Budget")).map((e) => [e.type, e.details?.["period"]]),
    ).toEqual([
      ["BudgetWarning", "daily"],
      ["BudgetExhausted", "daily"],
    ]);
    // Another replica's engine crossing the same line asks for the same ids: refused.
    const [warning] = sent.filter((e) => e.type === "BudgetWarning");
    expect(claimed.has(warning?.id as string)).toBe(true);
  });

  it("says when the forecast turns to running out before the reset", () => {
    const { runtime, sent, hub, clock } = setUp({ spec: { budget: { dailyUSD: 10 } } });
    hub.check();
    for (let i = 0; i < 30; i++) {
      runtime.engine.report(
        { keyId: keyId(KEYS[0] as string) },
        { kind: "success", usage: { model: "m", inputTokens: 100_000, outputTokens: 0 } },
      );
      clock.advance(10_000);
    }
    hub.check();
    hub.check();
    expect(sent.filter((e) => e.type === "ExhaustionPredicted")).toHaveLength(1);
  });
});
