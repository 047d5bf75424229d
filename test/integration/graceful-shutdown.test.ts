/**
 * SIGTERM stops a server gracefully: it stops accepting, lets the request in flight finish,
 * saves state, and exits 0. Shown with `keypool serve` and an admin probe held open by a slow
 * fake provider. With --shutdown-delay (the operator's default is 5s), it first answers /readyz
 * with 503 while it keeps serving, so a Service moves new connections away before it closes.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { eventually } from "../support/eventually.ts";
import { serveLayout, startServe } from "../support/serve-process.ts";
import { freePort } from "../support/control-plane/control-plane.ts";

const ADMIN = "admin-token-graceful-0123456789";
const SLOW_KEY = "sk-test-graceful-slow-00000001";
let fake: FakeProvider | undefined;

afterAll(async () => {
  await fake?.close();
});

/** A `keypool serve` directory: the admin token, and one pool `name` of one key (at `baseURL`). */
function serveDir(name: string, key: string, baseURL?: string): Promise<string> {
  return serveLayout(
    name,
    ADMIN,
    `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {${name}: ${key}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: ${name}}
spec: {provider: openai, ${baseURL ? `baseURL: "${baseURL}", ` : ""}keys: [{secretRef: {name: keys}}]}
`,
  );
}

describe("graceful shutdown", () => {
  it("finishes the request in flight, refuses new ones, saves state and exits 0", async () => {
    fake = await startFakeProvider("openai", { [SLOW_KEY]: { kind: "slow", delayMs: 1500 } });
    const dir = await serveDir("slow", SLOW_KEY, fake.url);
    const server = await startServe(dir);
    const base = server.url;

    // A request that takes ~1.5 s (the provider is slow to answer the probe).
    const inFlight = fetch(`${base}/v1/pools/default/slow/probe`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    await eventually(async () => fake?.requests.some((r) => r.path === "/v1/models"), 5_000, 20);
    const exited = server.stop();

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ probed: 1 });
    await expect(fetch(`${base}/health`)).rejects.toThrow();
    expect(await exited).toBe(0);
    const state = JSON.parse(await readFile(join(dir, "state.json"), "utf8")) as {
      pools: Record<string, { keys: Array<{ id: string }> }>;
    };
    expect(state.pools["default/slow"]?.keys.map((k) => k.id)).toEqual([keyId(SLOW_KEY)]);
  });

  it("with --shutdown-delay, is not ready but keeps serving for the delay, then stops", async () => {
    const dir = await serveDir("drain", "sk-test-graceful-drain-00000002");
    const probesPort = await freePort();
    const server = await startServe(dir, {
      KEYPOOL_SHUTDOWN_DELAY: "2s",
      KEYPOOL_PROBES_PORT: String(probesPort),
    });
    const readyz = () => fetch(`http://127.0.0.1:${probesPort}/readyz`);
    const key = () =>
      fetch(`${server.url}/v1/pools/default/drain/key`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect((await readyz()).status).toBe(200);

    let exitedAt: number | undefined;
    const signalled = performance.now();
    const exited = server.stop().then((code) => {
      exitedAt = performance.now();
      return code;
    });
    await eventually(async () => (await readyz()).status === 503, 1_000, 20);
    expect(await (await readyz()).json()).toMatchObject({ shuttingDown: true });
    // Still serving: a caller a Service routed here before it saw the 503 gets its key.
    const answer = await key();
    expect(answer.status).toBe(200);
    expect(exitedAt).toBeUndefined();
    expect(await exited).toBe(0);
    console.log(`drain: exited ${Math.round((exitedAt ?? 0) - signalled)} ms after SIGTERM (delay 2 s)`);
    await expect(key()).rejects.toThrow();
  });
});
