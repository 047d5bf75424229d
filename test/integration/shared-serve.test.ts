/**
 * Two standalone `keypool serve` processes on one Redis (--state-store redis://), reading the same
 * manifests directory: a key's requestsPerMinute is counted once for both, a 429 reported to one
 * stops the other at once, and a process started later takes the cooldown from the store. Every
 * Redis key is under --state-store-prefix, and none holds key material.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/pool/identity.ts";
import { freePort } from "../support/control-plane/control-plane.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { type ServeProcess, spawnServe } from "../support/serve-process.ts";
import { type Dispensed, dispenseAt, poolViewAt, reportAt } from "../support/shared-state.ts";

const PREFIX = "kpserve:";
const KEYS = {
  limited: "sk-test-serve-shared-limited-0001",
  a: "sk-test-serve-shared-pair-a-00002",
  b: "sk-test-serve-shared-pair-b-00003",
  c: "sk-test-serve-shared-later-c-0004",
  d: "sk-test-serve-shared-later-d-0005",
};

let dir: string;
let redis: RedisServer;
const servers: ServeProcess[] = [];

async function serve(): Promise<ServeProcess> {
  const port = await freePort();
  const server = await spawnServe(
    [
      ...["--manifests", join(dir, "manifests")],
      ...["--port", String(port), "--auth", "none"],
      ...["--state-store", redis.url, "--state-store-prefix", PREFIX],
    ],
    {},
    port,
  );
  servers.push(server);
  return server;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keypool-shared-serve-"));
  await mkdir(join(dir, "manifests"));
  const pool = (name: string, keys: string) =>
    `---\napiVersion: keypool.dev/v1alpha1\nkind: KeyPool\nmetadata: {name: ${name}}\nspec: {provider: openai, strategy: RoundRobin, keys: [${keys}]}\n`;
  await writeFile(
    join(dir, "manifests", "pools.yaml"),
    `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {${Object.entries(KEYS)
      .map(([entry, key]) => `${entry}: ${key}`)
      .join(", ")}}
${pool("limited", "{secretRef: {name: keys, key: limited}, limits: {requestsPerMinute: 5}}")}${pool(
      "pair",
      "{secretRef: {name: keys, key: a}}, {secretRef: {name: keys, key: b}}",
    )}${pool("later", "{secretRef: {name: keys, key: c}}, {secretRef: {name: keys, key: d}}")}`,
  );
  redis = await startRedis();
  await Promise.all([serve(), serve()]);
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("two keypool serve processes on one Redis", () => {
  it("count a key's requestsPerMinute once for both: 20 dispenses alternating, exactly 5 succeed", async () => {
    const [one, two] = servers as [ServeProcess, ServeProcess];
    const results: Dispensed[] = [];
    for (let i = 0; i < 20; i++)
      results.push(await dispenseAt((i % 2 ? two : one).url, "default", "limited"));
    const ok = results.filter((d) => d.status === 200);
    console.log(
      `serve: rpm 5, 20 dispenses alternating: ${ok.length} succeeded (${results.flatMap((d, i) => (d.status === 200 ? [i % 2] : [])).join(",")} by process)`,
    );
    expect(ok.length).toBe(5);
    expect(ok.every((d) => d.leaseId?.match(/^[^.]+\.[^.]+\.[0-9a-f]{8}$/))).toBe(true);
    expect(
      results
        .filter((d) => d.status !== 200)
        .filter((d) => d.status !== 503 || d.code !== "no_usable_key" || !(Number(d.retryAfter) > 0)),
    ).toEqual([]);
  });

  it("a 429 reported to one stops the other handing the key out", async () => {
    const [one, two] = servers as [ServeProcess, ServeProcess];
    const first = await dispenseAt(one.url, "default", "pair");
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const k = first.keyId as string;
    const reported = await reportAt(one.url, "default", "pair", {
      leaseId: first.leaseId,
      statusCode: 429,
      headers: { "retry-after": "60" },
    });
    expect(reported.status, JSON.stringify(reported.json)).toBe(200);
    expect(reported.json.state).toBe("RateLimited");
    const t = performance.now();
    const handedOut: string[] = [];
    for (let i = 0; i < 10; i++) {
      const d = await dispenseAt(two.url, "default", "pair");
      expect(d.status, JSON.stringify(d.body)).toBe(200);
      handedOut.push(d.keyId as string);
      await reportAt(two.url, "default", "pair", { leaseId: d.leaseId, outcome: "success" });
    }
    console.log(
      `serve: 10 dispenses on the other process in ${Math.round(performance.now() - t)} ms after the report`,
    );
    expect(handedOut.filter((id) => id === k)).toEqual([]);
    // The other process knows the key's state too (it merged the published transition).
    const view = (await poolViewAt(two.url, "default", "pair")).find((v) => v.id === k);
    expect(view?.state).toBe("RateLimited");
  });

  it("a process started after the 429 takes the cooldown from the store", async () => {
    const [one] = servers as [ServeProcess, ServeProcess];
    const k = keyId(KEYS.c);
    const reported = await reportAt(one.url, "default", "later", {
      keyId: k,
      statusCode: 429,
      headers: { "retry-after": "60" },
    });
    expect(reported.json.state).toBe("RateLimited");
    const reportedAt = Date.now();
    const third = await serve();
    const handedOut: string[] = [];
    for (let i = 0; i < 6; i++) {
      const d = await dispenseAt(third.url, "default", "later");
      expect(d.status, JSON.stringify(d.body)).toBe(200);
      handedOut.push(d.keyId as string);
    }
    expect(handedOut.filter((id) => id === k)).toEqual([]);
    const view = (await poolViewAt(third.url, "default", "later")).find((v) => v.id === k);
    console.log(
      `serve: the process started after the 429 shows the key ${view?.state}${view?.until ? ` until ${view.until}` : ""}; ` +
        `Redis holds ${String(await redis.command("GET", `${PREFIX}{default/later}:s:${k}`))}`,
    );
    expect(view?.state).toBe("RateLimited");
    expect(Math.abs(Date.parse(view?.until ?? "") - (reportedAt + 60_000))).toBeLessThan(2_000);
  });

  it("writes every Redis key under the prefix, and no key material", async () => {
    const dump = await redis.dump();
    expect(dump.length).toBeGreaterThan(0);
    expect(dump.filter((d) => !d.key.startsWith(PREFIX)).map((d) => d.key)).toEqual([]);
    const raw = Object.values(KEYS);
    expect(dump.filter((d) => raw.some((k) => d.key.includes(k) || d.value.includes(k)))).toEqual([]);
  });
});
