import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OutcomeKind } from "../../../src/pool/outcome.ts";
import { getProvider } from "../../../src/providers/index.ts";
import {
  type FakeProvider,
  type FakeProviderName,
  type KeyBehaviour,
  startFakeProvider,
} from "../../fakes/index.ts";
import { eventually } from "../../support/eventually.ts";
import { classify, generate, parseSse, probe, PROVIDERS, readStream, reply } from "./helpers.ts";

const fakes = {} as Record<FakeProviderName, FakeProvider>;

beforeAll(async () => {
  for (const name of PROVIDERS)
    fakes[name] = await startFakeProvider(name, { "key-valid": { kind: "valid" } });
});
afterAll(async () => {
  await Promise.all(PROVIDERS.map((name) => fakes[name].close()));
});
afterEach(() => {
  for (const name of PROVIDERS) fakes[name].reset();
});

/** A key of its own for each case, so cases never share state. */
let keyCounter = 0;
function freshKey(fake: FakeProvider, behaviour?: KeyBehaviour): string {
  const key = `key-${fake.name}-${++keyCounter}-abcdefghijklmnop`;
  if (behaviour) fake.setKey(key, behaviour);
  return key;
}

const cases = <T>(rows: T[]) => PROVIDERS.flatMap((name) => rows.map((row) => [name, row] as const));

describe("each behaviour is answered the way the provider profile classifies as meant", () => {
  it.each(
    cases<[string, KeyBehaviour | undefined, OutcomeKind, number]>([
      ["a valid key succeeds", { kind: "valid" }, "success", 200],
      ["an invalid key is refused as an invalid key", { kind: "invalid" }, "invalidKey", 0],
      ["a key nobody set is refused as an invalid key", undefined, "invalidKey", 0],
      ["an exhausted quota reads as quotaExhausted", { kind: "quotaExhausted" }, "quotaExhausted", 0],
      ["a server error reads as serverError", { kind: "serverError" }, "serverError", 500],
      [
        "a server error with another status keeps it",
        { kind: "serverError", status: 502 },
        "serverError",
        502,
      ],
      ["a gateway timeout reads as serverError", { kind: "serverError", status: 504 }, "serverError", 504],
      ["an overloaded provider reads as providerOverloaded", { kind: "overloaded" }, "providerOverloaded", 0],
      ["a slow key still succeeds", { kind: "slow", delayMs: 20 }, "success", 200],
    ]).map(([name, [sentence, behaviour, kind, status]]) => [
      `${name}: ${sentence}`,
      name,
      behaviour,
      kind,
      status,
    ]),
  )("%s", async (_sentence, name, behaviour, kind, status) => {
    const fake = fakes[name];
    const answer = await reply(generate(fake, freshKey(fake, behaviour)));
    expect(classify(name, answer).kind).toBe(kind);
    if (status !== 0) expect(answer.status).toBe(status);
  });

  it.each<[string, FakeProviderName, number, string]>([
    ["OpenAI refuses a bad key with 401 invalid_api_key", "openai", 401, "invalid_api_key"],
    ["Anthropic refuses a bad key with 401 authentication_error", "anthropic", 401, "authentication_error"],
    ["Gemini refuses a bad key with 400 and ErrorInfo API_KEY_INVALID", "google", 400, "api_key_invalid"],
  ])("%s", async (_sentence, name, status, reason) => {
    const answer = await reply(generate(fakes[name], freshKey(fakes[name], { kind: "invalid" })));
    expect(answer.status).toBe(status);
    expect(classify(name, answer).reason).toBe(reason);
  });

  it.each<[string, FakeProviderName, number, string]>([
    ["OpenAI answers an empty account with 429 insufficient_quota", "openai", 429, "insufficient_quota"],
    [
      "Anthropic answers an empty account with 400 credit balance too low",
      "anthropic",
      400,
      "credit_balance_too_low",
    ],
    [
      "Gemini answers a spent daily quota with 429 and a per-day quota id",
      "google",
      429,
      "daily_quota_exceeded",
    ],
  ])("%s", async (_sentence, name, status, reason) => {
    const answer = await reply(generate(fakes[name], freshKey(fakes[name], { kind: "quotaExhausted" })));
    expect(answer.status).toBe(status);
    expect(classify(name, answer).reason).toBe(reason);
  });

  it.each<[string, FakeProviderName, number]>([
    ["OpenAI says it is overloaded with 503", "openai", 503],
    ["Anthropic says it is overloaded with 529", "anthropic", 529],
    ["Gemini says the model is overloaded with 503", "google", 503],
  ])("%s", async (_sentence, name, status) => {
    const answer = await reply(generate(fakes[name], freshKey(fakes[name], { kind: "overloaded" })));
    expect(answer.status).toBe(status);
  });

  it.each(PROVIDERS)(
    "%s: a flaky key fails every Nth request with a 500 and succeeds otherwise",
    async (name) => {
      const fake = fakes[name];
      const key = freshKey(fake, { kind: "flaky", failEvery: 3 });
      const kinds: string[] = [];
      for (let i = 0; i < 6; i++) kinds.push(classify(name, await reply(generate(fake, key))).kind);
      expect(kinds).toEqual(["success", "success", "serverError", "success", "success", "serverError"]);
    },
  );
});

describe("a rate-limited key", () => {
  it.each(PROVIDERS)(
    "%s: rests until about retryAfterSeconds from now, as the profile reads it",
    async (name) => {
      const fake = fakes[name];
      const key = freshKey(fake, { kind: "rateLimited", retryAfterSeconds: 30 });
      const before = Date.now();
      const answer = await reply(generate(fake, key));
      const outcome = classify(name, answer);
      expect(answer.status).toBe(429);
      expect(outcome.kind).toBe("rateLimited");
      expect(outcome.untilMs).toBeGreaterThanOrEqual(before + 29_000);
      expect(outcome.untilMs).toBeLessThanOrEqual(Date.now() + 31_000);
    },
  );

  it.each<[string, FakeProviderName, string[]]>([
    [
      "OpenAI sends retry-after and exhausted x-ratelimit-* headers",
      "openai",
      ["retry-after", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
    ],
    [
      "Anthropic sends retry-after and exhausted anthropic-ratelimit-* headers",
      "anthropic",
      ["retry-after", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"],
    ],
  ])("%s", async (_sentence, name, headers) => {
    const answer = await reply(
      generate(fakes[name], freshKey(fakes[name], { kind: "rateLimited", retryAfterSeconds: 30 })),
    );
    for (const header of headers) expect(answer.headers.get(header), header).toBeTruthy();
    expect(answer.headers.get(headers[1] ?? "")).toBe("0");
  });

  it("Gemini states the wait as RetryInfo and the per-minute quota in QuotaFailure", async () => {
    const answer = await reply(
      generate(fakes.google, freshKey(fakes.google, { kind: "rateLimited", retryAfterSeconds: 30 })),
    );
    const details = (JSON.parse(answer.text) as { error: { details: Record<string, unknown>[] } }).error
      .details;
    expect(details).toContainEqual({
      "@type": "type.googleapis.com/google.rpc.RetryInfo",
      retryDelay: "30s",
    });
    expect(JSON.stringify(details)).toContain("GenerateRequestsPerMinutePerProjectPerModel");
  });

  it.each(PROVIDERS)("%s: is valid again once the stated time has passed", async (name) => {
    const fake = fakes[name];
    const key = freshKey(fake, { kind: "rateLimited", retryAfterSeconds: 1 });
    const outcome = classify(name, await reply(generate(fake, key)));
    expect(outcome.kind).toBe("rateLimited");
    expect(outcome.untilMs).toBeLessThanOrEqual(Date.now() + 1_000);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, (outcome.untilMs ?? 0) - Date.now())));
    expect(classify(name, await reply(generate(fake, key))).kind).toBe("success");
  });
});

describe("the profile's probe", () => {
  it.each(PROVIDERS)("%s: gets 200 and a model list for a valid key", async (name) => {
    const answer = await probe(fakes[name], "key-valid");
    expect(answer.status).toBe(200);
    expect(classify(name, answer).kind).toBe("success");
    const body = JSON.parse(answer.text) as Record<string, unknown>;
    expect(body[name === "google" ? "models" : "data"]).toEqual(expect.arrayContaining([expect.any(Object)]));
  });

  it.each(PROVIDERS)("%s: gets the invalid-key answer for an invalid key", async (name) => {
    const answer = await probe(fakes[name], freshKey(fakes[name], { kind: "invalid" }));
    expect(classify(name, answer).kind).toBe("invalidKey");
  });

  it.each(PROVIDERS)("%s: follows the key's behaviour too", async (name) => {
    const answer = await probe(
      fakes[name],
      freshKey(fakes[name], { kind: "rateLimited", retryAfterSeconds: 30 }),
    );
    expect(classify(name, answer).kind).toBe("rateLimited");
  });
});

describe("successful answers", () => {
  it.each<[string, FakeProviderName, (body: never) => unknown, unknown]>([
    [
      "OpenAI answers a chat.completion with the assistant message and usage",
      "openai",
      (b: {
        object: string;
        choices: { message: { role: string }; finish_reason: string }[];
        usage: object;
      }) => [
        b.object,
        b.choices[0]?.message.role,
        b.choices[0]?.finish_reason,
        Object.keys(b.usage).slice(0, 3),
      ],
      ["chat.completion", "assistant", "stop", ["prompt_tokens", "completion_tokens", "total_tokens"]],
    ],
    [
      "Anthropic answers a message with text content and usage",
      "anthropic",
      (b: {
        type: string;
        role: string;
        content: { type: string }[];
        stop_reason: string;
        usage: object;
      }) => [
        b.type,
        b.role,
        b.content[0]?.type,
        b.stop_reason,
        Object.keys(b.usage).includes("output_tokens"),
      ],
      ["message", "assistant", "text", "end_turn", true],
    ],
    [
      "Gemini answers candidates with usageMetadata",
      "google",
      (b: { candidates: { content: { role: string }; finishReason: string }[]; usageMetadata: object }) => [
        b.candidates[0]?.content.role,
        b.candidates[0]?.finishReason,
        Object.keys(b.usageMetadata).slice(0, 3),
      ],
      ["model", "STOP", ["promptTokenCount", "candidatesTokenCount", "totalTokenCount"]],
    ],
  ])("%s", async (_sentence, name, pick, expected) => {
    const answer = await reply(generate(fakes[name], "key-valid"));
    expect(answer.status).toBe(200);
    expect(pick(JSON.parse(answer.text) as never)).toEqual(expected);
  });

  it.each<[string, FakeProviderName, object]>([
    [
      "OpenAI reports its x-ratelimit-* windows",
      "openai",
      { limitRequests: 500, limitTokens: 200_000, remainingRequests: expect.any(Number) as unknown },
    ],
    [
      "Anthropic reports its anthropic-ratelimit-* windows",
      "anthropic",
      {
        limitRequests: 50,
        remainingRequests: expect.any(Number) as unknown,
        resetRequestsAtMs: expect.any(Number),
      },
    ],
  ])("%s", async (_sentence, name, expected) => {
    const outcome = classify(name, await reply(generate(fakes[name], "key-valid")));
    expect(outcome.rateLimit).toMatchObject(expected);
  });

  it("OpenAI counts requests down within the minute", async () => {
    const key = freshKey(fakes.openai, { kind: "valid" });
    const first = classify("openai", await reply(generate(fakes.openai, key)));
    const second = classify("openai", await reply(generate(fakes.openai, key)));
    expect([first.rateLimit?.remainingRequests, second.rateLimit?.remainingRequests]).toEqual([499, 498]);
  });

  it("Gemini sends no rate-limit headers, like the real API", async () => {
    expect(classify("google", await reply(generate(fakes.google, "key-valid"))).rateLimit).toBeUndefined();
  });

  it.each<[string, object, (embedding: unknown) => number]>([
    ["OpenAI embeds as floats", { encoding_format: "float" }, (e) => (e as number[]).length],
    [
      "OpenAI embeds as base64 little-endian float32, as the SDK asks by default",
      { encoding_format: "base64" },
      (e) => Buffer.from(e as string, "base64").length / 4,
    ],
  ])("%s", async (_sentence, format, dimensions) => {
    const res = await fetch(`${fakes.openai.url}/v1/embeddings`, {
      method: "POST",
      headers: { authorization: "Bearer key-valid", "content-type": "application/json" },
      body: JSON.stringify({ model: "text-embedding-3-small", input: ["a", "b"], dimensions: 8, ...format }),
    });
    const body = (await res.json()) as { object: string; data: { index: number; embedding: unknown }[] };
    expect(body.object).toBe("list");
    expect(body.data.map((d) => [d.index, dimensions(d.embedding)])).toEqual([
      [0, 8],
      [1, 8],
    ]);
  });
});

describe("streaming", () => {
  it("OpenAI streams chat.completion.chunk data, a usage chunk, then [DONE]", async () => {
    const res = await generate(fakes.openai, "key-valid", { stream: true });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { text, reads } = await readStream(res);
    const events = parseSse(text);
    expect(reads).toBeGreaterThan(1);
    expect(events.at(-1)?.data).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(chunks.length).toBeGreaterThan(3);
    expect(new Set(chunks.map((c) => c["object"]))).toEqual(new Set(["chat.completion.chunk"]));
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { total_tokens: expect.any(Number) as unknown },
    });
    expect(chunks.slice(0, -1).every((c) => c["usage"] === null)).toBe(true);
  });

  it("OpenAI sends no usage chunk when stream_options.include_usage is not set", async () => {
    const res = await fetch(`${fakes.openai.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer key-valid", "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }),
    });
    const chunks = parseSse((await readStream(res)).text).slice(0, -1);
    expect(chunks.some((e) => "usage" in (JSON.parse(e.data) as object))).toBe(false);
  });

  it("Anthropic streams its events in order, with usage in message_start and message_delta", async () => {
    const res = await generate(fakes.anthropic, "key-valid", { stream: true });
    const { text, reads } = await readStream(res);
    const events = parseSse(text);
    expect(reads).toBeGreaterThan(1);
    const names = events.map((e) => e.event);
    expect(names.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"]);
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(names.filter((n) => n === "content_block_delta").length).toBeGreaterThan(2);
    for (const e of events) expect((JSON.parse(e.data) as { type: string }).type).toBe(e.event);
    const delta = JSON.parse(events.at(-2)?.data ?? "{}") as { usage: { output_tokens: number } };
    expect(delta.usage.output_tokens).toBeGreaterThan(0);
  });

  it("Gemini streams GenerateContentResponse events with alt=sse, usage in the last", async () => {
    const res = await generate(fakes.google, "key-valid", { stream: true });
    const { text, reads } = await readStream(res);
    expect(reads).toBeGreaterThan(1);
    const chunks = parseSse(text).map(
      (e) => JSON.parse(e.data) as { candidates: { finishReason?: string }[]; usageMetadata: object },
    );
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.at(-1)?.candidates[0]?.finishReason).toBe("STOP");
    expect(chunks.at(-1)?.usageMetadata).toMatchObject({ candidatesTokenCount: chunks.length });
  });

  it("Gemini streams one JSON array without alt=sse", async () => {
    const res = await fetch(`${fakes.google.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent`, {
      method: "POST",
      headers: { "x-goog-api-key": "key-valid", "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] }),
    });
    const chunks = JSON.parse((await readStream(res)).text) as unknown[];
    expect(chunks.length).toBeGreaterThan(3);
  });

  it.each(PROVIDERS)("%s: a client leaving mid-stream is recorded as aborted", async (name) => {
    const fake = fakes[name];
    const controller = new AbortController();
    const res = await generate(fake, "key-valid", { stream: true, signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    await eventually(async () => fake.requests[0]?.aborted, 2_000, 10);
  });

  it.each(PROVIDERS)("%s: a client giving up on a slow key is recorded as aborted", async (name) => {
    const fake = fakes[name];
    const key = freshKey(fake, { kind: "slow", delayMs: 5_000 });
    await expect(generate(fake, key, { signal: AbortSignal.timeout(50) })).rejects.toThrow();
    await eventually(async () => fake.requests[0]?.aborted, 2_000, 10);
  });

  it.each(PROVIDERS)("%s: a stream read to the end is not aborted", async (name) => {
    await readStream(await generate(fakes[name], "key-valid", { stream: true }));
    await eventually(async () => fakes[name].requests.length === 1, 2_000, 10);
    expect(fakes[name].requests[0]?.aborted).toBe(false);
  });
});

describe("recorded requests", () => {
  it.each(PROVIDERS)("%s: records method, path, key, headers and body in order", async (name) => {
    const fake = fakes[name];
    await probe(fake, "key-valid");
    await reply(generate(fake, "key-other"));
    expect(fake.requests.map((r) => [r.method, r.key])).toEqual([
      ["GET", "key-valid"],
      ["POST", "key-other"],
    ]);
    expect(fake.requests[0]?.path).toBe(getProvider(name).probe.path);
    expect(fake.requests[1]?.body).toMatchObject({});
    expect(fake.requests[1]?.headers["content-type"]).toBe("application/json");
    expect(fake.requests[1]?.at).toBeGreaterThanOrEqual(fake.requests[0]?.at ?? Infinity);
  });

  it("Gemini takes the key from ?key= too, and keeps it out of the recorded path", async () => {
    const answer = await reply(fetch(`${fakes.google.url}/v1beta/models?key=key-valid&pageSize=5`));
    expect(answer.status).toBe(200);
    expect(fakes.google.requests[0]).toMatchObject({ key: "key-valid", path: "/v1beta/models?pageSize=5" });
  });

  it("reset forgets requests but keeps the keys", async () => {
    const key = freshKey(fakes.openai, { kind: "quotaExhausted" });
    await probe(fakes.openai, key);
    fakes.openai.reset();
    expect(fakes.openai.requests).toEqual([]);
    expect(classify("openai", await probe(fakes.openai, key)).kind).toBe("quotaExhausted");
  });

  it("keys given at start and set later both apply", async () => {
    const fake = await startFakeProvider("anthropic", { "key-a": { kind: "overloaded" } });
    try {
      fake.setKey("key-b", { kind: "valid" });
      expect([(await probe(fake, "key-a")).status, (await probe(fake, "key-b")).status]).toEqual([529, 200]);
      expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await fake.close();
    }
  });
});

describe("requests the provider refuses whatever the key", () => {
  it.each<[string, FakeProviderName, RequestInit & { path: string }, number, OutcomeKind]>([
    ["OpenAI without an Authorization header", "openai", { path: "/v1/models" }, 401, "invalidKey"],
    [
      "Anthropic without x-api-key",
      "anthropic",
      { path: "/v1/models", headers: { "anthropic-version": "2023-06-01" } },
      401,
      "invalidKey",
    ],
    [
      "Anthropic without anthropic-version",
      "anthropic",
      { path: "/v1/models", headers: { "x-api-key": "key-valid" } },
      400,
      "requestError",
    ],
    ["Gemini without any key", "google", { path: "/v1beta/models" }, 403, "requestError"],
    [
      "OpenAI on an unknown path",
      "openai",
      { path: "/v1/nope", headers: { authorization: "Bearer key-valid" } },
      404,
      "requestError",
    ],
    [
      "Anthropic on an unknown path",
      "anthropic",
      { path: "/v1/nope", headers: { "x-api-key": "key-valid", "anthropic-version": "2023-06-01" } },
      404,
      "requestError",
    ],
    [
      "Gemini on an unknown path",
      "google",
      { path: "/v1beta/nope", headers: { "x-goog-api-key": "key-valid" } },
      404,
      "requestError",
    ],
    [
      "OpenAI with a malformed JSON body",
      "openai",
      {
        path: "/v1/chat/completions",
        method: "POST",
        body: "{nope",
        headers: { authorization: "Bearer key-valid" },
      },
      400,
      "requestError",
    ],
    [
      "Anthropic with a malformed JSON body",
      "anthropic",
      {
        path: "/v1/messages",
        method: "POST",
        body: "{nope",
        headers: { "x-api-key": "key-valid", "anthropic-version": "2023-06-01" },
      },
      400,
      "requestError",
    ],
    [
      "Gemini with a malformed JSON body",
      "google",
      {
        path: "/v1beta/models/gemini-2.5-flash:generateContent",
        method: "POST",
        body: "{nope",
        headers: { "x-goog-api-key": "key-valid" },
      },
      400,
      "requestError",
    ],
    [
      "OpenAI without messages",
      "openai",
      {
        path: "/v1/chat/completions",
        method: "POST",
        body: '{"model":"gpt-4o-mini"}',
        headers: { authorization: "Bearer key-valid" },
      },
      400,
      "requestError",
    ],
    [
      "Anthropic without max_tokens",
      "anthropic",
      {
        path: "/v1/messages",
        method: "POST",
        body: '{"model":"m","messages":[]}',
        headers: { "x-api-key": "key-valid", "anthropic-version": "2023-06-01" },
      },
      400,
      "requestError",
    ],
  ])("%s", async (_sentence, name, { path, ...init }, status, kind) => {
    const answer = await reply(fetch(`${fakes[name].url}${path}`, init));
    expect(answer.status).toBe(status);
    expect(classify(name, answer).kind).toBe(kind);
    expect(() => JSON.parse(answer.text) as unknown).not.toThrow();
  });

  it("Gemini wraps errors of a JSON-array stream in an array", async () => {
    const res = await fetch(`${fakes.google.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent`, {
      method: "POST",
      headers: { "x-goog-api-key": freshKey(fakes.google, { kind: "invalid" }) },
      body: "{}",
    });
    const answer = await reply(Promise.resolve(res));
    expect(JSON.parse(answer.text)).toEqual([
      expect.objectContaining({ error: expect.any(Object) as unknown }),
    ]);
    expect(classify("google", answer).kind).toBe("invalidKey");
  });

  it("no answer quotes a whole key", async () => {
    const key = freshKey(fakes.openai, { kind: "invalid" });
    const answer = await reply(generate(fakes.openai, key));
    expect(answer.text).not.toContain(key);
  });
});
