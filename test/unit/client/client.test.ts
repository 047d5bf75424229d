/**
 * KeyPoolClient against a small stand-in for the dispensing API (fake-api.ts): leases, tokens
 * read from a file on every call, typed errors, waiting on no_usable_key, reports, and withKey's
 * failover from a refused or failing key to one it has not tried.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Attempt,
  KeyPoolClient,
  type KeyPoolClientOptions,
  KeyPoolClientError,
} from "keypool-operator/client";
import { type FakeApi, type FakeKey, startFakeApi } from "./fake-api.ts";

const KEYS: FakeKey[] = [
  { key: "sk-test-client-unit-key-one-00001", keyId: "aaaaaaaaaaa1" },
  { key: "sk-test-client-unit-key-two-00002", keyId: "bbbbbbbbbbb2" },
  { key: "sk-test-client-unit-key-three-003", keyId: "ccccccccccc3" },
];
const TOKEN = "token-client-unit-0123456789";

let api: FakeApi;
let dir: string;

beforeAll(async () => {
  api = await startFakeApi(KEYS.map((k) => ({ ...k })));
  dir = await mkdtemp(join(tmpdir(), "keypool-client-"));
});

afterAll(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  api.requests.length = 0;
  api.answer.length = 0;
  api.tokens = undefined;
  api.retryAfterSeconds = 7;
  for (const k of api.keys) k.resting = false;
});

const client = (options: Partial<KeyPoolClientOptions> = {}) =>
  new KeyPoolClient({ baseURL: api.url, ...options });
const keyRequests = () => api.requests.filter((r) => r.url.includes("/key"));
const reports = () => api.requests.filter((r) => r.url.endsWith("/report")).map((r) => r.body);
const rejection = async (promise: Promise<unknown>): Promise<KeyPoolClientError> => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeyPoolClientError);
  return err as KeyPoolClientError;
};

describe("getKey", () => {
  it("hands out a lease: key, ids, expiry as a Date, and the pool that served", async () => {
    const lease = await client().getKey("team-a/openai");
    expect(lease).toMatchObject({
      keyId: expect.stringMatching(/^[a-c]{11}\d$/),
      leaseId: expect.stringMatching(/^lease-/),
      pool: { namespace: "team-a", name: "openai" },
      strategy: "RoundRobin",
    });
    expect(KEYS.map((k) => k.key)).toContain(lease.key);
    expect(lease.expiresAt).toBeInstanceOf(Date);
    expect(lease.expiresAt.getTime()).toBeGreaterThan(Date.now());
  });

  it.each([
    { name: '"namespace/name"', pool: "team-a/openai", options: {}, path: "/v1/pools/team-a/openai/key" },
    {
      name: "a name alone, in namespace default",
      pool: "openai",
      options: {},
      path: "/v1/pools/default/openai/key",
    },
    {
      name: "a name alone, in the client's namespace",
      pool: "openai",
      options: { namespace: "team-b" },
      path: "/v1/pools/team-b/openai/key",
    },
    {
      name: "a PoolRef",
      pool: { namespace: "team-c", name: "claude" },
      options: {},
      path: "/v1/pools/team-c/claude/key",
    },
  ])("takes a pool as $name", async ({ pool, options, path }) => {
    await client(options).getKey(pool);
    expect(keyRequests().map((r) => r.url)).toEqual([path]);
  });

  it.each(["a/b/c", "/openai", "team-a/", ""])("refuses the pool %j before any request", async (pool) => {
    expect((await rejection(client().getKey(pool))).code).toBe("invalid_request");
    expect(api.requests).toEqual([]);
  });

  it("sends the keys to exclude and the session", async () => {
    const lease = await client().getKey("openai", {
      exclude: ["aaaaaaaaaaa1", "bbbbbbbbbbb2"],
      session: "chat-42",
    });
    expect(lease.keyId).toBe("ccccccccccc3");
    const [request] = keyRequests();
    expect(new URL(request?.url ?? "", api.url).searchParams.get("exclude")).toBe(
      "aaaaaaaaaaa1,bbbbbbbbbbb2",
    );
    expect(request?.headers["x-keypool-session"]).toBe("chat-42");
  });

  it("sends no Authorization without a token, and the token with one", async () => {
    await client().getKey("openai");
    await client({ token: TOKEN }).getKey("openai");
    expect(keyRequests().map((r) => r.headers.authorization)).toEqual([undefined, `Bearer ${TOKEN}`]);
  });
});

describe("the token file", () => {
  it("is read again on every call: a rotated token is used at once", async () => {
    const file = join(dir, "token");
    api.tokens = new Set(["token-first-0123456789"]);
    await writeFile(file, "token-first-0123456789\n");
    const kp = client({ tokenFile: file });
    await kp.getKey("openai");
    api.tokens = new Set(["token-second-0123456789"]); // the old one is no longer accepted
    await writeFile(file, "token-second-0123456789\n");
    await kp.getKey("openai");
    expect(keyRequests().map((r) => r.headers.authorization)).toEqual([
      "Bearer token-first-0123456789",
      "Bearer token-second-0123456789",
    ]);
  });

  it("missing is token_unavailable, naming the file, before any request", async () => {
    const file = join(dir, "no-such-token");
    const err = await rejection(client({ tokenFile: file }).getKey("openai"));
    expect(err).toMatchObject({ code: "token_unavailable", status: undefined });
    expect(err.message).toBe(`Cannot read the token file ${file} (ENOENT)`);
    expect(api.requests).toEqual([]);
  });

  it("empty is token_unavailable", async () => {
    const file = join(dir, "empty-token");
    await writeFile(file, " \n");
    expect((await rejection(client({ tokenFile: file }).getKey("openai"))).code).toBe("token_unavailable");
  });

  it("and a token together are refused", () => {
    expect(() => client({ token: TOKEN, tokenFile: "/x" })).toThrow("Give token or tokenFile, not both");
  });
});

describe("errors", () => {
  it("an unknown pool is pool_not_found (404)", async () => {
    const err = await rejection(client().getKey("missing"));
    expect(err).toMatchObject({ code: "pool_not_found", status: 404, message: "KeyPool not found" });
  });

  it("a refused token is unauthenticated (401)", async () => {
    api.tokens = new Set([TOKEN]);
    const err = await rejection(client({ token: "token-wrong-0123456789" }).getKey("openai"));
    expect(err).toMatchObject({ code: "unauthenticated", status: 401 });
  });

  it("no usable key is no_usable_key with retryAfterSeconds, at once when maxWaitMs is 0 (the default)", async () => {
    for (const k of api.keys) k.resting = true;
    const started = performance.now();
    const err = await rejection(client().getKey("openai"));
    expect(err).toMatchObject({ code: "no_usable_key", status: 503, retryAfterSeconds: 7 });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("an answer that is not the API's JSON is invalid_response, without the key it may hold", async () => {
    api.answer.push((_req, res) =>
      res.writeHead(502, { "content-type": "text/html" }).end("<html>bad gateway</html>"),
    );
    expect(await rejection(client().getKey("openai"))).toMatchObject({
      code: "invalid_response",
      status: 502,
    });
    const leaked = JSON.stringify({ key: KEYS[0]?.key, keyId: 5 });
    api.answer.push((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(leaked));
    const err = await rejection(client().getKey("openai"));
    expect(err).toMatchObject({
      code: "invalid_response",
      message: "The KeyPool server's answer has no valid keyId",
    });
    expect(JSON.stringify({ message: err.message, stack: err.stack })).not.toContain(KEYS[0]?.key);
  });

  it("no answer within timeoutMs is timeout", async () => {
    api.answer.push(() => undefined); // never answers
    const err = await rejection(client({ timeoutMs: 200 }).getKey("openai"));
    expect(err).toMatchObject({
      code: "timeout",
      message: "GET /v1/pools/default/openai/key: no answer within 200 ms",
    });
  });

  it("a server that cannot be reached is network_error", async () => {
    const closed = await startFakeApi([]);
    await closed.close();
    const err = await rejection(new KeyPoolClient({ baseURL: closed.url }).getKey("openai"));
    expect(err.code).toBe("network_error");
    expect(err.cause).toBeInstanceOf(TypeError);
  });
});

describe("waiting on no_usable_key", () => {
  const restOnce = (seconds: number) => {
    api.answer.push((_req, res) => {
      res.writeHead(503, { "content-type": "application/json", "retry-after": String(seconds) });
      res.end(
        JSON.stringify({
          error: { code: "no_usable_key", message: "No usable key", retryAfterSeconds: seconds },
        }),
      );
    });
  };

  it("waits Retry-After and asks again when it fits in maxWaitMs", async () => {
    restOnce(1);
    const started = performance.now();
    const lease = await client({ maxWaitMs: 2000 }).getKey("openai");
    expect(lease.keyId).toBeDefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(keyRequests()).toHaveLength(2);
  });

  it("does not wait when Retry-After is beyond maxWaitMs", async () => {
    restOnce(5);
    const started = performance.now();
    expect((await rejection(client({ maxWaitMs: 2000 }).getKey("openai"))).code).toBe("no_usable_key");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("stops waiting when the caller aborts, with the abort's reason", async () => {
    restOnce(1);
    const controller = new AbortController();
    const reason = new Error("the caller gave up");
    setTimeout(() => controller.abort(reason), 100);
    const started = performance.now();
    await expect(client({ maxWaitMs: 5000 }).getKey("openai", { signal: controller.signal })).rejects.toBe(
      reason,
    );
    expect(performance.now() - started).toBeLessThan(900);
  });
});

describe("report", () => {
  it("sends an outcome with the lease id, and answers with the key's state", async () => {
    const kp = client();
    const lease = await kp.getKey("team-a/openai");
    expect(await kp.report(lease, "rateLimited", { retryAfterSeconds: 30 })).toEqual({
      keyId: lease.keyId,
      state: "Healthy",
    });
    expect(api.requests.at(-1)).toMatchObject({
      method: "POST",
      url: "/v1/pools/team-a/openai/report",
      body: { leaseId: lease.leaseId, outcome: "rateLimited", retryAfterSeconds: 30 },
    });
  });

  it("sends an HTTP answer as statusCode, rate-limit headers and body, for the server to classify", async () => {
    const kp = client();
    const lease = await kp.getKey("openai");
    await kp.report(lease, {
      statusCode: 429,
      headers: {
        "retry-after": "20",
        authorization: `Bearer ${lease.key}`,
        "x-ratelimit-remaining-tokens": "0",
      },
      body: { error: { code: "rate_limit_exceeded" } },
    });
    expect(reports()).toEqual([
      {
        leaseId: lease.leaseId,
        statusCode: 429,
        headers: { "retry-after": "20", "x-ratelimit-remaining-tokens": "0" },
        body: { error: { code: "rate_limit_exceeded" } },
      },
    ]);
    expect(JSON.stringify(api.requests.at(-1))).not.toContain(lease.key);
  });

  it("sends a fetch Response's status, headers and error body, leaving the body to the caller", async () => {
    const kp = client();
    const lease = await kp.getKey("openai");
    const res = new Response('{"error":{"code":"insufficient_quota"}}', {
      status: 429,
      headers: { "x-ratelimit-limit-requests": "500" },
    });
    await kp.report(lease, res, { latencyMs: 12 });
    expect(reports()).toEqual([
      {
        leaseId: lease.leaseId,
        statusCode: 429,
        headers: { "x-ratelimit-limit-requests": "500" },
        body: '{"error":{"code":"insufficient_quota"}}',
        latencyMs: 12,
      },
    ]);
    expect(await res.json()).toEqual({ error: { code: "insufficient_quota" } });
  });

  it("sends the call's model and tokens by kind", async () => {
    const kp = client();
    const lease = await kp.getKey("team-a/openai");
    const usage = {
      model: "claude-sonnet-4-5",
      inputTokens: 1200,
      cachedInputTokens: 1000,
      outputTokens: 80,
    };
    await kp.report(lease, "success", { ...usage, latencyMs: 900 });
    expect(api.requests.at(-1)?.body).toEqual({
      leaseId: lease.leaseId,
      outcome: "success",
      ...usage,
      latencyMs: 900,
    });
  });

  it("reports by keyId when the lease expired meanwhile", async () => {
    const kp = client();
    const lease = await kp.getKey("openai");
    api.answer.push((_req, res) =>
      res
        .writeHead(404, { "content-type": "application/json" })
        .end('{"error":{"code":"lease_not_found","message":"Lease is not open"}}'),
    );
    expect(await kp.report(lease, "success")).toEqual({ keyId: lease.keyId, state: "Healthy" });
    expect(reports()).toEqual([
      { leaseId: lease.leaseId, outcome: "success" },
      { keyId: lease.keyId, outcome: "success" },
    ]);
  });

  it("takes a pool and keyId alone", async () => {
    await client().report({ pool: "team-a/openai", keyId: "aaaaaaaaaaa1" }, "serverError");
    expect(api.requests.at(-1)).toMatchObject({
      url: "/v1/pools/team-a/openai/report",
      body: { keyId: "aaaaaaaaaaa1", outcome: "serverError" },
    });
  });
});

describe("withKey", () => {
  /** fn answering with `statuses[n]` for attempt n, recording which key each attempt got. */
  const answering = (statuses: number[], seen: string[]) => async (key: string, attempt: Attempt) => {
    seen.push(key);
    expect(attempt.lease.key).toBe(key);
    const status = statuses[attempt.number - 1] ?? 200;
    return new Response(JSON.stringify({ status }), {
      status,
      headers: status === 429 ? { "retry-after": "20" } : {},
    });
  };

  it("moves from a key answering 429 to another, reports both, and returns the good answer", async () => {
    const seen: string[] = [];
    const res = await client().withKey("openai", answering([429, 200], seen));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 200 });
    expect(new Set(seen).size).toBe(2);
    const [first, second] = keyRequests().map((r) => new URL(r.url, api.url).searchParams.get("exclude"));
    expect(first).toBeNull();
    expect(second).toBe(KEYS.find((k) => k.key === seen[0])?.keyId);
    expect(reports()).toMatchObject([
      {
        statusCode: 429,
        headers: { "retry-after": "20" },
        body: '{"status":429}',
        latencyMs: expect.any(Number),
      },
      { statusCode: 200, headers: {} },
    ]);
  });

  it("moves on from an SDK's thrown 429, and reports the success's tokens", async () => {
    const result = await client().withKey("openai", (_key, { number }) => {
      if (number === 1)
        throw OpenAI.APIError.generate(
          429,
          { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
          undefined,
          new Headers({ "retry-after-ms": "1500" }),
        );
      return { id: "chatcmpl-1", usage: { total_tokens: 42 } };
    });
    expect(result.id).toBe("chatcmpl-1");
    expect(reports()).toMatchObject([
      {
        statusCode: 429,
        headers: { "retry-after-ms": "1500" },
        body: { error: { code: "rate_limit_exceeded", type: "requests" } },
      },
      { outcome: "success", tokens: 42 },
    ]);
  });

  it("reports the success's model and tokens by kind, the answer's model unless `model` names the request's", async () => {
    const answer = {
      id: "chatcmpl-2",
      model: "gpt-4o-2024-08-06",
      usage: {
        prompt_tokens: 2006,
        completion_tokens: 300,
        total_tokens: 2306,
        prompt_tokens_details: { cached_tokens: 1920 },
      },
    };
    await client().withKey("openai", () => answer);
    await client().withKey("openai", () => answer, { model: "gpt-4o" });
    const usage = { inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300, tokens: 2306 };
    expect(reports()).toMatchObject([
      { outcome: "success", model: "gpt-4o-2024-08-06", ...usage },
      { outcome: "success", model: "gpt-4o", ...usage },
    ]);
  });

  it("names the request's model on a failed attempt too, with no token counts", async () => {
    await client().withKey(
      "openai",
      (_key, { number }) => (number === 1 ? new Response("{}", { status: 500 }) : { choices: [] }),
      { model: "gpt-4o" },
    );
    const [failed, succeeded] = reports() as Array<Record<string, unknown>>;
    expect(failed).toMatchObject({ statusCode: 500, model: "gpt-4o" });
    expect(succeeded).toMatchObject({ outcome: "success", model: "gpt-4o" });
    for (const report of [failed, succeeded]) expect(report).not.toHaveProperty("inputTokens");
  });

  it("moves on from a network error", async () => {
    const result = await client().withKey("openai", (_key, { number }) => {
      if (number === 1) throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      return "ok";
    });
    expect(result).toBe("ok");
    expect(reports()).toMatchObject([{ outcome: "networkError" }, { outcome: "success" }]);
  });

  it.each([400, 404, 422])("does not retry a %i: it is about the request", async (status) => {
    const seen: string[] = [];
    const res = await client().withKey("openai", answering([status], seen));
    expect(res.status).toBe(status);
    expect(seen).toHaveLength(1);
    expect(reports()).toMatchObject([{ statusCode: status }]);
  });

  it("rethrows the caller's own error at once, reported as requestError", async () => {
    const bug = new Error("a bug in the caller");
    let calls = 0;
    await expect(
      client().withKey("openai", () => {
        calls++;
        throw bug;
      }),
    ).rejects.toBe(bug);
    expect(calls).toBe(1);
    expect(reports()).toMatchObject([{ outcome: "requestError" }]);
  });

  it("stops after maxAttempts with the last answer", async () => {
    const seen: string[] = [];
    const res = await client({ maxAttempts: 2 }).withKey("openai", answering([500, 503, 200], seen));
    expect(res.status).toBe(503);
    expect(seen).toHaveLength(2);
    expect(reports()).toMatchObject([{ statusCode: 500 }, { statusCode: 503 }]);
  });

  it("throws the last error after maxAttempts", async () => {
    const err = OpenAI.APIError.generate(
      500,
      { error: { message: "server error" } },
      undefined,
      new Headers(),
    );
    await expect(client().withKey("openai", () => Promise.reject(err), { maxAttempts: 3 })).rejects.toBe(err);
    expect(keyRequests()).toHaveLength(3);
  });

  it("ends with the last answer when no key it has not tried is usable", async () => {
    (api.keys[2] as FakeKey).resting = true;
    const seen: string[] = [];
    const res = await client().withKey("openai", answering([429, 429, 200], seen), { maxAttempts: 5 });
    expect(res.status).toBe(429);
    expect(seen).toHaveLength(2);
    expect(keyRequests()).toHaveLength(3); // the third answered no_usable_key
  });

  it("waits when no untried key is usable and Retry-After fits in maxWaitMs, then tries every key again", async () => {
    api.retryAfterSeconds = 1;
    const started = performance.now();
    const res = await client({ maxWaitMs: 3000 }).withKey("openai", (_key, { number }) => {
      if (number > 1) return new Response("{}", { status: 200 });
      for (const k of api.keys) k.resting = true; // every key cools down ...
      setTimeout(() => api.keys.forEach((k) => (k.resting = false)), 300); // ... for a while
      return new Response("{}", { status: 429, headers: { "retry-after": "1" } });
    });
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    const excludes = keyRequests().map((r) => new URL(r.url, api.url).searchParams.get("exclude"));
    expect(excludes).toEqual([null, expect.stringMatching(/^\w{12}$/), null]);
    expect(reports()).toMatchObject([{ statusCode: 429 }, { statusCode: 200 }]);
  });

  it("throws no_usable_key when it never got a key", async () => {
    for (const k of api.keys) k.resting = true;
    let calls = 0;
    const err = await rejection(client().withKey("openai", () => calls++));
    expect(err).toMatchObject({ code: "no_usable_key", retryAfterSeconds: 7 });
    expect(calls).toBe(0);
  });

  it("keeps the call's result when its report fails, and tells onReportError", async () => {
    const failures: unknown[] = [];
    api.answer.push(
      (_req, res) =>
        res.end(
          JSON.stringify({
            key: KEYS[0]?.key,
            keyId: KEYS[0]?.keyId,
            leaseId: "l-1",
            pool: { namespace: "default", name: "openai" },
            expiresAt: new Date().toISOString(),
          }),
        ),
      (_req, res) => res.writeHead(500).end('{"error":{"code":"internal","message":"Internal error"}}'),
    );
    const result = await client({ onReportError: (e) => failures.push(e) }).withKey("openai", () => "done");
    expect(result).toBe("done");
    expect(failures).toMatchObject([{ code: "internal", status: 500 }]);
  });

  it("passes its signal on to fn", async () => {
    const controller = new AbortController();
    let got: AbortSignal | undefined;
    await client().withKey("openai", (_key, attempt) => (got = attempt.signal), {
      signal: controller.signal,
    });
    expect(got).toBe(controller.signal);
  });
});
