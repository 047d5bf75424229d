/**
 * ResourceWatcher against a scripted HTTP server, for the answers a real API server will not give
 * on demand: an expired continue token, an HTTP 410 on a watch, 5xx answers, a connection that
 * goes silent. The normal paths run against a real kube-apiserver in
 * test/integration/watcher.test.ts.
 */
import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import {
  ResourceWatcher,
  type WatcherOptions,
  type WatchEventType,
} from "../../../src/controller/watcher.ts";
import { createLogger } from "../../../src/log.ts";
import { ManualClock } from "../../../src/pool/clock.ts";

const PATH = "/api/v1/namespaces/ns/secrets";
const logger = createLogger({ level: (process.env.TEST_LOG_LEVEL as "debug" | undefined) ?? "silent" });

type Reply = { status: number; body: unknown };
type Line = { type: string; object: unknown };

interface Script {
  /** Answers the i-th LIST request (0-based). */
  list: (url: URL, i: number) => Reply;
  /** Serves the i-th watch request; write to `res` (and end it, or not). */
  watch: (url: URL, i: number, res: ServerResponse) => void;
}

interface Fake {
  kc: KubeConfig;
  lists: URL[];
  watches: URL[];
  /** TCP connections accepted so far. */
  connections: number;
  /** Watch requests whose connection the client closed. */
  watchesClosedByClient: number;
  close(): Promise<void>;
}

const fakes: Fake[] = [];
const watchers: ResourceWatcher<KubernetesObject>[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.stop()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function fakeApiServer(script: Script): Promise<Fake> {
  const fake: Fake = {
    kc: new KubeConfig(),
    lists: [],
    watches: [],
    connections: 0,
    watchesClosedByClient: 0,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://fake");
    if (url.pathname !== PATH) {
      reply(res, { status: 404, body: status(404, "NotFound") });
    } else if (url.searchParams.get("watch") === "true") {
      fake.watches.push(url);
      res.on("close", () => {
        if (!res.writableFinished) fake.watchesClosedByClient++;
      });
      script.watch(url, fake.watches.length - 1, res);
    } else {
      fake.lists.push(url);
      reply(res, script.list(url, fake.lists.length - 1));
    }
  });
  server.on("connection", () => fake.connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  fake.kc.loadFromOptions({
    clusters: [{ name: "fake", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "fake", token: "not-a-real-token" }],
    contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
    currentContext: "fake",
  });
  fakes.push(fake);
  return fake;
}

function reply(res: ServerResponse, { status: code, body }: Reply) {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function status(code: number, reason: string) {
  return { kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message: `${reason} (fake)` };
}

function secret(name: string, resourceVersion: string): KubernetesObject {
  return { metadata: { name, namespace: "ns", resourceVersion } };
}

function list(resourceVersion: string, items: KubernetesObject[], continueToken?: string): Reply {
  return {
    status: 200,
    body: {
      kind: "SecretList",
      apiVersion: "v1",
      metadata: { resourceVersion, ...(continueToken ? { continue: continueToken } : {}) },
      items,
    },
  };
}

/** Starts a watch response and writes events; ends it when asked, else leaves it open. */
function stream(res: ServerResponse, lines: Line[], end = false) {
  res.writeHead(200, { "content-type": "application/json" }).flushHeaders();
  for (const line of lines) res.write(`${JSON.stringify(line)}\n`);
  if (end) res.end();
}

/** A watch that stays open and silent (until the client gives up). */
const hold = (_url: URL, _i: number, res: ServerResponse) => stream(res, []);

function start(fake: Fake, options: Partial<WatcherOptions<KubernetesObject>> = {}) {
  const events: string[] = [];
  const clock = new ManualClock();
  const watcher = new ResourceWatcher<KubernetesObject>({
    kc: fake.kc,
    path: PATH,
    labelSelector: "keypool.dev/secret",
    logger,
    clock,
    backoff: { initialMs: 10, maxMs: 40 },
    watchdogMs: 5_000,
    onEvent: (type: WatchEventType, object, old) =>
      events.push(
        `${type} ${object.metadata?.name}@${object.metadata?.resourceVersion}` +
          (old ? ` (was @${old.metadata?.resourceVersion})` : ""),
      ),
    ...options,
  });
  watchers.push(watcher);
  return { watcher, events, clock };
}

async function until(condition: () => boolean, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("ResourceWatcher (scripted server)", () => {
  it("lists page by page over one connection, and lists again in one request when a continue token expired", async () => {
    const fake = await fakeApiServer({
      list: (url, i) =>
        [
          () => list("10", [secret("a", "1"), secret("b", "2")], "token-1"),
          () => ({ status: 410, body: status(410, "Expired") }),
          () => list("12", [secret("a", "1"), secret("b", "2"), secret("c", "12")]),
        ][i]?.() ?? list("12", []),
      watch: hold,
    });
    const { watcher, events } = start(fake, { pageSize: 2 });
    await watcher.start();
    expect(watcher.size).toBe(3);
    expect(events).toEqual(["ADDED a@1", "ADDED b@2", "ADDED c@12"]);
    expect(watcher.stats).toMatchObject({ lists: 1, relists410: 1, errors: 0 });
    expect(fake.lists.map((u) => [u.searchParams.get("limit"), u.searchParams.get("continue")])).toEqual([
      ["2", null],
      ["2", "token-1"],
      [null, null],
    ]);
    expect(fake.lists.every((u) => u.searchParams.get("labelSelector") === "keypool.dev/secret")).toBe(true);
    // Items get the kind and apiVersion their list omits.
    expect(watcher.get("ns", "c")).toMatchObject({ kind: "Secret", apiVersion: "v1" });

    await until(() => watcher.connected);
    const w = fake.watches[0];
    expect(w?.searchParams.get("resourceVersion")).toBe("12");
    expect(w?.searchParams.get("allowWatchBookmarks")).toBe("true");
    expect(Number(w?.searchParams.get("timeoutSeconds"))).toBeGreaterThanOrEqual(300);
    expect(Number(w?.searchParams.get("timeoutSeconds"))).toBeLessThan(600);
    // Three list pages and the watch went through one agent's kept-alive connections: at most two
    // (a request can go out just before the previous one's socket is back in the pool), where an
    // agent per request would open four.
    expect(fake.connections).toBeLessThanOrEqual(2);
  });

  it("relists on an HTTP 410 from a watch and emits what changed meanwhile", async () => {
    const fake = await fakeApiServer({
      list: (_url, i) =>
        i === 0
          ? list("5", [secret("a", "1"), secret("b", "1"), secret("same", "1")])
          : list("9", [secret("a", "7"), secret("c", "8"), secret("same", "1")]),
      watch: (_url, i, res) =>
        i === 0 ? reply(res, { status: 410, body: status(410, "Expired") }) : hold(_url, i, res),
    });
    const { watcher, events } = start(fake);
    await watcher.start();
    await until(() => watcher.stats.lists === 2 && watcher.connected);
    expect(events).toEqual([
      "ADDED a@1",
      "ADDED b@1",
      "ADDED same@1",
      "MODIFIED a@7 (was @1)",
      "ADDED c@8",
      "DELETED b@1 (was @1)",
    ]);
    expect(watcher.stats).toMatchObject({ relists410: 1, errors: 0 });
    expect(fake.watches.map((u) => u.searchParams.get("resourceVersion"))).toEqual(["5", "9"]);
    expect(watcher.list().map((o) => o.metadata?.name)).toEqual(["a", "c", "same"]);
  });

  it("relists on an ERROR event carrying a 410 Status", async () => {
    const fake = await fakeApiServer({
      list: (_url, i) => list(String(10 + i), [secret("a", "1")]),
      watch: (url, i, res) =>
        i === 0 ? stream(res, [{ type: "ERROR", object: status(410, "Expired") }]) : hold(url, i, res),
    });
    const { watcher } = start(fake);
    await watcher.start();
    await until(() => watcher.stats.lists === 2 && watcher.connected);
    expect(watcher.stats).toMatchObject({ relists410: 1, errors: 0 });
    expect(fake.watches.map((u) => u.searchParams.get("resourceVersion"))).toEqual(["10", "11"]);
  });

  it("retries failed watches with backoff and resumes from the last resourceVersion, bookmarks included", async () => {
    const fake = await fakeApiServer({
      list: () => list("5", []),
      watch: (url, i, res) => {
        if (i === 0) reply(res, { status: 500, body: status(500, "InternalError") });
        else if (i === 1) reply(res, { status: 403, body: status(403, "Forbidden") });
        else if (i === 2)
          stream(
            res,
            [
              { type: "ADDED", object: secret("d", "6") },
              { type: "BOOKMARK", object: { kind: "Secret", metadata: { resourceVersion: "8" } } },
            ],
            true,
          );
        else if (i === 3) stream(res, [{ type: "ERROR", object: status(500, "InternalError") }]);
        else hold(url, i, res);
      },
    });
    const { watcher, events } = start(fake);
    await watcher.start();
    await until(() => fake.watches.length === 5 && watcher.connected);
    expect(fake.watches.map((u) => u.searchParams.get("resourceVersion"))).toEqual(["5", "5", "5", "8", "8"]);
    expect(events).toEqual(["ADDED d@6"]);
    // 500, 403 and the ERROR event are errors; the clean close is not. None of them relists.
    expect(watcher.stats).toMatchObject({ lists: 1, errors: 3, relists410: 0, watchesStarted: 5 });
  });

  it("aborts a watch that goes silent, or never answers, and relists", async () => {
    const fake = await fakeApiServer({
      list: (_url, i) => list(String(20 + i), [secret("a", "1")]),
      watch: (url, i, res) => {
        // The first sends headers and then nothing; the second never even answers.
        if (i === 0) stream(res, []);
        else if (i === 1) return;
        else hold(url, i, res);
      },
    });
    const { watcher } = start(fake, { watchdogMs: 300 });
    await watcher.start();
    await until(() => watcher.stats.watchdogAborts >= 2 && watcher.stats.lists >= 3);
    await until(() => fake.watchesClosedByClient >= 2 && fake.watches.length >= 3);
    expect(watcher.stats.errors).toBe(0);
    expect(fake.watches.map((u) => u.searchParams.get("resourceVersion")).slice(0, 3)).toEqual([
      "20",
      "21",
      "22",
    ]);
  });

  it("keeps retrying the first list, and start() resolves once it succeeds", async () => {
    const fake = await fakeApiServer({
      list: (_url, i) =>
        i < 3 ? { status: 503, body: status(503, "ServiceUnavailable") } : list("3", [secret("a", "1")]),
      watch: hold,
    });
    const { watcher } = start(fake);
    expect(watcher.synced).toBe(false);
    await watcher.start();
    expect(watcher.synced).toBe(true);
    expect(watcher.stats).toMatchObject({ lists: 1, errors: 3 });
  });

  it("rejects start() with watcher_stopped when stopped before the first list", async () => {
    const fake = await fakeApiServer({
      list: () => ({ status: 503, body: status(503, "ServiceUnavailable") }),
      watch: hold,
    });
    const { watcher } = start(fake);
    const started = watcher.start();
    await until(() => watcher.stats.errors >= 2);
    await watcher.stop();
    await expect(started).rejects.toMatchObject({ code: "watcher_stopped" });
    await expect(watcher.start()).rejects.toMatchObject({ code: "watcher_stopped" });
    expect(watcher.synced).toBe(false);
  });

  it("answers relist() with a fresh list, skips repeated events, and survives an onEvent that throws", async () => {
    let fail = true;
    const fake = await fakeApiServer({
      list: (_url, i) => list(String(30 + i), [secret("a", i === 0 ? "1" : "2")]),
      watch: (url, i, res) =>
        // A resumed watch may repeat what the cache holds: nothing is emitted for it.
        i === 0 ? stream(res, [{ type: "MODIFIED", object: secret("a", "1") }]) : hold(url, i, res),
    });
    const seen: string[] = [];
    const { watcher, clock } = start(fake, {
      onEvent: (type, object) => {
        seen.push(`${type} ${object.metadata?.name}@${object.metadata?.resourceVersion}`);
        if (fail) {
          fail = false;
          throw new Error("a consumer bug");
        }
      },
    });
    await watcher.start();
    await until(() => watcher.connected);
    await watcher.relist();
    expect(watcher.stats.lists).toBe(2);
    expect(seen).toEqual(["ADDED a@1", "MODIFIED a@2"]);
    // Liveness is judged by the injected clock: the relist was the last sign of life.
    clock.advance(1_234);
    expect(watcher.staleForMs()).toBe(1_234);
  });
});
