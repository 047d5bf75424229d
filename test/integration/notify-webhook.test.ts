/**
 * Webhook notifications against a real HTTP receiver on 127.0.0.1: retries and dedupe as the
 * receiver sees them, signatures checked with the shared key as a receiver would, the metric,
 * a permanent refusal, and a receiver that never answers. Small retry delays: the file takes
 * about a second (mostly the one timeout).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { NotificationEvent } from "../../src/notify/event.ts";
import { Notifier, type WebhookTarget } from "../../src/notify/notifier.ts";
import { verifySignature } from "../../src/notify/signature.ts";

const SIGNING_KEY = "whsec-integration-shared-key";
const RAW_KEY = "sk-proj-Zq8vN3xT5yW2kL9mR4pB7cD1fH6jQ0sA2uE8iO3aabcd";
const POOL = { namespace: "notify-webhook", name: "openai-prod" };

interface Received {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The status the receiver answered, or "hung" for a request left without an answer. */
  answer: number | "hung";
}

/** A webhook receiver: `decide` gets the number of the request (1 for the first) and answers it. */
async function startReceiver(decide: (n: number) => number | "hang") {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const answer = decide(received.length + 1);
      received.push({
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        answer: answer === "hang" ? "hung" : answer,
      });
      if (answer === "hang") hanging.push(res);
      else res.writeHead(answer, { "content-type": "text/plain" }).end(answer < 300 ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    received,
    close: () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function startNotifier() {
  const registry = new Registry();
  const lines: string[] = [];
  const logger = pino(
    { level: "debug" },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString("utf8"));
        callback();
      },
    }),
  );
  const notifier = new Notifier({
    logger,
    clock: { now: () => Date.now() },
    metrics: registry,
    retry: { attempts: 4, baseDelayMs: 20, maxDelayMs: 100, timeoutMs: 1_000 },
  });
  cleanups.push(() => notifier.close());
  const counts = async () => {
    const metric = await registry.getSingleMetric("keypool_notifications_total")?.get();
    const found: Record<string, number> = {};
    for (const { labels, value } of metric?.values ?? []) {
      const name = `${labels["webhook"]} ${labels["outcome"]}`; // summed over event types
      found[name] = (found[name] ?? 0) + value;
    }
    return found;
  };
  return { notifier, counts, log: () => lines.join("") };
}

function event(id: string, overrides: Partial<NotificationEvent> = {}): NotificationEvent {
  return {
    id,
    type: "KeyInvalid",
    pool: POOL,
    key: { id: "3f9ac2e1b0d4", masked: "sk-...abcd" },
    reason: "invalid_api_key",
    message: "The key was rejected by OpenAI (401 invalid_api_key) and left rotation.",
    at: "2026-01-01T00:00:00Z",
    ...overrides,
  };
}

function webhook(name: string, url: string): WebhookTarget {
  return { name, url, signingKey: SIGNING_KEY, events: new Set() };
}

const poolKey = `${POOL.namespace}/${POOL.name}`;

describe("webhook notifications to a real receiver", () => {
  it("delivers each event once, signed, through two 500s", async () => {
    const receiver = await startReceiver((n) => (n <= 2 ? 500 : 200));
    cleanups.push(receiver.close);
    const { notifier, counts } = startNotifier();
    notifier.setTargets(poolKey, [webhook("team-slack", `${receiver.base}/hooks/team`)]);

    for (let i = 0; i < 3; i++) notifier.notify(event("ev-invalid-1"));
    notifier.notify(event("ev-recovered-1", { type: "KeyRecovered", reason: "probe_ok", message: "Back." }));
    expect(await notifier.drain(10_000)).toBe(true);

    const accepted = receiver.received.filter((r) => r.answer === 200);
    expect(accepted.map((r) => r.headers["x-keypool-delivery"])).toEqual(["ev-invalid-1", "ev-recovered-1"]);
    expect(accepted.map((r) => JSON.parse(r.body).event.id)).toEqual(["ev-invalid-1", "ev-recovered-1"]);
    expect(
      receiver.received.map((r) => [
        r.headers["x-keypool-delivery"],
        r.headers["x-keypool-attempt"],
        r.answer,
      ]),
    ).toEqual([
      ["ev-invalid-1", "1", 500],
      ["ev-invalid-1", "2", 500],
      ["ev-invalid-1", "3", 200],
      ["ev-recovered-1", "1", 200],
    ]);
    for (const r of receiver.received) {
      expect(r.headers["x-keypool-event"]).toBe(JSON.parse(r.body).event.type);
      const check = (signingKey: string) =>
        verifySignature({
          body: r.body,
          signingKey,
          timestamp: r.headers["x-keypool-timestamp"] as string,
          signature: r.headers["x-keypool-signature"] as string,
          nowMs: Date.now(),
        });
      expect(check(SIGNING_KEY)).toEqual({ ok: true });
      expect(check("not-the-shared-key")).toEqual({ ok: false, reason: "signature_mismatch" });
      expect(r.body).not.toContain(RAW_KEY);
    }
    expect(await counts()).toEqual({ "team-slack delivered": 2, "team-slack retried": 2 });
  });

  it("gives up on a 404 at once, and logs the receiver's origin only", async () => {
    const receiver = await startReceiver(() => 404);
    cleanups.push(receiver.close);
    const { notifier, counts, log } = startNotifier();
    notifier.setTargets(poolKey, [webhook("deleted-hook", `${receiver.base}/services/T0/B0?token=hunter2`)]);

    notifier.notify(event("ev-gone-1", { type: "PoolUnavailable", key: undefined, message: "No key left." }));
    expect(await notifier.drain(10_000)).toBe(true);

    expect(receiver.received.map((r) => [r.url, r.answer])).toEqual([["/services/T0/B0?token=hunter2", 404]]);
    expect(await counts()).toEqual({ "deleted-hook failed": 1 });
    expect(log()).toContain(`"origin":"${receiver.base}"`);
    for (const secret of ["hunter2", "/services/T0", SIGNING_KEY]) expect(log()).not.toContain(secret);
  });

  it("times out a receiver that never answers and tries again", async () => {
    const receiver = await startReceiver((n) => (n === 1 ? "hang" : 200));
    cleanups.push(receiver.close);
    const { notifier, counts } = startNotifier();
    notifier.setTargets(poolKey, [webhook("slow-hook", `${receiver.base}/slow`)]);

    notifier.notify(
      event("ev-slow-1", { type: "BudgetExhausted", key: undefined, message: "Budget spent." }),
    );
    expect(await notifier.drain(10_000)).toBe(true);

    expect(receiver.received.map((r) => [r.headers["x-keypool-attempt"], r.answer])).toEqual([
      ["1", "hung"],
      ["2", 200],
    ]);
    expect(await counts()).toEqual({ "slow-hook delivered": 1, "slow-hook retried": 1 });
  });
});
