/**
 * The key-dispensing API of `keypool operator`, against the real API server: RBAC decides who
 * gets keys, strategies decide which, reports and probes move keys between states (and into
 * the KeyPool status), fallback pools serve when a pool is exhausted, bad input gets a clear
 * JSON error, and keys never leak.
 */
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const kc = adminKubeConfig();
const api = poolApi(kc);
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

let ns: string;
let operator: OperatorProcess;
let url: string;
let fake: FakeProvider;
let clientToken: string;

const K = {
  a: "sk-test-dispense-a-000000001",
  b: "sk-test-dispense-b-000000002",
  c: "sk-test-dispense-c-000000003",
  fb: "sk-test-dispense-fallback-0004",
  bad: "sk-test-dispense-never-valid-05",
  ll1: "sk-test-dispense-ll-one-000006",
  ll2: "sk-test-dispense-ll-two-000007",
  ll3: "sk-test-dispense-ll-three-0008",
};

async function tokenFor(sa: string, audiences = ["keypool"]): Promise<string> {
  const res = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: sa,
    body: { spec: { audiences, expirationSeconds: 3600 } },
  });
  return res.status?.token ?? "";
}

async function grantUse(sa: string, pools: string[], verbs = ["use"]) {
  const name = `${sa}-${verbs.join("-")}`;
  await rbac.createNamespacedRole({
    namespace: ns,
    body: {
      metadata: { name },
      rules: [{ apiGroups: ["keypool.dev"], resources: ["keypools"], verbs, resourceNames: pools }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    },
  });
}

async function call(
  path: string,
  init: {
    method?: string;
    token?: string;
    body?: unknown;
    headers?: Record<string, string>;
    raw?: string;
  } = {},
) {
  const res = await fetch(`${url}${path}`, {
    method: init.method ?? (init.body !== undefined || init.raw !== undefined ? "POST" : "GET"),
    headers: {
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      ...(init.body !== undefined || init.raw !== undefined ? { "content-type": "application/json" } : {}),
      ...init.headers,
    },
    body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json: json as Record<string, unknown>, text };
}

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "dispense");
  fake = await startFakeProvider(
    "openai",
    Object.fromEntries(
      Object.values(K)
        .filter((k) => k !== K.bad)
        .map((k) => [k, { kind: "valid" }]),
    ),
  );
  await api.putSecret(ns, "main-keys", { a: K.a, b: K.b, c: K.c });
  await api.putSecret(ns, "fallback-keys", { f: K.fb });
  await api.putSecret(ns, "ll-keys", { a: K.ll1, b: K.ll2, c: K.ll3 });
  await api.createPool(ns, "main", {
    provider: "openai",
    baseURL: fake.url,
    strategy: "RoundRobin",
    keys: [{ secretRef: { name: "main-keys" } }],
    fallbackPoolRef: { name: "backup" },
    health: { probeInterval: "1h" },
  });
  await api.createPool(ns, "backup", {
    provider: "openai",
    baseURL: fake.url,
    keys: [{ secretRef: { name: "fallback-keys" } }],
  });
  await api.createPool(ns, "busy", {
    provider: "openai",
    baseURL: fake.url,
    strategy: "LeastLoaded",
    keys: [{ secretRef: { name: "ll-keys" } }],
  });
  for (const sa of ["client", "stranger", "latecomer", "admin"]) {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  }
  await grantUse("client", ["main", "busy", "backup"]);
  await grantUse("admin", ["main"], ["use", "update"]);
  clientToken = await tokenFor("client");
  operator = startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns]);
  url = await operator.dispenserUrl();
  await api.waitForPool(ns, "main", (p) => condition(p, "Ready")?.status === "True");
  await api.waitForPool(ns, "busy", (p) => condition(p, "Ready")?.status === "True");
});

afterAll(async () => {
  await operator?.stop();
  await fake?.close();
});

describe("who gets a key", () => {
  it("a ServiceAccount granted `use` on the pool gets one, never cached by intermediaries", async () => {
    const res = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.json).toMatchObject({ pool: { namespace: ns, name: "main" }, strategy: "RoundRobin" });
    expect([K.a, K.b, K.c]).toContain(res.json.key);
    expect(res.json.keyId).toBe(keyId(res.json.key as string));
    expect(typeof res.json.leaseId).toBe("string");
    expect(Date.parse(res.json.expiresAt as string)).toBeGreaterThan(Date.now());
  });

  it("one without a binding gets 403 saying what grant is missing", async () => {
    const res = await call(`/v1/pools/${ns}/main/key`, { token: await tokenFor("stranger") });
    expect(res.status).toBe(403);
    expect(res.json.error).toMatchObject({ code: "forbidden" });
    expect(String((res.json.error as { message: string }).message)).toContain("use");
  });

  it.each([
    ["no token", async () => undefined],
    ["a garbage token", async () => "not-a-real-token"],
    ["a token for another audience", async () => tokenFor("client", ["someone-else"])],
  ])("%s gets 401", async (_name, token) => {
    const res = await call(`/v1/pools/${ns}/main/key`, { token: await token() });
    expect(res.status).toBe(401);
    expect(res.json.error).toMatchObject({ code: "unauthenticated" });
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
  });

  it("a binding added later takes effect within the authorization cache lifetime (10 s)", async () => {
    const token = await tokenFor("latecomer");
    expect((await call(`/v1/pools/${ns}/main/key`, { token })).status).toBe(403);
    await grantUse("latecomer", ["main"]);
    const granted = Date.now();
    await eventually(
      async () => (await call(`/v1/pools/${ns}/main/key`, { token })).status === 200,
      20_000,
      250,
    );
    const delay = Date.now() - granted;
    console.log(`RoleBinding created -> dispenser grants: ${delay} ms (cache lifetime 10 s)`);
    expect(delay).toBeLessThan(15_000);
  });
});

describe("which key", () => {
  it("RoundRobin over 3 keys: 300 dispenses hand out each key exactly 100 times", async () => {
    const counts = new Map<string, number>();
    // Start from a clean turn: find where the rotation is by taking keys until it wraps.
    for (let i = 0; i < 300; i++) {
      const res = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
      expect(res.status).toBe(200);
      counts.set(res.json.keyId as string, (counts.get(res.json.keyId as string) ?? 0) + 1);
      await call(`/v1/pools/${ns}/main/report`, {
        token: clientToken,
        body: { leaseId: res.json.leaseId, outcome: "success" },
      });
    }
    expect([...counts.values()]).toEqual([100, 100, 100]);
  });

  it("LeastLoaded prefers the idle key while the others hold open leases", async () => {
    const first = await call(`/v1/pools/${ns}/busy/key`, { token: clientToken });
    const second = await call(`/v1/pools/${ns}/busy/key`, { token: clientToken });
    const third = await call(`/v1/pools/${ns}/busy/key`, { token: clientToken });
    const ids = [first, second, third].map((r) => r.json.keyId);
    expect(new Set(ids).size).toBe(3);
    await call(`/v1/pools/${ns}/busy/report`, {
      token: clientToken,
      body: { leaseId: second.json.leaseId, statusCode: 200 },
    });
    const next = await call(`/v1/pools/${ns}/busy/key`, { token: clientToken });
    expect(next.json.keyId).toBe(second.json.keyId);
  });

  it("?exclude= passes over the keys a caller already tried, and refuses what is not a key id", async () => {
    const first = await call(`/v1/pools/${ns}/busy/key`, { token: clientToken });
    const tried = [first.json.keyId as string];
    const second = await call(`/v1/pools/${ns}/busy/key?exclude=${tried.join(",")}`, { token: clientToken });
    tried.push(second.json.keyId as string);
    const third = await call(`/v1/pools/${ns}/busy/key?exclude=${tried.join(",")}`, { token: clientToken });
    tried.push(third.json.keyId as string);
    expect(new Set(tried).size).toBe(3);
    const none = await call(`/v1/pools/${ns}/busy/key?exclude=${tried.join(",")}`, { token: clientToken });
    expect(none.status).toBe(503);
    expect(none.json).toMatchObject({ error: { code: "no_usable_key" } });
    const bad = await call(`/v1/pools/${ns}/busy/key?exclude=not-a-key-id`, { token: clientToken });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: "invalid_request" } });
    for (const r of [first, second, third]) {
      await call(`/v1/pools/${ns}/busy/report`, {
        token: clientToken,
        body: { leaseId: r.json.leaseId, outcome: "success" },
      });
    }
  });

  it("the same session gets the same key while it is usable", async () => {
    const headers = { "x-keypool-session": "conversation-42" };
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await call(`/v1/pools/${ns}/main/key`, { token: clientToken, headers });
      ids.add(res.json.keyId as string);
    }
    expect(ids.size).toBe(1);
  });
});

describe("reports and probes", () => {
  it("a 429 with retry-after 30 s makes the key RateLimited in the status, and it is not handed out", async () => {
    const got = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
    const limited = got.json.keyId as string;
    const res = await call(`/v1/pools/${ns}/main/report`, {
      token: clientToken,
      body: {
        leaseId: got.json.leaseId,
        statusCode: 429,
        body: { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } },
        headers: { "retry-after": "30" },
      },
    });
    expect(res.json).toEqual({ keyId: limited, state: "RateLimited" });
    const status = await api.waitForPool(ns, "main", (p) =>
      p.status?.keyStatuses?.find((k) => k.id === limited && k.state === "RateLimited"),
    );
    expect(Date.parse(status.until as string) - Date.now()).toBeGreaterThan(25_000);
    for (let i = 0; i < 20; i++) {
      const r = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
      expect(r.json.keyId).not.toBe(limited);
    }
  });

  it("a 401 report makes the key Invalid, with a Warning Event", async () => {
    const got = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
    const res = await call(`/v1/pools/${ns}/main/report`, {
      token: clientToken,
      body: {
        leaseId: got.json.leaseId,
        statusCode: 401,
        body: {
          error: {
            message: "Incorrect API key provided",
            type: "invalid_request_error",
            code: "invalid_api_key",
          },
        },
      },
    });
    expect(res.json.state).toBe("Invalid");
    await api.waitForPool(ns, "main", (p) =>
      p.status?.keyStatuses?.find((k) => k.id === got.json.keyId && k.state === "Invalid"),
    );
    await eventually(async () =>
      (await api.events(ns)).some(
        (e) =>
          e.type === "Warning" && e.reason === "KeyInvalid" && e.message?.includes(got.json.keyId as string),
      ),
    );
  });

  it("a probe catches an invalid key that no client has used", async () => {
    await api.putSecret(ns, "probe-keys", { good: K.ll1, bad: K.bad });
    await api.createPool(ns, "probed", {
      provider: "openai",
      baseURL: fake.url,
      keys: [{ secretRef: { name: "probe-keys" } }],
    });
    const pool = await api.waitForPool(
      ns,
      "probed",
      (p) => p.status?.keyStatuses?.find((k) => k.id === keyId(K.bad) && k.state === "Invalid") && p,
    );
    expect(pool.status?.keyStatuses?.find((k) => k.id === keyId(K.bad))?.requests).toBe(0);
    expect(fake.requests.some((r) => r.path === "/v1/models" && r.key === K.bad)).toBe(true);
  });
});

describe("fallback", () => {
  it("with every key of a pool rate limited, the fallback pool serves, and says so", async () => {
    for (const key of [K.a, K.b, K.c]) {
      await call(`/v1/pools/${ns}/main/report`, {
        token: clientToken,
        body: { keyId: keyId(key), outcome: "rateLimited", retryAfterSeconds: 60 },
      });
    }
    const res = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      key: K.fb,
      pool: { namespace: ns, name: "backup" },
      fallbackFrom: [{ namespace: ns, name: "main" }],
    });
  });

  it("with nothing usable anywhere, 503 no_usable_key with Retry-After", async () => {
    await call(`/v1/pools/${ns}/backup/report`, {
      token: clientToken,
      body: { keyId: keyId(K.fb), outcome: "rateLimited", retryAfterSeconds: 45 },
    });
    const res = await call(`/v1/pools/${ns}/main/key`, { token: clientToken });
    expect(res.status).toBe(503);
    expect(res.json.error).toMatchObject({ code: "no_usable_key" });
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("bad input", () => {
  const report = (body: unknown) => ({ token: "CLIENT", body });
  it.each<
    [
      string,
      string,
      { method?: string; token?: string; body?: unknown; raw?: string; headers?: Record<string, string> },
      number,
      string,
    ]
  >([
    [
      "malformed JSON",
      "/v1/pools/NS/busy/report",
      { token: "CLIENT", raw: "{not json" },
      400,
      "invalid_request",
    ],
    [
      "wrong types",
      "/v1/pools/NS/busy/report",
      report({ keyId: 42, outcome: "success" }),
      400,
      "invalid_request",
    ],
    ["missing fields", "/v1/pools/NS/busy/report", report({ tokens: 5 }), 400, "invalid_request"],
    [
      "an unknown outcome",
      "/v1/pools/NS/busy/report",
      report({ keyId: "0123456789ab", outcome: "meh" }),
      400,
      "invalid_request",
    ],
    [
      "an unknown field",
      "/v1/pools/NS/busy/report",
      report({ keyId: "0123456789ab", outcome: "success", extra: 1 }),
      400,
      "invalid_request",
    ],
    [
      "a 10 MB body",
      "/v1/pools/NS/busy/report",
      { token: "CLIENT", raw: JSON.stringify({ pad: "x".repeat(10 * 1024 * 1024) }) },
      413,
      "payload_too_large",
    ],
    [
      "a form body",
      "/v1/pools/NS/busy/report",
      { token: "CLIENT", raw: "a=b", headers: { "content-type": "application/x-www-form-urlencoded" } },
      415,
      "unsupported_media_type",
    ],
    ["an unknown pool", "/v1/pools/NS/nope/key", { token: "CLIENT" }, 403, "forbidden"],
    [
      "an unknown leaseId",
      "/v1/pools/NS/busy/report",
      report({ leaseId: "no-such-lease", outcome: "success" }),
      404,
      "lease_not_found",
    ],
    [
      "an unknown keyId",
      "/v1/pools/NS/busy/report",
      report({ keyId: "0123456789ab", outcome: "success" }),
      404,
      "key_not_found",
    ],
    [
      "a report for another pool's key",
      "/v1/pools/NS/busy/report",
      report({ keyId: keyId(K.a), outcome: "invalidKey" }),
      404,
      "key_not_found",
    ],
    ["an odd path segment", "/v1/pools/NS/..%2F..%2Fetc/key", { token: "CLIENT" }, 400, "invalid_request"],
    ["an upper-case pool name", "/v1/pools/NS/Main/key", { token: "CLIENT" }, 400, "invalid_request"],
    ["an unknown endpoint", "/v1/nothing", {}, 404, "not_found"],
    [
      "adding a key in Kubernetes mode (Git is the source of truth)",
      "/keys/main",
      { token: "CLIENT", body: { key: "sk-test-never-added-000009" } },
      405,
      "method_not_allowed",
    ],
  ])("%s gets the documented error and changes nothing", async (_name, path, init, status, code) => {
    const before = JSON.stringify((await call(`/v1/pools/${ns}/busy`, { token: clientToken })).json);
    const res = await call(path.replace("NS", ns), {
      ...init,
      token: init.token === "CLIENT" ? clientToken : init.token,
    });
    expect(res.status).toBe(status);
    expect(res.json.error).toMatchObject({ code });
    expect(typeof (res.json.error as { message: unknown }).message).toBe("string");
    const after = JSON.stringify((await call(`/v1/pools/${ns}/busy`, { token: clientToken })).json);
    expect(after).toBe(before);
    // ...and the server keeps serving.
    expect((await call(`/v1/pools/${ns}/busy/key`, { token: clientToken })).status).toBe(200);
  });

  it("a report for another pool's key changes nothing in either pool", async () => {
    const main = (await call(`/v1/pools/${ns}/main`, { token: clientToken })).json;
    expect(JSON.stringify(main)).not.toContain(K.a);
  });
});

describe("admin actions need `update`", () => {
  it("reset of an Invalid key: forbidden with `use` only, allowed with `update`", async () => {
    const invalid = (await api.readPool(ns, "main")).status?.keyStatuses?.find((k) => k.state === "Invalid");
    expect(invalid).toBeDefined();
    const path = `/v1/pools/${ns}/main/keys/${invalid?.id}/reset`;
    expect((await call(path, { token: clientToken, method: "POST" })).status).toBe(403);
    const res = await call(path, { token: await tokenFor("admin"), method: "POST" });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ keyId: invalid?.id, state: "Healthy" });
  });
});

describe("key material", () => {
  it("never appears in logs, metrics or error bodies", async () => {
    const probesPort = operator.logs.find((l) => l.msg === "operator running")?.probesPort;
    const metrics = await (await fetch(`http://127.0.0.1:${String(probesPort)}/metrics`)).text();
    expect(metrics).toContain("keypool_keys");
    const errors = [
      (
        await call(`/v1/pools/${ns}/main/report`, {
          token: clientToken,
          body: { keyId: "0123456789ab", outcome: "success" },
        })
      ).text,
      (await call(`/v1/pools/${ns}/main/key`, { token: K.a })).text,
    ].join("\n");
    const logs = operator.lines.join("\n");
    for (const raw of Object.values(K)) {
      expect(logs).not.toContain(raw);
      expect(metrics).not.toContain(raw);
      expect(errors).not.toContain(raw);
    }
    // The audit log names who took which key, by id.
    expect(operator.logs.some((l) => l.audit === "dispense" && String(l.caller).includes(":client"))).toBe(
      true,
    );
  });
});

describe("the compatibility routes under the operator", () => {
  it("resolve a model in the caller's ServiceAccount namespace, read curl -d bodies and answer with success", async () => {
    const got = await call("/keys/busy", { token: clientToken });
    expect(got.json).toMatchObject({ success: true, model: "busy", pool: { totalKeys: 3 } });
    const form = { "content-type": "application/x-www-form-urlencoded" };
    const degraded = await call("/health/busy", {
      token: clientToken,
      raw: JSON.stringify({ key: got.json.key, status: "degraded", error: "slow" }),
      headers: form,
    });
    expect(degraded.json).toMatchObject({ success: true, status: "degraded", state: "Degraded" });
    await api.waitForPool(ns, "busy", (p) =>
      p.status?.keyStatuses?.find((k) => k.id === got.json.keyId && k.state === "Degraded"),
    );
    const summary = await call("/api/health/summary", { token: clientToken });
    expect(summary.json).toMatchObject({
      success: true,
      providers: { openai: { models: ["backup", "busy", "main"], degraded: 1 } },
    });
    const healthy = await call("/health/busy", {
      token: clientToken,
      raw: JSON.stringify({ key: got.json.key, status: "healthy" }),
      headers: form,
    });
    expect(healthy.json).toMatchObject({ success: true, status: "healthy", state: "Healthy" });
    await call(`/v1/pools/${ns}/busy/report`, {
      token: clientToken,
      body: { leaseId: got.json.leaseId, outcome: "success" },
    });
    const refused = await call("/keys/busy", { token: await tokenFor("stranger") });
    expect(refused.status).toBe(403);
    expect(refused.json).toMatchObject({ success: false, error: { code: "forbidden" } });
  });
});
