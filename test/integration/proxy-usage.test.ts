/**
 * Every proxied call's model and tokens by kind reach the engine (outcome.usage), for the pool's
 * price list: unmodified OpenAI and Anthropic SDKs and plain Gemini requests go through the real
 * proxy handler to the fake providers, streamed and not, with and without prompt caching.
 *
 * The outcome is observed where the engine receives it: the proxy hands every report to its
 * KeyCoordinator (ProxyOptions.coordinator, the seam the shared state store uses), so this file
 * runs the proxy in process with a coordinator that records each outcome and passes it on to the
 * pool's engine, as the memory store does. No test-only hook in the proxy; nothing observable
 * from outside a process (metrics, the pool view, capacity headers) carries usage by kind today.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import { createLogger } from "../../src/log.ts";
import { applyPool } from "../../src/pool/apply.ts";
import type { CallUsage, Outcome } from "../../src/pool/outcome.ts";
import { PoolRegistry } from "../../src/pool/registry.ts";
import { createProxy } from "../../src/proxy/proxy.ts";
import { SessionAffinity } from "../../src/server/affinity.ts";
import { NoAuth } from "../../src/server/authorizer.ts";
import { type KeyCoordinator, localCoordinator } from "../../src/state/coordinator.ts";
import { countTokens, replyPieces, textOf } from "../fakes/format.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";

const K = {
  openai: "sk-test-usage-openai-valid-0001",
  limited: "sk-test-usage-openai-limited-02",
  claude: "sk-ant-test-usage-claude-00003",
  gemini: "sk-test-usage-gemini-key-00004",
};
/** Bodies over this are streamed to the provider once, not held for retries. */
const RETRY_LIMIT = 64 * 1024;
/** Every fake answer is the same reply, one token a piece. */
const REPLY_TOKENS = replyPieces(undefined).pieces.length;

let openaiFake: FakeProvider;
let anthropicFake: FakeProvider;
let googleFake: FakeProvider;
let server: Server;
let url: string;
/** Every outcome the proxy reported, in order, as the engine got it. */
const reported: Outcome[] = [];

const recording: KeyCoordinator = {
  ...localCoordinator,
  report(runtime, ref, outcome, origin) {
    reported.push(outcome);
    return localCoordinator.report(runtime, ref, outcome, origin);
  },
};

/** The outcomes reported since the last test, once `n` are in. */
async function outcomes(n: number): Promise<Outcome[]> {
  const deadline = Date.now() + 5000;
  while (reported.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(reported).toHaveLength(n);
  return [...reported];
}

/** A prompt long enough for the providers' prompt caching (1024 tokens and more). */
const LONG = `${"You answer questions about the fake provider's documentation, tersely and correctly. ".repeat(60)}`;

beforeAll(async () => {
  openaiFake = await startFakeProvider("openai", {
    [K.openai]: { kind: "valid" },
    [K.limited]: { kind: "rateLimited", retryAfterSeconds: 3600 },
  });
  anthropicFake = await startFakeProvider("anthropic", { [K.claude]: { kind: "valid" } });
  googleFake = await startFakeProvider("google", { [K.gemini]: { kind: "valid" } });
  const registry = new PoolRegistry();
  const pools: Array<[string, string[], Record<string, unknown>]> = [
    ["openai", [K.openai], { provider: "openai", baseURL: openaiFake.url }],
    // RoundRobin hands out the rate-limited key first (it joined first).
    [
      "failover",
      [K.limited, K.openai],
      { provider: "openai", baseURL: openaiFake.url, strategy: "RoundRobin" },
    ],
    ["claude", [K.claude], { provider: "anthropic", baseURL: anthropicFake.url }],
    ["gemini", [K.gemini], { provider: "google", baseURL: googleFake.url }],
  ];
  let token = 0;
  for (const [name, keys, spec] of pools) {
    applyPool(registry, {
      ref: { namespace: "default", name },
      uid: name,
      generation: 1,
      spec: KeyPoolSpec.parse(spec),
      entries: keys.map((key, i) => ({ key, source: `test#${i}` })),
      engine: { clock: { now: () => Date.now() }, newLeaseToken: () => ++token },
    });
  }
  const proxy = createProxy({
    registry,
    auth: new NoAuth(),
    logger: createLogger({ level: "silent" }),
    clock: { now: () => Date.now() },
    affinity: new SessionAffinity(),
    limits: { maxBytes: 8 * 1024 * 1024, retryLimit: RETRY_LIMIT },
    maxWaitLimitMs: 0,
    coordinator: recording,
  });
  server = createServer(proxy);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await Promise.all([openaiFake?.close(), anthropicFake?.close(), googleFake?.close()]);
});

beforeEach(() => {
  reported.length = 0;
});

const openai = (pool = "openai") =>
  new OpenAI({ apiKey: "not-a-key", baseURL: `${url}/proxy/default/${pool}/v1`, maxRetries: 0 });
const anthropic = () =>
  new Anthropic({ apiKey: "not-a-key", baseURL: `${url}/proxy/default/claude`, maxRetries: 0 });

/** A usage with the answer's counts, as the proxy reports it. */
const usage = (
  model: string,
  inputTokens: number,
  cachedInputTokens: number,
  outputTokens: number,
): CallUsage => ({
  model,
  inputTokens,
  cachedInputTokens,
  outputTokens,
});

describe("OpenAI chat completions", () => {
  const messages = [{ role: "user" as const, content: "Say hello" }];
  const prompt = countTokens(textOf(messages));

  it("not streamed: the request's model (not the answer's), prompt and completion tokens", async () => {
    const answer = await openai().chat.completions.create({ model: "gpt-4o-mini", messages });
    const [outcome] = await outcomes(1);
    expect(answer.usage?.prompt_tokens).toBe(prompt);
    expect(outcome).toMatchObject({ kind: "success", tokens: prompt + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("gpt-4o-mini", prompt, 0, REPLY_TOKENS));
  });

  it("streamed with stream_options.include_usage: the last chunk's usage", async () => {
    const stream = await openai().chat.completions.create({
      model: "gpt-4o",
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const _chunk of stream) {
      // read to the end
    }
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: prompt + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("gpt-4o", prompt, 0, REPLY_TOKENS));
  });

  it("streamed without include_usage: the model, token counts unknown", async () => {
    const stream = await openai().chat.completions.create({ model: "gpt-4o", messages, stream: true });
    for await (const _chunk of stream) {
      // read to the end
    }
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: 0 });
    expect(outcome?.usage).toEqual({ model: "gpt-4o" });
  });

  it("a long prompt sent again: its cached tokens are part of the input", async () => {
    const long = [
      { role: "system" as const, content: LONG },
      { role: "user" as const, content: "What is a key pool?" },
    ];
    const tokens = countTokens(textOf(long));
    expect(tokens).toBeGreaterThanOrEqual(1024);
    await openai().chat.completions.create({ model: "gpt-4.1-mini", messages: long });
    const again = await openai().chat.completions.create({ model: "gpt-4.1-mini", messages: long });
    const cached = again.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeGreaterThanOrEqual(1024);
    const [first, second] = await outcomes(2);
    expect(first?.usage).toEqual(usage("gpt-4.1-mini", tokens, 0, REPLY_TOKENS));
    expect(second?.usage).toEqual(usage("gpt-4.1-mini", tokens, cached, REPLY_TOKENS));
  });

  it("a body too large to hold for retries, model after messages: read as it streams to the provider", async () => {
    const big = [{ role: "user", content: "x ".repeat(RETRY_LIMIT) }];
    // openai-python's order: messages first, model after.
    const res = await fetch(`${url}/proxy/default/openai/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer not-a-key" },
      body: JSON.stringify({ messages: big, model: "gpt-4o-mini" }),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as {
      usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
    };
    const [outcome] = await outcomes(1);
    expect(outcome?.usage).toEqual(
      usage(
        "gpt-4o-mini",
        answer.usage.prompt_tokens,
        answer.usage.prompt_tokens_details.cached_tokens,
        REPLY_TOKENS,
      ),
    );
  });

  it("a failed attempt carries the model with no tokens; the key that answers, the counts", async () => {
    await openai("failover").chat.completions.create({ model: "gpt-4o-mini", messages });
    const [failed, succeeded] = await outcomes(2);
    expect(failed).toMatchObject({ kind: "rateLimited", statusCode: 429 });
    expect(failed?.usage).toEqual(usage("gpt-4o-mini", 0, 0, 0));
    expect(failed?.tokens).toBeUndefined();
    expect(succeeded?.usage).toEqual(usage("gpt-4o-mini", prompt, 0, REPLY_TOKENS));
  });

  it("a call that names no model: no usage for a model list", async () => {
    await openai().models.list();
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: 0 });
    expect(outcome?.usage).toBeUndefined();
  });
});

describe("Anthropic messages", () => {
  const messages = [{ role: "user" as const, content: "Say hello" }];
  const input = countTokens(textOf([undefined, messages]));

  it("not streamed: input and output tokens", async () => {
    await anthropic().messages.create({ model: "claude-opus-4-1", max_tokens: 256, messages });
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: input + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("claude-opus-4-1", input, 0, REPLY_TOKENS));
  });

  it("streamed: message_start's input, message_delta's output", async () => {
    const stream = anthropic().messages.stream({ model: "claude-haiku-4-5", max_tokens: 256, messages });
    await stream.finalMessage();
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: input + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("claude-haiku-4-5", input, 0, REPLY_TOKENS));
  });

  it("a cache_control prefix: written (input, not cached), then read (cached), streamed and not", async () => {
    const system = [{ type: "text" as const, text: LONG, cache_control: { type: "ephemeral" as const } }];
    const total = countTokens(textOf([system, messages]));
    const written = await anthropic().messages.create({
      model: "claude-opus-4-1",
      max_tokens: 256,
      system,
      messages,
    });
    const stream = anthropic().messages.stream({
      model: "claude-opus-4-1",
      max_tokens: 256,
      system,
      messages,
    });
    const read = await stream.finalMessage();
    const creation = written.usage.cache_creation_input_tokens ?? 0;
    const cached = read.usage.cache_read_input_tokens ?? 0;
    expect(creation).toBeGreaterThanOrEqual(1024);
    expect(cached).toBe(creation);
    const [first, second] = await outcomes(2);
    expect(first?.usage).toEqual(usage("claude-opus-4-1", total, 0, REPLY_TOKENS));
    expect(second?.usage).toEqual(usage("claude-opus-4-1", total, cached, REPLY_TOKENS));
    expect(second?.tokens).toBe(total + REPLY_TOKENS);
  });
});

describe("Gemini generateContent", () => {
  const contents = [{ role: "user", parts: [{ text: "Say hello" }] }];
  const prompt = countTokens(textOf([undefined, contents]));

  async function generate(method: string, body: unknown, query = ""): Promise<string> {
    const res = await fetch(`${url}/proxy/default/gemini/v1beta/models/${method}${query}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-goog-api-key": "not-a-key" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return res.text();
  }

  it("not streamed: the path's model, prompt and candidates tokens", async () => {
    await generate("gemini-2.5-flash:generateContent", { contents });
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: prompt + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("gemini-2.5-flash", prompt, 0, REPLY_TOKENS));
  });

  it("streamed (alt=sse): the last running totals", async () => {
    await generate("gemini-2.5-pro:streamGenerateContent", { contents }, "?alt=sse");
    const [outcome] = await outcomes(1);
    expect(outcome).toMatchObject({ kind: "success", tokens: prompt + REPLY_TOKENS });
    expect(outcome?.usage).toEqual(usage("gemini-2.5-pro", prompt, 0, REPLY_TOKENS));
  });

  it("thinking and a long prompt sent again: thoughts are output, cached content part of the input", async () => {
    const long = [{ role: "user", parts: [{ text: LONG }] }];
    const body = { contents: long, generationConfig: { thinkingConfig: { thinkingBudget: 512 } } };
    const tokens = countTokens(textOf([undefined, long]));
    await generate("gemini-2.5-flash:streamGenerateContent", body, "?alt=sse");
    const text = await generate("gemini-2.5-flash:generateContent", body);
    const meta = (
      JSON.parse(text) as { usageMetadata: { cachedContentTokenCount: number; thoughtsTokenCount: number } }
    ).usageMetadata;
    expect(meta.cachedContentTokenCount).toBeGreaterThanOrEqual(1024);
    expect(meta.thoughtsTokenCount).toBeGreaterThan(0);
    const [first, second] = await outcomes(2);
    const output = REPLY_TOKENS + meta.thoughtsTokenCount;
    expect(first?.usage).toEqual(usage("gemini-2.5-flash", tokens, 0, output));
    expect(second?.usage).toEqual(usage("gemini-2.5-flash", tokens, meta.cachedContentTokenCount, output));
    expect(second?.tokens).toBe(tokens + output);
  });
});
