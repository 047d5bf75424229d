/**
 * Drop-in for the key-pool managers users come from (../shared/seeds): `keypool serve` started
 * the way the key-pool-manager README starts its service (only `GPT_4_KEYS` and `KEY_POOL_PORT`),
 * then every request of that README, sent as its users send them (curl -d: no JSON content
 * type), with the fields and behaviour the README gives. Also the agent key manager's /api
 * routes, model names with dots, the health-check tick, and `npm start` with `*_KEYS` set.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { freePort } from "../support/control-plane/control-plane.ts";
import { eventually } from "../support/eventually.ts";
import { type ServeProcess, spawnServe } from "../support/serve-process.ts";

const KEY_A = "sk-proj-test-compat-aaaaaaaaaaaa";
const KEY_B = "sk-proj-test-compat-bbbbbbbbbbbb";
const KEY_C = "sk-proj-test-compat-new-cccccccc";
const ALL_KEYS = [KEY_A, KEY_B, KEY_C];

/**
 * Variables to lay over this process's environment: `extra`, and every pool or port variable a
 * developer may have set unset (undefined: child_process leaves them out).
 */
function cleanEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of Object.keys(process.env)) {
    if (/_KEYS$/.test(name) || name.startsWith("KEYPOOL_") || name.startsWith("KEY_POOL_"))
      env[name] = undefined;
  }
  return { ...env, ...extra };
}

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

/** A request as curl sends it: `-d` bodies go as application/x-www-form-urlencoded. */
async function curl(base: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/x-www-form-urlencoded" } }),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

function expectNoKeys(text: string, allowed: string[] = []) {
  for (const key of ALL_KEYS) if (!allowed.includes(key)) expect(text).not.toContain(key);
}

describe("the key-pool-manager README, walked against keypool serve", () => {
  let server: ServeProcess;
  let base: string;
  const api = (method: string, path: string, body?: unknown) => curl(base, method, path, body);
  /** The pool's keys by id, from the dispensing API's pool view (no key material). */
  const keyStatus = async (key: string) => {
    const view = await api("GET", "/v1/pools/default/gpt-4");
    const statuses = view.json.keyStatuses as Array<{ id: string; state: string; until?: string }>;
    return statuses.find((k) => k.id === keyId(key));
  };

  beforeAll(async () => {
    const port = await freePort();
    // As the README runs it: the keys and the port, nothing else (the probes port is moved off
    // 8081 only so that parallel test files do not collide).
    server = await spawnServe(
      [],
      cleanEnv({ GPT_4_KEYS: `${KEY_A},${KEY_B}`, KEY_POOL_PORT: String(port) }),
      port,
    );
    base = server.url;
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("GET /health answers ok", async () => {
    const health = await api("GET", "/health");
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: "ok" });
  });

  it("GET /keys/:model hands out the keys in turn, with the pool's counts", async () => {
    const first = await api("GET", "/keys/gpt-4");
    expect(first.status).toBe(200);
    expect(first.json).toEqual({
      success: true,
      model: "gpt-4",
      key: KEY_A,
      keyId: keyId(KEY_A),
      leaseId: expect.any(String),
      pool: { totalKeys: 2, healthyKeys: 2 },
    });
  });

  it("GET /status shows every model with health counts, the rotation's position and stats", async () => {
    const status = await api("GET", "/status");
    expect(status.json).toEqual({
      status: "ok",
      timestamp: expect.any(Number),
      models: {
        "gpt-4": {
          totalKeys: 2,
          health: { healthy: 2, degraded: 0, failed: 0, rate_limited: 0 },
          currentIndex: 1,
          stats: { totalRequests: 1, successRate: "100.00%" },
        },
      },
    });
    expect(Math.abs((status.json.timestamp as number) - Date.now() / 1000)).toBeLessThan(60);
    const second = await api("GET", "/keys/gpt-4");
    expect(second.json.key).toBe(KEY_B);
    const models = (await api("GET", "/status")).json.models as Record<string, { currentIndex: number }>;
    expect(models["gpt-4"]?.currentIndex).toBe(0);
  });

  it("POST /health/:model healthy (the README's body, error: null)", async () => {
    const healthy = await api("POST", "/health/gpt-4", { key: KEY_A, status: "healthy", error: null });
    expect(healthy.status).toBe(200);
    expect(healthy.json).toMatchObject({ success: true, keyId: keyId(KEY_A), status: "healthy" });
  });

  it("POST /health/:model degraded marks the key degraded at once; healthy restores it", async () => {
    const degraded = await api("POST", "/health/gpt-4", { key: KEY_B, status: "degraded", error: "slow" });
    expect(degraded.json).toMatchObject({ success: true, status: "degraded", state: "Degraded" });
    const models = (await api("GET", "/status")).json.models as Record<string, { health: object }>;
    expect(models["gpt-4"]?.health).toEqual({ healthy: 1, degraded: 1, failed: 0, rate_limited: 0 });
    // A degraded key still serves (it auto-recovers after 5 minutes without errors).
    expect((await api("GET", "/keys/gpt-4")).json.pool).toEqual({ totalKeys: 2, healthyKeys: 2 });
    const restored = await api("POST", "/health/gpt-4", { key: KEY_B, status: "healthy", error: null });
    expect(restored.json).toMatchObject({ success: true, status: "healthy", state: "Healthy" });
  });

  it("POST /health/:model rate_limited rests the key for the README's 15 minutes", async () => {
    const before = Date.now();
    const limited = await api("POST", "/health/gpt-4", { key: KEY_B, status: "rate_limited", error: null });
    expect(limited.json).toMatchObject({ success: true, status: "rate_limited" });
    const until = Date.parse((await keyStatus(KEY_B))?.until ?? "");
    expect(until - before).toBeGreaterThanOrEqual(15 * 60_000 - 1000);
    expect(until - Date.now()).toBeLessThanOrEqual(15 * 60_000 + 1000);
    for (let i = 0; i < 3; i++) expect((await api("GET", "/keys/gpt-4")).json.key).toBe(KEY_A);
  });

  it("POST /health/:model failed takes the key out until someone acts; no key left is a 503", async () => {
    const failed = await api("POST", "/health/gpt-4", { key: KEY_A, status: "failed", error: "invalid key" });
    expect(failed.json).toMatchObject({ success: true, status: "failed", state: "Invalid" });
    const none = await api("GET", "/keys/gpt-4");
    expect(none.status).toBe(503);
    expect(none.json).toMatchObject({ success: false, error: { code: "no_usable_key" } });
    expect(Number(none.headers.get("retry-after"))).toBeGreaterThan(800);
  });

  it("POST /keys/:model adds a key (no auth, loopback only), and it serves at once", async () => {
    const added = await api("POST", "/keys/gpt-4", { key: KEY_C });
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({ success: true, keyId: keyId(KEY_C) });
    expect((await api("GET", "/keys/gpt-4")).json).toMatchObject({ key: KEY_C, pool: { totalKeys: 3 } });
    const again = await api("POST", "/keys/gpt-4", { key: KEY_C });
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ success: false, error: { code: "conflict" } });
  });

  it("a rate_limited report with the provider's retry-after rests the key that long instead", async () => {
    const before = Date.now();
    await api("POST", "/health/gpt-4", {
      key: KEY_C,
      status: "rate_limited",
      headers: { "retry-after": "30" },
    });
    const until = Date.parse((await keyStatus(KEY_C))?.until ?? "");
    expect(until - before).toBeGreaterThanOrEqual(29_000);
    expect(until - before).toBeLessThanOrEqual(31_000 + (Date.now() - before));
  });

  it("DELETE /keys/:model removes a key that came from GPT_4_KEYS (until restart)", async () => {
    const removed = await api("DELETE", "/keys/gpt-4", { key: KEY_A });
    expect(removed.status).toBe(200);
    expect(removed.json).toMatchObject({ success: true, keyId: keyId(KEY_A) });
    const status = (await api("GET", "/status")).json.models as Record<
      string,
      { totalKeys: number; health: object }
    >;
    expect(status["gpt-4"]).toMatchObject({
      totalKeys: 2,
      health: { healthy: 0, degraded: 0, failed: 0, rate_limited: 2 },
    });
    const twice = await api("DELETE", "/keys/gpt-4", { key: KEY_A });
    expect(twice.status).toBe(404);
    expect(twice.json).toEqual({
      success: false,
      error: { code: "key_not_found", message: expect.any(String) },
    });
  });

  it("errors carry success: false beside the error, and bad bodies lose nothing", async () => {
    const bad = await api("POST", "/health/gpt-4", { key: KEY_B, status: "sideways" });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ success: false, error: { code: "invalid_request" } });
    const unknown = await api("GET", "/keys/gpt-5");
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ success: false, error: { code: "pool_not_found" } });
    expect((await api("GET", "/status")).json.models).toHaveProperty("gpt-4");
  });

  it("logs no key", () => {
    expectNoKeys(server.output());
  });
});

describe("other drop-in details", () => {
  const servers: ServeProcess[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });
  const serve = async (env: Record<string, string>, args: string[] = []) => {
    const port = await freePort();
    const server = await spawnServe(args, cleanEnv({ KEY_POOL_PORT: String(port), ...env }), port);
    servers.push(server);
    return server;
  };

  it("/keys/gpt-3.5-turbo finds the pool of GPT_3_5_TURBO_KEYS (dots and dashes alike)", async () => {
    const server = await serve({ GPT_3_5_TURBO_KEYS: `${KEY_A},${KEY_B}` });
    const answer = await curl(server.url, "GET", "/keys/gpt-3.5-turbo");
    expect(answer.json).toMatchObject({ success: true, model: "gpt-3.5-turbo", key: KEY_A });
    const report = await curl(server.url, "POST", "/health/gpt-3.5-turbo", {
      key: KEY_A,
      status: "degraded",
    });
    expect(report.json).toMatchObject({ success: true, status: "degraded" });
    const status = await curl(server.url, "GET", "/status");
    expect(status.json.models).toMatchObject({ "gpt-3-5-turbo": { currentIndex: 1, totalKeys: 2 } });
  });

  it("KEY_POOL_HOST is the address; flags and KEYPOOL_* still win over both aliases", async () => {
    const port = await freePort();
    const ignored = await freePort();
    const server = await spawnServe(
      [],
      cleanEnv({
        GPT_4_KEYS: KEY_A,
        KEY_POOL_PORT: String(ignored),
        KEYPOOL_PORT: String(port),
        KEY_POOL_HOST: "127.0.0.1",
      }),
      port,
    );
    servers.push(server);
    expect((await curl(server.url, "GET", "/keys/gpt-4")).json.key).toBe(KEY_A);
    await expect(fetch(`http://127.0.0.1:${ignored}/health`)).rejects.toThrow();
  });

  it("HEALTH_CHECK_INTERVAL (ms) is the recovery tick: a quiet degraded key recovers without a request", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keypool-compat-"));
    await mkdir(join(dir, "manifests"));
    await writeFile(
      join(dir, "manifests", "pool.yaml"),
      `apiVersion: v1
kind: Secret
metadata: {name: quick-keys}
stringData: {a: ${KEY_A}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: quick}
spec: {provider: openai, keys: [{secretRef: {name: quick-keys}}], health: {degradedCooldown: 1s}}
`,
    );
    const server = await serve({ HEALTH_CHECK_INTERVAL: "200" }, ["--manifests", join(dir, "manifests")]);
    await curl(server.url, "POST", "/health/quick", { key: KEY_A, status: "degraded" });
    const recovered = await eventually(
      async () =>
        server
          .output()
          .split("\n")
          .find((l) => l.includes('"key state changed"') && l.includes('"to":"Healthy"')),
      10_000,
      100,
    );
    expect(recovered).toContain('"reason":"quiet_period_ended"');
  });

  it("the agent key manager's /api routes: a key, the status report, health summary, alerts, one key's health", async () => {
    const server = await serve({
      GPT_4O_KEYS: `${KEY_A},${KEY_B}`,
      CLAUDE_3_OPUS_KEYS: KEY_C,
      CLAUDE_3_OPUS_PROVIDER: "anthropic",
    });
    const key = await curl(server.url, "GET", "/api/keys/gpt-4o");
    expect(key.json).toMatchObject({
      success: true,
      model: "gpt-4o",
      key: KEY_A,
      keyId: keyId(KEY_A),
      keyIndex: 0,
    });
    for (let i = 0; i < 3; i++)
      await curl(server.url, "POST", "/health/gpt-4o", { key: KEY_B, status: "degraded" });
    await curl(server.url, "POST", "/health/claude-3-opus", { key: KEY_C, status: "rate_limited" });
    // The call made with key 0 took 6 s (reported as the dispensing API takes it): over the 5 s
    // of the agent key manager's "High latency" alert.
    const reported = await fetch(`${server.url}/v1/pools/default/gpt-4o/report`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ leaseId: key.json.leaseId, outcome: "success", latencyMs: 6000 }),
    });
    expect(reported.status).toBe(200);

    const status = await curl(server.url, "GET", "/api/keys/status");
    expect(status.json).toMatchObject({
      success: true,
      models: {
        "gpt-4o": {
          provider: "openai",
          totalKeys: 2,
          availableKeys: 2,
          keys: [
            { index: 0, keyId: keyId(KEY_A), status: "healthy", requests: 1, averageLatencyMs: 6000 },
            { index: 1, keyId: keyId(KEY_B), status: "degraded", errors: 3 },
          ],
        },
        "claude-3-opus": { provider: "anthropic", availableKeys: 0, keys: [{ rateLimited: true }] },
      },
    });

    const summary = await curl(server.url, "GET", "/api/health/summary");
    expect(summary.json).toMatchObject({
      success: true,
      overall: { status: "degraded", totalKeys: 3, healthy: 1, degraded: 1, rate_limited: 1 },
      providers: {
        openai: { status: "degraded", models: ["gpt-4o"], totalKeys: 2 },
        anthropic: { status: "down", models: ["claude-3-opus"], rate_limited: 1 },
      },
    });

    const alerts = (await curl(server.url, "GET", "/api/health/alerts")).json.alerts as Array<
      Record<string, unknown>
    >;
    expect(alerts.map((a) => [a.severity, a.type, a.model, a.keyIndex])).toEqual([
      ["high", "consecutive_failures", "gpt-4o", 1],
      ["medium", "rate_limited", "claude-3-opus", 0],
      ["low", "high_latency", "gpt-4o", 0],
    ]);

    const one = await curl(server.url, "GET", "/api/health/gpt-4o/1");
    expect(one.json).toMatchObject({
      success: true,
      model: "gpt-4o",
      keyIndex: 1,
      keyId: keyId(KEY_B),
      state: "Degraded",
      consecutiveErrors: 3,
      alerts: [{ type: "consecutive_failures" }],
    });
    const slow = await curl(server.url, "GET", "/api/health/gpt-4o/0");
    expect(slow.json).toMatchObject({
      keyIndex: 0,
      averageLatencyMs: 6000,
      alerts: [{ severity: "low", type: "high_latency" }],
    });
    const outOfRange = await curl(server.url, "GET", "/api/health/gpt-4o/7");
    expect(outOfRange.json).toMatchObject({ success: false, error: { code: "key_not_found" } });

    // Only /api/keys/:model hands out a key; the rest show ids and masked keys.
    expectNoKeys(JSON.stringify([status.json, summary.json, alerts, one.json, slow.json]));
  });

  it("npm start with a *_KEYS variable serves only that pool, not the examples", async () => {
    const port = await freePort();
    const child = spawn("npm", ["start"], {
      env: {
        ...process.env,
        ...cleanEnv({ GPT_4_KEYS: KEY_A, KEY_POOL_PORT: String(port), KEYPOOL_PROBES_PORT: "0" }),
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    try {
      const status = await eventually(
        async () => (await curl(`http://127.0.0.1:${port}`, "GET", "/status")).json,
        30_000,
        200,
      );
      expect(Object.keys(status.models as object)).toEqual(["gpt-4"]);
    } finally {
      if (child.pid) process.kill(-child.pid, "SIGTERM");
    }
  });
});
