/**
 * The report API's model and tokens by kind (`model`, `inputTokens`, `cachedInputTokens`,
 * `outputTokens`): accepted, validated with clear errors, and carried to the engine as
 * outcome.usage, with `tokens` defaulting to input + output for tokensPerMinute. Also through the
 * typed client, which sends them and reads the new error code.
 *
 * The dispensing API runs in process over a real HTTP server, with a KeyCoordinator (the seam the
 * shared state store uses) that records each outcome before handing it to the pool's engine: the
 * outcome is observed exactly as the engine receives it.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KeyPoolClient, KeyPoolClientError } from "keypool-operator/client";
import { KeyPoolSpec } from "../../src/api/keypool.ts";
import { createLogger } from "../../src/log.ts";
import { applyPool } from "../../src/pool/apply.ts";
import { keyId } from "../../src/pool/identity.ts";
import type { Outcome } from "../../src/pool/outcome.ts";
import { PoolRegistry } from "../../src/pool/registry.ts";
import { SessionAffinity } from "../../src/server/affinity.ts";
import { NoAuth } from "../../src/server/authorizer.ts";
import { createDispenserApp } from "../../src/server/dispenser.ts";
import { type KeyCoordinator, localCoordinator } from "../../src/state/coordinator.ts";

const KEY = "sk-test-report-usage-key-000001";
const KEY_ID = keyId(KEY);

let server: Server;
let url: string;
const reported: Outcome[] = [];

const recording: KeyCoordinator = {
  ...localCoordinator,
  report(runtime, ref, outcome, origin) {
    reported.push(outcome);
    return localCoordinator.report(runtime, ref, outcome, origin);
  },
};

beforeAll(async () => {
  const registry = new PoolRegistry();
  let token = 0;
  applyPool(registry, {
    ref: { namespace: "default", name: "openai" },
    uid: "openai",
    generation: 1,
    spec: KeyPoolSpec.parse({ provider: "openai" }),
    entries: [{ key: KEY, source: "test#a" }],
    engine: { clock: { now: () => Date.now() }, newLeaseToken: () => ++token },
  });
  const app = createDispenserApp({
    registry,
    auth: new NoAuth(),
    logger: createLogger({ level: "silent" }),
    clock: { now: () => Date.now() },
    mode: "standalone",
    defaultNamespace: "default",
    affinity: new SessionAffinity(),
    coordinator: recording,
  });
  server = createServer(app);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

beforeEach(() => {
  reported.length = 0;
});

async function report(body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/pools/default/openai/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ keyId: KEY_ID, ...body }),
  });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
}

describe("a report's model and tokens by kind", () => {
  it.each<[string, Record<string, unknown>, Partial<Outcome>]>([
    [
      "all four: the usage as given, tokens their input + output",
      { outcome: "success", model: "gpt-4o", inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 },
      {
        kind: "success",
        tokens: 2306,
        usage: { model: "gpt-4o", inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300 },
      },
    ],
    [
      "an explicit tokens is kept as it is",
      { outcome: "success", tokens: 5000, model: "gpt-4o", inputTokens: 100, outputTokens: 20 },
      { kind: "success", tokens: 5000, usage: { model: "gpt-4o", inputTokens: 100, outputTokens: 20 } },
    ],
    [
      "output tokens alone count as the tokens",
      { outcome: "success", outputTokens: 42 },
      { kind: "success", tokens: 42, usage: { outputTokens: 42 } },
    ],
    [
      "cached input equal to input is fine",
      { outcome: "success", model: "o4-mini", inputTokens: 1024, cachedInputTokens: 1024, outputTokens: 0 },
      {
        tokens: 1024,
        usage: { model: "o4-mini", inputTokens: 1024, cachedInputTokens: 1024, outputTokens: 0 },
      },
    ],
    [
      "a model alone, on a classified status code",
      { statusCode: 500, model: "gpt-4o-mini" },
      { kind: "serverError", statusCode: 500, usage: { model: "gpt-4o-mini" } },
    ],
  ])("%s", async (_name, body, expected) => {
    const res = await report(body);
    expect(res.status).toBe(200);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatchObject(expected);
    expect(reported[0]?.usage).toEqual(expected.usage);
    await report({ outcome: "success" }); // the key back to Healthy for the next case
  });

  it("a report without them has no usage, and no tokens", async () => {
    expect((await report({ outcome: "success", latencyMs: 20 })).status).toBe(200);
    expect(reported[0]).not.toHaveProperty("usage");
    expect(reported[0]).not.toHaveProperty("tokens");
  });
});

describe("refused usage, before anything reaches the key", () => {
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    [
      "more cached than input tokens",
      { inputTokens: 10, cachedInputTokens: 11 },
      "invalid_usage",
      /more than inputTokens/,
    ],
    [
      "cached tokens without input tokens",
      { cachedInputTokens: 5, outputTokens: 3 },
      "invalid_usage",
      /needs inputTokens/,
    ],
    ["a model longer than 200 characters", { model: "m".repeat(201) }, "invalid_request", /^model:/],
    ["an empty model", { model: "" }, "invalid_request", /^model:/],
    ["a model that is not a string", { model: 4 }, "invalid_request", /^model:/],
    ["negative input tokens", { inputTokens: -1 }, "invalid_request", /^inputTokens:/],
    ["fractional output tokens", { outputTokens: 1.5 }, "invalid_request", /^outputTokens:/],
    [
      "too many cached tokens",
      { inputTokens: 1, cachedInputTokens: 100_000_001 },
      "invalid_request",
      /^cachedInputTokens:/,
    ],
    ["tokens as a string", { inputTokens: "12" }, "invalid_request", /^inputTokens:/],
  ])("%s: 400 %s", async (_name, fields, code, message) => {
    const res = await report({ outcome: "success", ...fields });
    expect(res.status).toBe(400);
    expect(res.json.error?.code).toBe(code);
    expect(res.json.error?.message).toMatch(message);
    expect(reported).toHaveLength(0);
  });

  it("accepts the largest counts", async () => {
    const max = 100_000_000;
    const res = await report({
      outcome: "success",
      inputTokens: max,
      cachedInputTokens: max,
      outputTokens: max,
    });
    expect(res.status).toBe(200);
    expect(reported[0]?.usage).toEqual({ inputTokens: max, cachedInputTokens: max, outputTokens: max });
  });
});

describe("the typed client", () => {
  const client = () => new KeyPoolClient({ baseURL: url });

  it("reports a leased call's model and tokens by kind", async () => {
    const kp = client();
    const lease = await kp.getKey("default/openai");
    const state = await kp.report(lease, "success", {
      model: "gpt-4.1-mini",
      inputTokens: 1500,
      cachedInputTokens: 1024,
      outputTokens: 80,
    });
    expect(state).toEqual({ keyId: KEY_ID, state: "Healthy" });
    expect(reported[0]).toMatchObject({
      tokens: 1580,
      usage: { model: "gpt-4.1-mini", inputTokens: 1500, cachedInputTokens: 1024, outputTokens: 80 },
    });
  });

  it("withKey reports what a parsed answer says, with the request's model", async () => {
    await client().withKey(
      "default/openai",
      () => ({
        model: "claude-opus-4-1-20250805",
        usage: {
          input_tokens: 21,
          cache_creation_input_tokens: 188,
          cache_read_input_tokens: 1800,
          output_tokens: 393,
        },
      }),
      { model: "claude-opus-4-1" },
    );
    expect(reported[0]).toMatchObject({
      kind: "success",
      usage: { model: "claude-opus-4-1", inputTokens: 2009, cachedInputTokens: 1800, outputTokens: 393 },
    });
  });

  it("reads invalid_usage as its own error code", async () => {
    const err = await client()
      .report({ pool: "default/openai", keyId: KEY_ID }, "success", { inputTokens: 1, cachedInputTokens: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyPoolClientError);
    expect(err).toMatchObject({ code: "invalid_usage", status: 400 });
  });
});
