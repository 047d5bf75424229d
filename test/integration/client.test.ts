/**
 * The TypeScript client (`keypool-operator/client`) against the real servers, calling the fake
 * OpenAI provider with the keys it gets, as a service would: against `keypool serve` (static
 * tokens), against `keypool operator` on the test control plane (a ServiceAccount token in a
 * file), and compiled, from a plain Node process that resolves the package's exports.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KeyPoolClient, KeyPoolClientError, type Lease } from "keypool-operator/client";
import { keyId } from "../../src/pool/identity.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";
import { type ServeProcess, startServe } from "../support/serve-process.ts";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");

const K = {
  limited: "sk-test-client-rate-limited-0001",
  healthy: "sk-test-client-healthy-key-0002",
  drained: "sk-test-client-drained-key-0003",
  brief: "sk-test-client-brief-limit-0004",
  opLimited: "sk-test-client-op-limited-0005",
  opHealthy: "sk-test-client-op-healthy-0006",
};
const TOKEN_A = "client-token-a-0123456789abcdef";
const TOKEN_B = "client-token-b-0123456789abcdef";
const OTHER_POOL_TOKEN = "client-token-other-0123456789ab";

let fake: FakeProvider;
let dir: string;
/** Every KeyPoolClientError this file saw: none may hold a key or a token. */
const errors: KeyPoolClientError[] = [];

async function rejection(promise: Promise<unknown>): Promise<KeyPoolClientError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeyPoolClientError);
  errors.push(err as KeyPoolClientError);
  return err as KeyPoolClientError;
}

/** A chat completion at the fake provider with `key`, the way a service calls its provider. */
function chat(key: string): Promise<Response> {
  return fetch(`${fake.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello" }] }),
  });
}

interface KeyView {
  id: string;
  state: string;
  requests: number;
  until?: string;
}

beforeAll(async () => {
  fake = await startFakeProvider("openai", {
    [K.limited]: { kind: "valid" },
    [K.healthy]: { kind: "valid" },
    [K.drained]: { kind: "valid" },
    [K.brief]: { kind: "valid" },
    [K.opLimited]: { kind: "valid" },
    [K.opHealthy]: { kind: "valid" },
  });
  dir = await mkdtemp(join(tmpdir(), "keypool-client-"));
});

afterAll(async () => {
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("against keypool serve", () => {
  let serve: ServeProcess;
  const tokenFile = () => join(dir, "token");
  const client = (options: { maxWaitMs?: number } = {}) =>
    new KeyPoolClient({ baseURL: serve.url, tokenFile: tokenFile(), ...options });
  const poolView = async (pool: string) => {
    const res = await fetch(`${serve.url}/v1/pools/default/${pool}`, {
      headers: { authorization: `Bearer ${TOKEN_A}` },
    });
    return ((await res.json()) as { keyStatuses: KeyView[] }).keyStatuses;
  };

  beforeAll(async () => {
    const pool = (name: string, keys: string[]) => `apiVersion: v1
kind: Secret
metadata: {name: ${name}-keys}
stringData: {${keys.map((k, i) => `k${i}: ${k}`).join(", ")}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: ${name}}
spec: {provider: openai, baseURL: "${fake.url}", strategy: RoundRobin, keys: [{secretRef: {name: ${name}-keys}}]}
`;
    await mkdir(join(dir, "manifests"));
    await writeFile(
      join(dir, "manifests", "pools.yaml"),
      // RoundRobin hands out the keys in the order they joined: the rate-limited one first.
      [pool("failover", [K.limited, K.healthy]), pool("drained", [K.drained]), pool("brief", [K.brief])].join(
        "---\n",
      ),
    );
    await writeFile(
      join(dir, "tokens.yaml"),
      `tokens:
  - {name: a, token: ${TOKEN_A}, pools: ["default/*"]}
  - {name: b, token: ${TOKEN_B}, pools: ["default/*"]}
  - {name: other, token: ${OTHER_POOL_TOKEN}, pools: ["default/brief"]}
`,
    );
    await writeFile(tokenFile(), `${TOKEN_A}\n`);
    serve = await startServe(dir);
  });

  afterAll(async () => {
    await serve?.stop();
  });

  it("withKey fails over from the key the provider answers 429 to another, and reports both", async () => {
    fake.setKey(K.limited, { kind: "rateLimited", retryAfterSeconds: 60 });
    const leases: Lease[] = [];
    const res = await client().withKey("failover", (key, { lease }) => {
      leases.push(lease);
      return chat(key);
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { object: string }).object).toBe("chat.completion");
    expect(leases.map((l) => l.keyId)).toEqual([keyId(K.limited), keyId(K.healthy)]);
    expect(fake.requests.filter((r) => r.path === "/v1/chat/completions").map((r) => r.key)).toEqual([
      K.limited,
      K.healthy,
    ]);

    const keys = await poolView("failover");
    const limited = keys.find((k) => k.id === keyId(K.limited));
    const healthy = keys.find((k) => k.id === keyId(K.healthy));
    expect(limited).toMatchObject({ state: "RateLimited", requests: 1 });
    expect(Date.parse(String(limited?.until))).toBeGreaterThan(Date.now() + 30_000);
    expect(healthy).toMatchObject({ state: "Healthy", requests: 1 });
    // Both leases were closed by their reports: reporting either again finds no open lease.
    for (const lease of leases)
      expect(
        (await rejection(client().report({ pool: lease.pool, leaseId: lease.leaseId }, "success"))).code,
      ).toBe("lease_not_found");
  });

  it("getKey and report: an OpenAI SDK error reported as it was thrown rests the key", async () => {
    fake.setKey(K.drained, { kind: "rateLimited", retryAfterSeconds: 60 });
    const kp = client();
    const lease = await kp.getKey("default/drained");
    const openai = new OpenAI({ apiKey: lease.key, baseURL: `${fake.url}/v1`, maxRetries: 0 });
    const thrown = await openai.chat.completions
      .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello" }] })
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(OpenAI.RateLimitError);
    const err = thrown as InstanceType<typeof OpenAI.RateLimitError>;
    const reported = await kp.report(lease, {
      statusCode: err.status,
      headers: err.headers,
      body: { error: err.error },
    });
    expect(reported).toEqual({ keyId: lease.keyId, state: "RateLimited" });
  });

  it("no usable key is no_usable_key with retryAfterSeconds, at once by default", async () => {
    const started = performance.now();
    const err = await rejection(client().getKey("drained"));
    expect(err).toMatchObject({ code: "no_usable_key", status: 503 });
    expect(err.retryAfterSeconds).toBeGreaterThan(30);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("waits for a key when its Retry-After fits in maxWaitMs, then tries it again", async () => {
    fake.setKey(K.brief, { kind: "rateLimited", retryAfterSeconds: 2 });
    const statuses: number[] = [];
    const started = performance.now();
    const res = await client({ maxWaitMs: 10_000 }).withKey("brief", async (key) => {
      const answer = await chat(key);
      statuses.push(answer.status);
      return answer;
    });
    // The pool's only key: rested by the 429's report, waited for, and tried once more.
    expect(statuses).toEqual([429, 200]);
    expect(res.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThan(1000);
  });

  it("reads the token file on every call: a rotated token is used at once", async () => {
    const kp = client();
    await writeFile(tokenFile(), TOKEN_A);
    await kp.getKey("failover");
    await writeFile(tokenFile(), "client-token-wrong-0123456789ab");
    expect(await rejection(kp.getKey("failover"))).toMatchObject({ code: "unauthenticated", status: 401 });
    await writeFile(tokenFile(), TOKEN_B);
    expect((await kp.getKey("failover")).pool).toEqual({ namespace: "default", name: "failover" });
    await rm(tokenFile());
    expect((await rejection(kp.getKey("failover"))).code).toBe("token_unavailable");
    await writeFile(tokenFile(), TOKEN_A);
  });

  it("answers with typed errors: pool_not_found, forbidden", async () => {
    expect(await rejection(client().getKey("default/no-such-pool"))).toMatchObject({
      code: "pool_not_found",
      status: 404,
    });
    const other = new KeyPoolClient({ baseURL: serve.url, token: OTHER_POOL_TOKEN });
    expect(await rejection(other.getKey("failover"))).toMatchObject({ code: "forbidden", status: 403 });
  });

  it("compiled, works from a plain Node process that imports keypool-operator/client", async () => {
    // A consumer's node_modules/keypool-operator: package.json and tsconfig.build.json's output for src/client.
    const consumer = join(dir, "consumer");
    const pkg = join(consumer, "node_modules", "keypool-operator");
    await mkdir(pkg, { recursive: true });
    await cp(join(ROOT, "package.json"), join(pkg, "package.json"));
    await writeFile(
      join(consumer, "tsconfig.client.json"),
      JSON.stringify({
        extends: join(ROOT, "tsconfig.build.json"),
        compilerOptions: {
          rootDir: join(ROOT, "src"),
          outDir: join(pkg, "dist"),
          typeRoots: [join(ROOT, "node_modules/@types")],
        },
        include: [join(ROOT, "src/client")],
      }),
    );
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    await run(process.execPath, [tsc, "-p", join(consumer, "tsconfig.client.json")]);

    // Its types: a strict TypeScript consumer without this repository's settings type-checks.
    await writeFile(
      join(consumer, "typed.ts"),
      `import { KeyPoolClient, type Lease } from "keypool-operator/client";
const lease: Promise<Lease> = new KeyPoolClient({ baseURL: "http://127.0.0.1:1" }).getKey("default/x");
void lease;
`,
    );
    await writeFile(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "nodenext",
          target: "es2022",
          strict: true,
          noEmit: true,
          typeRoots: [join(ROOT, "node_modules/@types")],
        },
        files: ["typed.ts"],
      }),
    );
    await run(process.execPath, [tsc, "-p", join(consumer, "tsconfig.json")]);

    // Its JavaScript: Node without type stripping, resolving the package's "default" export.
    await writeFile(
      join(consumer, "main.mjs"),
      `import { KeyPoolClient } from "keypool-operator/client";
const client = new KeyPoolClient({ baseURL: process.env.KEYPOOL_URL, token: process.env.KEYPOOL_TOKEN });
const lease = await client.getKey("default/failover", { exclude: [process.env.EXCLUDE] });
const result = await client.report(lease, "success");
const error = await client.getKey("default/no-such-pool").catch((e) => e);
console.log(JSON.stringify({ keyId: lease.keyId, state: result.state, error: error.code }));
`,
    );
    const { stdout } = await run(process.execPath, ["--no-experimental-strip-types", "main.mjs"], {
      cwd: consumer,
      env: { ...process.env, KEYPOOL_URL: serve.url, KEYPOOL_TOKEN: TOKEN_A, EXCLUDE: keyId(K.limited) },
    });
    expect(JSON.parse(stdout)).toEqual({
      keyId: keyId(K.healthy),
      state: "Healthy",
      error: "pool_not_found",
    });
  });
});

describe("against keypool operator on the test control plane", () => {
  const kc = adminKubeConfig();
  const api = poolApi(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  let ns: string;
  let operator: OperatorProcess;
  let url: string;
  const tokenFile = () => join(dir, "sa-token");

  beforeAll(async () => {
    await installKeyPoolCrd();
    ns = await createTestNamespace(kc, "client");
    await api.putSecret(ns, "failover-keys", { a: K.opLimited, b: K.opHealthy });
    await api.createPool(ns, "failover", {
      provider: "openai",
      baseURL: fake.url,
      // RoundRobin hands out the keys in the order they joined: the rate-limited one first.
      strategy: "RoundRobin",
      keys: [{ secretRef: { name: "failover-keys" } }],
      health: { probeInterval: "1h" },
    });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "app" } } });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "use-failover" },
        rules: [
          {
            apiGroups: ["keypool.dev"],
            resources: ["keypools"],
            resourceNames: ["failover"],
            verbs: ["use"],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "app-uses-failover" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "use-failover" },
        subjects: [{ kind: "ServiceAccount", name: "app", namespace: ns }],
      },
    });
    // What the kubelet projects into the pod (examples/client.yaml): a token of audience keypool.
    const review = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: "app",
      body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
    });
    await writeFile(tokenFile(), review.status?.token ?? "");
    operator = startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns, "--no-probes"]);
    url = await operator.dispenserUrl();
    await api.waitForPool(ns, "failover", (p) => condition(p, "Ready")?.status === "True");
  });

  afterAll(async () => {
    await operator?.stop();
  });

  it("withKey fails over from the key answering 429 to the other; the KeyPool status shows the first RateLimited", async () => {
    fake.setKey(K.opLimited, { kind: "rateLimited", retryAfterSeconds: 60 });
    const kp = new KeyPoolClient({ baseURL: url, tokenFile: tokenFile(), namespace: ns });
    const tried: string[] = [];
    const completion = await kp.withKey("failover", (key, { lease }) => {
      tried.push(lease.keyId);
      const openai = new OpenAI({ apiKey: key, baseURL: `${fake.url}/v1`, maxRetries: 0 });
      return openai.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "Say hello" }],
      });
    });
    expect(completion.choices[0]?.message.content).toContain("Hello");
    expect(tried).toEqual([keyId(K.opLimited), keyId(K.opHealthy)]);

    // Both outcomes reached the pool: the 429 rests key 1, the success counted on key 2.
    const statuses = await api.waitForPool(ns, "failover", (p) => {
      const keys = (p.status?.keyStatuses ?? []) as KeyView[];
      const limited = keys.find((k) => k.id === keyId(K.opLimited) && k.state === "RateLimited");
      const healthy = keys.find((k) => k.id === keyId(K.opHealthy) && k.requests >= 1);
      return limited && healthy && { limited, healthy };
    });
    expect(statuses.limited.requests).toBe(1);
    expect(Date.parse(String(statuses.limited.until))).toBeGreaterThan(Date.now() + 30_000);
    expect(statuses.healthy.state).toBe("Healthy");
  });

  it("answers a pool the ServiceAccount may not use with forbidden", async () => {
    const kp = new KeyPoolClient({ baseURL: url, tokenFile: tokenFile() });
    expect(await rejection(kp.getKey(`${ns}/another-pool`))).toMatchObject({
      code: "forbidden",
      status: 403,
    });
  });
});

describe("client errors", () => {
  it("never hold a key or a token", () => {
    expect(errors.length).toBeGreaterThanOrEqual(6);
    for (const err of errors) {
      const text = `${err.message}\n${err.stack ?? ""}\n${JSON.stringify(err)}`;
      for (const secret of [...Object.values(K), TOKEN_A, TOKEN_B, OTHER_POOL_TOKEN])
        expect(text).not.toContain(secret);
    }
  });
});
