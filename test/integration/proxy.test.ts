/**
 * The provider proxy of `keypool operator`, against the real API server and the fake providers:
 * unmodified SDKs authenticate with a ServiceAccount token and never see a key; a rate-limited
 * key fails over to a healthy one before the caller sees anything; an exhausted pool answers in
 * the provider's error shape with Retry-After; a caller hanging up mid-stream aborts the provider
 * call; bad input gets clear errors; no socket leaks.
 */
import Anthropic from "@anthropic-ai/sdk";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import OpenAI from "openai";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { LATENCY_ALPHA } from "../../src/pool/key.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

const K = {
  oa1: "sk-test-proxy-openai-one-0000001",
  oa2: "sk-test-proxy-openai-two-0000002",
  claude: "sk-ant-test-proxy-claude-000003",
  limited: "sk-test-proxy-rate-limited-00004",
  healthy: "sk-test-proxy-healthy-00000005",
  drained: "sk-test-proxy-drained-00000006",
  brief: "sk-test-proxy-brief-limit-0007",
  slow: "sk-test-proxy-slow-stream-0008",
  gemini: "sk-test-proxy-gemini-key-00009",
};

let ns: string;
let operator: OperatorProcess;
let url: string;
let openaiFake: FakeProvider;
let anthropicFake: FakeProvider;
let googleFake: FakeProvider;
let token: string;
let wideToken: string;

async function tokenFor(sa: string): Promise<string> {
  const res = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: sa,
    body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
  });
  return res.status?.token ?? "";
}

async function grant(sa: string, pools: string[] | undefined) {
  await rbac.createNamespacedRole({
    namespace: ns,
    body: {
      metadata: { name: sa },
      rules: [
        {
          apiGroups: ["keypool.dev"],
          resources: ["keypools"],
          verbs: ["use"],
          ...(pools ? { resourceNames: pools } : {}),
        },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: sa },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sa },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    },
  });
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o-mini",
  messages: [{ role: "user" as const, content: "Say hello" }],
  ...extra,
});

async function post(pool: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/proxy/${ns}/${pool}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: JSON.parse(text) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "proxy");
  openaiFake = await startFakeProvider("openai", {
    [K.oa1]: { kind: "valid" },
    [K.oa2]: { kind: "valid" },
    [K.healthy]: { kind: "valid" },
    [K.drained]: { kind: "valid" },
    [K.brief]: { kind: "valid" },
    [K.slow]: { kind: "slow", delayMs: 0, chunkGapMs: 200 },
  });
  anthropicFake = await startFakeProvider("anthropic", { [K.claude]: { kind: "valid" } });
  googleFake = await startFakeProvider("google", { [K.gemini]: { kind: "valid" } });
  const pools: Array<[string, Record<string, string>, Record<string, unknown>]> = [
    [
      "openai",
      { a: K.oa1, b: K.oa2 },
      { provider: "openai", baseURL: openaiFake.url, strategy: "RoundRobin" },
    ],
    ["claude", { a: K.claude }, { provider: "anthropic", baseURL: anthropicFake.url }],
    ["gemini", { a: K.gemini }, { provider: "google", baseURL: googleFake.url }],
    [
      "failover",
      { a: K.limited, b: K.healthy },
      // RoundRobin hands out the rate-limited key first (it joined first).
      { provider: "openai", baseURL: openaiFake.url, strategy: "RoundRobin" },
    ],
    ["drained", { a: K.drained }, { provider: "openai", baseURL: openaiFake.url, proxy: { maxWait: "0s" } }],
    ["brief", { a: K.brief }, { provider: "openai", baseURL: openaiFake.url, proxy: { maxWait: "10s" } }],
    ["slow", { a: K.slow }, { provider: "openai", baseURL: openaiFake.url }],
  ];
  for (const [name, keys, spec] of pools) {
    await api.putSecret(ns, `${name}-keys`, keys);
    await api.createPool(ns, name, {
      ...spec,
      keys: [{ secretRef: { name: `${name}-keys` } }],
      health: { probeInterval: "1h" },
    });
  }
  for (const sa of ["client", "wide", "stranger"]) {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  }
  await grant(
    "client",
    pools.map(([name]) => name),
  );
  await grant("wide", undefined);
  token = await tokenFor("client");
  wideToken = await tokenFor("wide");
  operator = startOperator([
    "--kubeconfig",
    inject("kubeconfig"),
    "--namespaces",
    ns,
    "--no-probes",
    "--proxy-max-body",
    "1mb",
    "--proxy-retry-body",
    "256kb",
  ]);
  url = await operator.dispenserUrl();
  for (const [name] of pools)
    await api.waitForPool(ns, name, (p) => condition(p, "Ready")?.status === "True");
});

afterAll(async () => {
  await operator?.stop();
  await Promise.all([openaiFake?.close(), anthropicFake?.close(), googleFake?.close()]);
});

describe("unmodified SDKs with a ServiceAccount token as their API key", () => {
  it("openai: a chat completion, plain and streamed, with a key the caller never sees", async () => {
    const client = new OpenAI({ apiKey: token, baseURL: `${url}/proxy/${ns}/openai/v1`, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create(chat()).withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]?.message.content).toContain("Hello");
    const servedBy = response.headers.get("x-keypool-key-id");
    expect([keyId(K.oa1), keyId(K.oa2)]).toContain(servedBy);
    expect(response.headers.get("x-keypool-attempts")).toBe("1");
    // The pool's capacity, from the provider's x-ratelimit-* headers of its keys.
    expect(Number(response.headers.get("x-ratelimit-remaining-requests"))).toBeGreaterThan(0);

    const stream = await client.chat.completions.create({
      ...chat(),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toContain("fake provider");
    expect(usage).toMatchObject({ total_tokens: expect.any(Number) });

    const seen = openaiFake.requests.filter((r) => r.path === "/v1/chat/completions");
    expect(seen.length).toBeGreaterThanOrEqual(2);
    for (const r of seen) {
      expect([K.oa1, K.oa2]).toContain(r.key);
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
  });

  it("@anthropic-ai/sdk: a message, plain and streamed", async () => {
    const client = new Anthropic({ apiKey: token, baseURL: `${url}/proxy/${ns}/claude`, maxRetries: 0 });
    const message = await client.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 64,
      messages: [{ role: "user", content: "Say hello" }],
    });
    expect(message.type).toBe("message");
    expect(message.content[0]).toMatchObject({ type: "text" });

    const stream = client.messages.stream({
      model: "claude-sonnet-4-5",
      max_tokens: 64,
      messages: [{ role: "user", content: "Say hello" }],
    });
    let text = "";
    stream.on("text", (t) => (text += t));
    const final = await stream.finalMessage();
    expect(text).toContain("fake provider");
    expect(final.usage.output_tokens).toBeGreaterThan(0);
    const seen = anthropicFake.requests.filter((r) => r.path === "/v1/messages");
    expect(seen.map((r) => r.key)).toEqual([K.claude, K.claude]);
    // The SDK's anthropic-version went through; its x-api-key (the SA token) did not.
    expect(seen[0]?.headers["anthropic-version"]).toBeDefined();
  });

  it("Gemini style: the token as x-goog-api-key or ?key= works too", async () => {
    for (const auth of [{ header: true }, { header: false }]) {
      const path = `/proxy/${ns}/gemini/v1beta/models/gemini-2.5-flash:generateContent${auth.header ? "" : `?key=${token}`}`;
      const res = await fetch(`${url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(auth.header ? { "x-goog-api-key": token } : {}) },
        body: JSON.stringify({ contents: [{ parts: [{ text: "Say hello" }] }] }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { candidates: unknown[] }).candidates.length).toBeGreaterThan(0);
    }
    const seen = googleFake.requests.filter((r) => r.path.includes("generateContent"));
    expect(seen.map((r) => r.key)).toEqual([K.gemini, K.gemini]);
    for (const r of seen) expect(r.path).not.toContain(token);
  });
});

describe("failover", () => {
  it("key 1 answering 429 and key 2 healthy: every call succeeds on key 2, key 1 is RateLimited in status", async () => {
    openaiFake.setKey(K.limited, { kind: "rateLimited", retryAfterSeconds: 60 });
    const statuses: number[] = [];
    const servedBy = new Set<string | null>();
    const attempts: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await post("failover", "/v1/chat/completions", chat());
      statuses.push(res.status);
      servedBy.add(res.headers.get("x-keypool-key-id"));
      attempts.push(res.headers.get("x-keypool-attempts") ?? "");
      expect(res.text).not.toContain(K.healthy);
    }
    expect(statuses).toEqual(Array(10).fill(200));
    expect([...servedBy]).toEqual([keyId(K.healthy)]);
    // The first call tried key 1, got its 429, and moved on; after that key 1 rests.
    expect(attempts[0]).toBe("2");
    expect(attempts.slice(1)).toEqual(Array(9).fill("1"));
    expect(openaiFake.requests.filter((r) => r.key === K.limited)).toHaveLength(1);

    const limited = await api.waitForPool(ns, "failover", (p) =>
      (p.status?.keyStatuses as Array<{ id: string; state: string; until?: string }> | undefined)?.find(
        (k) => k.id === keyId(K.limited) && k.state === "RateLimited",
      ),
    );
    expect(Date.parse(String(limited?.until))).toBeGreaterThan(Date.now() + 30_000);
  });

  it("when every key is exhausted the caller gets the provider's 429 with Retry-After, not a hang", async () => {
    openaiFake.setKey(K.drained, { kind: "rateLimited", retryAfterSeconds: 60 });
    const started = Date.now();
    // The first call meets the provider's 429 (passed through as the provider wrote it)...
    const first = await post("drained", "/v1/chat/completions", chat());
    expect(first.status).toBe(429);
    expect(first.json).toMatchObject({ error: { code: "rate_limit_exceeded" } });
    expect(Number(first.headers.get("retry-after"))).toBeGreaterThan(0);
    // ...and later calls get the proxy's own 429, in OpenAI's shape, without calling the provider.
    const before = openaiFake.requests.length;
    const second = await post("drained", "/v1/chat/completions", chat());
    expect(second.status).toBe(429);
    expect(second.json).toMatchObject({ error: { code: "rate_limited", type: "requests" } });
    const retryAfter = Number(second.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(30);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(openaiFake.requests.length).toBe(before);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("waits for a key that becomes usable within maxWait instead of failing", async () => {
    openaiFake.setKey(K.brief, { kind: "rateLimited", retryAfterSeconds: 2 });
    const started = Date.now();
    const res = await post("brief", "/v1/chat/completions", chat());
    const took = Date.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get("x-keypool-attempts")).toBe("2");
    console.log(`a call waited ${took} ms for the pool's only key to come back from a 2 s rate limit`);
    expect(took).toBeGreaterThanOrEqual(1_000);
  });
});

describe("streaming", () => {
  it("a caller hanging up mid-stream aborts the provider call", async () => {
    openaiFake.reset();
    const controller = new AbortController();
    const res = await fetch(`${url}/proxy/${ns}/slow/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(chat({ stream: true })),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("data:");
    controller.abort();
    await eventually(async () => openaiFake.requests.find((r) => r.key === K.slow)?.aborted === true, 5_000);
  });
});

describe("latency", () => {
  it("a proxied call's time to the provider's response headers feeds the key's average latency", async () => {
    const latency = async () => {
      const res = await fetch(`${url}/v1/pools/${ns}/slow`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const view = (await res.json()) as { keyStatuses: Array<{ latencyMs?: number }> };
      return view.keyStatuses[0]?.latencyMs;
    };
    const before = await latency();
    openaiFake.setKey(K.slow, { kind: "slow", delayMs: 400 });
    try {
      expect((await post("slow", "/v1/chat/completions", chat())).status).toBe(200);
    } finally {
      openaiFake.setKey(K.slow, { kind: "slow", delayMs: 0, chunkGapMs: 200 });
    }
    // The first call's latency is the average; a later one moves it LATENCY_ALPHA of the way
    // (each side rounded to whole ms: one ms of slack).
    const least = before === undefined ? 400 : before + LATENCY_ALPHA * (400 - before) - 1;
    expect(await latency()).toBeGreaterThanOrEqual(least);
  });
});

describe("bad input", () => {
  const cases: Array<[string, () => Promise<Response>, number, string]> = [
    [
      "an unknown pool",
      () => fetch(`${url}/proxy/${ns}/nope/v1/models`, { headers: { authorization: `Bearer ${wideToken}` } }),
      404,
      "pool_not_found",
    ],
    ["no token", () => fetch(`${url}/proxy/${ns}/openai/v1/models`), 401, "unauthenticated"],
    [
      "a token without `use` on the pool",
      async () =>
        fetch(`${url}/proxy/${ns}/openai/v1/models`, {
          headers: { authorization: `Bearer ${await tokenFor("stranger")}` },
        }),
      403,
      "forbidden",
    ],
    [
      "a body over the limit (2 MB, limit 1 MB)",
      () =>
        fetch(`${url}/proxy/${ns}/openai/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(chat({ padding: "x".repeat(2 * 1024 * 1024) })),
        }),
      413,
      "payload_too_large",
    ],
    [
      "a chunked body that grows over the limit while it streams",
      () => {
        const chunk = new TextEncoder().encode("z".repeat(64 * 1024));
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent++ < 32) controller.enqueue(chunk);
            else controller.close();
          },
        });
        return fetch(`${url}/proxy/${ns}/openai/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
          duplex: "half",
        } as RequestInit);
      },
      413,
      "payload_too_large",
    ],
    [
      "a path without the provider part",
      () => fetch(`${url}/proxy/${ns}/openai`, { headers: { authorization: `Bearer ${token}` } }),
      404,
      "not_found",
    ],
    [
      "a pool name that is not a name",
      () => fetch(`${url}/proxy/${ns}/No_Such!/v1/models`, { headers: { authorization: `Bearer ${token}` } }),
      400,
      "invalid_request",
    ],
  ];

  it.each(cases)("%s: a clear error, and the proxy keeps serving", async (_name, send, status, code) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers.get("x-keypool-error")).toBe(code);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(10);
    expect((await post("openai", "/v1/chat/completions", chat())).status).toBe(200);
  });

  it("a provider path that does not exist: the provider's 404 passes through untouched, no failover", async () => {
    const before = openaiFake.requests.length;
    const res = await post("openai", "/v1/no-such-endpoint", {});
    expect(res.status).toBe(404);
    expect(res.headers.get("x-keypool-attempts")).toBe("1");
    expect(openaiFake.requests.length).toBe(before + 1);
  });

  it("a body larger than the retry buffer is streamed through once", async () => {
    const res = await post("openai", "/v1/chat/completions", chat({ padding: "y".repeat(512 * 1024) }));
    expect(res.status).toBe(200);
    expect(openaiFake.requests.at(-1)?.body).toMatchObject({ padding: expect.any(String) });
  });
});

describe("resources", () => {
  async function activeHandles(): Promise<number> {
    const probes = await operator.probesUrl();
    const text = await (await fetch(`${probes}/metrics`)).text();
    return Number(/^keypool_nodejs_active_handles_total (\d+)/m.exec(text)?.[1]);
  }

  async function loadRun(agent: Agent) {
    const calls = Array.from({ length: 200 }, async (_, i) => {
      const res = await request(`${url}/proxy/${ns}/openai/v1/chat/completions`, {
        dispatcher: agent,
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(chat(i % 2 ? { stream: true } : {})),
      });
      // Every fourth caller hangs up after the first chunk.
      if (i % 4 === 1) {
        for await (const _chunk of res.body) break;
      } else {
        await res.body.text();
      }
    });
    await Promise.all(calls);
  }

  it("no request leaks a socket: open handles after a second load run are no more than after the first", async () => {
    const agent = new Agent({ connections: 10 });
    const before = await activeHandles();
    await loadRun(agent);
    await agent.close();
    const afterFirst = await eventually(async () => {
      const n = await activeHandles();
      return n <= before + 12 ? n : undefined;
    }, 10_000);
    const agent2 = new Agent({ connections: 10 });
    await loadRun(agent2);
    await agent2.close();
    const afterSecond = await eventually(async () => {
      const n = await activeHandles();
      return n <= afterFirst ? n : undefined;
    }, 10_000);
    console.log(
      `operator active handles: ${before} before, ${afterFirst} after 200 calls, ${afterSecond} after 400`,
    );
    expect(afterSecond).toBeLessThanOrEqual(afterFirst);
  });
});

describe("secrets", () => {
  it("raw keys never appear in the operator's logs or metrics", async () => {
    const probes = await operator.probesUrl();
    const metrics = await (await fetch(`${probes}/metrics`)).text();
    expect(metrics).toContain("keypool_proxy_requests_total");
    expect(metrics).toContain("keypool_proxy_failovers_total");
    const output = operator.lines.join("\n");
    for (const key of Object.values(K)) {
      expect(output).not.toContain(key);
      expect(metrics).not.toContain(key);
    }
    expect(output).not.toContain(token);
  });
});
