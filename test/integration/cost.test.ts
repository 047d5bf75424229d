/**
 * What a proxied call costs, against the real API server: `keypool operator` proxies chat
 * completions (streamed and not) to the fake OpenAI for a KeyPool with a price list, and the
 * cost the KeyPool status and /metrics show is the fake's usage numbers times the prices.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { installKeyPoolCrd } from "../support/crd.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace } from "../support/kube.ts";
import { localOperatorArgs, type OperatorProcess, startOperator } from "../support/operator-process.ts";

const K = { a: "sk-test-cost-key-a-0000000001", b: "sk-test-cost-key-b-0000000002" };
// A thousand times gpt-4o-mini's prices: a few short calls cost cents, and the status's
// micro-dollars show every token.
const PRICE = {
  model: "gpt-4o-mini",
  inputPerMillion: 150,
  outputPerMillion: 600,
  cachedInputPerMillion: 75,
};

const kc = adminKubeConfig();
const api = poolApi(kc);
let ns: string;
let fake: FakeProvider;
let operator: OperatorProcess;

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

const costOf = (u: Usage) => {
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  return (
    ((u.prompt_tokens - cached) * PRICE.inputPerMillion +
      cached * PRICE.cachedInputPerMillion +
      u.completion_tokens * PRICE.outputPerMillion) /
    1_000_000
  );
};

async function chat(stream: boolean): Promise<Usage> {
  const res = await fetch(`${await operator.dispenserUrl()}/proxy/${ns}/chat/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Tell me about key pools in three sentences, please." }],
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    }),
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  if (!stream) return (JSON.parse(text) as { usage: Usage }).usage;
  // The last data event before [DONE] carries the usage (stream_options.include_usage).
  const events = text
    .split("\n")
    .filter((l) => l.startsWith("data: ") && !l.includes("[DONE]"))
    .map((l) => JSON.parse(l.slice(6)) as { usage?: Usage | null });
  const usage = events.findLast((e) => e.usage)?.usage;
  if (!usage) throw new Error(`no usage in the stream: ${text.slice(-300)}`);
  return usage;
}

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "cost");
  fake = await startFakeProvider("openai", { [K.a]: { kind: "valid" }, [K.b]: { kind: "valid" } });
  await api.putSecret(ns, "chat-keys", { a: K.a, b: K.b });
  await api.createPool(ns, "chat", {
    provider: "openai",
    baseURL: fake.url,
    strategy: "RoundRobin",
    keys: [{ secretRef: { name: "chat-keys" } }],
    pricing: [PRICE],
    budget: { dailyUSD: 100 },
  });
  operator = startOperator(localOperatorArgs(inject("kubeconfig"), ns));
  await operator.waitForLog((l) => l.msg === "operator running");
  await api.waitForPool(ns, "chat", (p) => condition(p, "Ready")?.status === "True");
}, 120_000);

afterAll(async () => {
  if (operator) expect(await operator.stop()).toBe(0);
  await fake?.close();
});

describe("the cost of proxied calls", () => {
  it("is tokens times price in the KeyPool status and keypool_cost_usd_total, streamed and not", async () => {
    const usages = [await chat(false), await chat(true), await chat(false), await chat(true)];
    const expected = usages.reduce((sum, u) => sum + costOf(u), 0);
    console.log(
      `4 calls (2 streamed): ${usages.map((u) => `${u.prompt_tokens}+${u.completion_tokens}`).join(", ")} tokens = $${expected.toFixed(8)}`,
    );
    expect(expected).toBeGreaterThan(0);

    const status = await api.waitForPool(ns, "chat", (p) => {
      const s = p.status as Record<string, unknown> | undefined;
      return (
        typeof s?.["costTodayUSD"] === "number" &&
        Math.abs((s["costTodayUSD"] as number) - expected) < 1e-6 &&
        s
      );
    });
    expect(status["costThisMonthUSD"]).toBeCloseTo(expected, 6);
    expect(status["costByModel"]).toEqual([
      {
        model: "gpt-4o-mini",
        costTodayUSD: expect.closeTo(expected, 6),
        costThisMonthUSD: expect.closeTo(expected, 6),
      },
    ]);
    const keys = status["keyStatuses"] as Array<{ costTodayUSD?: number }>;
    expect(keys.reduce((sum, k) => sum + (k.costTodayUSD ?? 0), 0)).toBeCloseTo(expected, 6);
    expect(status["budget"]).toMatchObject({
      daily: { limitUSD: 100, spentUSD: expect.closeTo(expected, 6) },
    });
    const conditions = status["conditions"] as Array<{ type: string; status: string }>;
    expect(conditions.find((c) => c.type === "BudgetWarning")).toMatchObject({ status: "False" });

    const metrics = await (await fetch(`${await operator.probesUrl()}/metrics`)).text();
    const line = new RegExp(
      `^keypool_cost_usd_total\\{namespace="${ns}",pool="chat",model="gpt-4o-mini"\\} (\\S+)$`,
      "m",
    ).exec(metrics);
    expect(Number(line?.[1])).toBeCloseTo(expected, 9);

    const everything = JSON.stringify(status) + metrics + operator.lines.join("\n");
    for (const key of Object.values(K)) expect(everything).not.toContain(key);
  });
});
