/**
 * `keypool serve` as users run it without a cluster: pools from a manifests directory and
 * *_KEYS variables, static bearer tokens, keys added and removed at run time (admin token
 * only), and state that survives a restart.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { threadsOf } from "../../src/background-threads.ts";
import { keyId } from "../../src/pool/identity.ts";
import { freePort } from "../support/control-plane/control-plane.ts";
import { eventually } from "../support/eventually.ts";
import { threadStat } from "../support/proc.ts";
import { type ServeProcess, spawnServe, startServe } from "../support/serve-process.ts";

const USE_TOKEN = "use-token-0123456789abcdef";
const ADMIN_TOKEN = "admin-token-0123456789abcdef";
let dir: string;
let server: ServeProcess | undefined;
let port: number;
let logs = "";

async function start() {
  server = await startServe(dir, { GPT_4_KEYS: "sk-test-env-gpt4-aaaaaaaa,sk-test-env-gpt4-bbbbbbbb" });
  port = Number(new URL(server.url).port);
}

async function stop() {
  if (!server) return;
  await server.stop();
  logs += server.output();
}

async function call(path: string, token: string | undefined, body?: unknown, method?: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The manifests directory's one file: a Secret with `keys` and the KeyPool "files" using it. */
async function writePool(keys: Record<string, string>) {
  const data = Object.entries(keys)
    .map(([entry, key]) => `${entry}: ${key}`)
    .join(", ");
  await writeFile(
    join(dir, "manifests", "pool.yaml"),
    `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {${data}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: files}
spec: {provider: openai, strategy: RoundRobin, keys: [{secretRef: {name: keys}}]}
`,
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keypool-serve-"));
  await import("node:fs/promises").then((fs) => fs.mkdir(join(dir, "manifests")));
  await writeFile(
    join(dir, "tokens.yaml"),
    `tokens:\n  - {name: app, token: ${USE_TOKEN}, pools: ["default/*"]}\n  - {name: ops, token: ${ADMIN_TOKEN}, pools: ["*"], verbs: [use, update]}\n`,
  );
  await writePool({ a: "sk-test-file-key-aaaaaaaa" });
  await start();
});

afterAll(async () => {
  await stop();
});

describe("keypool serve", () => {
  it("serves pools from the manifests directory and from GPT_4_KEYS, to token holders only", async () => {
    expect((await call("/v1/pools/default/files/key", undefined)).status).toBe(401);
    expect((await call("/v1/pools/default/files/key", "wrong-token-0123456789")).status).toBe(401);
    const fromFile = await call("/v1/pools/default/files/key", USE_TOKEN);
    expect(fromFile.json.key).toBe("sk-test-file-key-aaaaaaaa");
    const fromEnv = await call("/keys/gpt-4", USE_TOKEN);
    expect(fromEnv.json).toMatchObject({
      success: true,
      model: "gpt-4",
      pool: { totalKeys: 2, healthyKeys: 2 },
    });
  });

  it("adds and removes keys at run time with an admin token only", async () => {
    const key = { key: "sk-test-runtime-added-cccccccc" };
    expect((await call("/keys/files", undefined, key)).status).toBe(401);
    expect((await call("/keys/files", USE_TOKEN, key)).json).toMatchObject({ error: { code: "forbidden" } });
    const added = await call("/keys/files", ADMIN_TOKEN, key);
    expect(added.status).toBe(201);
    expect(added.json.keyId).toBe(keyId(key.key));
    expect((await call("/keys/files", ADMIN_TOKEN, key)).status).toBe(409);
    const pool = await call("/v1/pools/default/files", USE_TOKEN);
    expect((pool.json.keys as { total: number }).total).toBe(2);
    // A manifest's key cannot be removed through the API: it would come back.
    const manifestKey = await call(
      "/keys/files",
      ADMIN_TOKEN,
      { key: "sk-test-file-key-aaaaaaaa" },
      "DELETE",
    );
    expect(manifestKey.status).toBe(405);
    // A GPT_4_KEYS key can be removed (until restart), with verb update only.
    const envKey = { key: "sk-test-env-gpt4-bbbbbbbb" };
    expect((await call("/keys/gpt-4", USE_TOKEN, envKey, "DELETE")).status).toBe(403);
    const removed = await call("/keys/gpt-4", ADMIN_TOKEN, envKey, "DELETE");
    expect(removed.json).toMatchObject({ success: true, keyId: keyId(envKey.key) });
    expect((await call("/keys/gpt-4", USE_TOKEN)).json.pool).toEqual({ totalKeys: 1, healthyKeys: 1 });
  });

  it("keeps state and added keys across a restart, in a file only its owner can read", async () => {
    await call("/health/files", USE_TOKEN, { key: "sk-test-file-key-aaaaaaaa", status: "failed" });
    await stop();
    expect((await stat(join(dir, "state.json"))).mode & 0o777).toBe(0o600);
    await start();
    const pool = await call("/v1/pools/default/files", USE_TOKEN);
    const states = Object.fromEntries(
      (pool.json.keyStatuses as Array<{ id: string; state: string }>).map((k) => [k.id, k.state]),
    );
    expect(states).toEqual({
      [keyId("sk-test-file-key-aaaaaaaa")]: "Invalid",
      [keyId("sk-test-runtime-added-cccccccc")]: "Healthy",
    });
    const removed = await call(
      "/keys/files",
      ADMIN_TOKEN,
      { key: "sk-test-runtime-added-cccccccc" },
      "DELETE",
    );
    expect(removed.status).toBe(200);
  });

  it("follows the manifests directory: a new Secret entry joins without a restart", async () => {
    await writePool({ a: "sk-test-file-key-aaaaaaaa", b: "sk-test-file-key-dddddddd" });
    const got = await eventually(
      async () => {
        const res = await call("/v1/pools/default/files/key", USE_TOKEN);
        return res.json.key === "sk-test-file-key-dddddddd" ? res : undefined;
      },
      15_000,
      200,
    );
    expect(got.status).toBe(200);
  });

  it.runIf(process.platform === "linux")(
    "runs V8's worker threads at nice 19, so GC and compiler work waits for the request thread",
    async () => {
      const pid = server?.child.pid as number;
      const threads = threadsOf(pid).map(({ tid, name }) => ({ name, nice: threadStat(pid, tid).nice }));
      const workers = threads.filter((t) => t.name === "V8Worker");
      expect(workers.length).toBeGreaterThan(0);
      expect(workers.map((t) => t.nice)).toEqual(workers.map(() => 19));
      const others = threads.filter((t) => t.name !== "V8Worker");
      expect(others.map((t) => t.nice)).toEqual(others.map(() => threadStat(process.pid, process.pid).nice)); // inherited from the runner
    },
  );

  it("never logs a key", () => {
    const all = logs + (server?.output() ?? "");
    for (const raw of [
      "sk-test-file-key-aaaaaaaa",
      "sk-test-env-gpt4-aaaaaaaa",
      "sk-test-runtime-added-cccccccc",
      USE_TOKEN,
      ADMIN_TOKEN,
    ]) {
      expect(all).not.toContain(raw);
    }
  });
});

describe("keypool serve's log", () => {
  it("says each key transition and each start-up problem once", async () => {
    const own = await mkdtemp(join(tmpdir(), "keypool-serve-log-"));
    await mkdir(join(own, "manifests"));
    const key = "sk-test-log-once-key-aaaaaaaa";
    await writeFile(
      join(own, "manifests", "pools.yaml"),
      `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: ${key}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: logged}
spec: {provider: openai, keys: [{secretRef: {name: keys}}]}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: broken}
spec: {provider: no-such-provider, keys: [{secretRef: {name: keys}}]}
`,
    );
    const servePort = await freePort();
    const serve = await spawnServe(
      ["--manifests", join(own, "manifests"), "--port", String(servePort)],
      {},
      servePort,
    );
    let output: string;
    try {
      const res = await fetch(`${serve.url}/v1/pools/default/logged/report`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ keyId: keyId(key), statusCode: 401 }),
      });
      expect(res.status).toBe(200);
    } finally {
      await serve.stop();
      output = serve.output();
      await rm(own, { recursive: true, force: true });
    }
    const lines = output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg: string; keyId?: string; to?: string });
    expect(
      lines.filter((l) => l.msg === "key state changed" && l.keyId === keyId(key)).map((l) => l.to),
    ).toEqual(["Invalid"]);
    expect(lines.filter((l) => l.msg.includes("KeyPool default/broken is invalid"))).toHaveLength(1);
    expect(output).not.toContain(key);
  });
});
