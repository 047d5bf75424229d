import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { NotificationEvent } from "../../../src/notify/event.ts";
import { Notifier, type NotifierOptions, type WebhookTarget } from "../../../src/notify/notifier.ts";
import { verifySignature } from "../../../src/notify/signature.ts";
import {
  type Answer,
  capturedLogger,
  ManualTimers,
  notificationCounts,
  RAW_KEY,
  runUntilIdle,
  sampleEvent,
  scriptedFetch,
  settle,
} from "./helpers.ts";

const POOL = "default/openai-prod";
const START_MS = Date.UTC(2026, 0, 1);
const HOOK = "https://hooks.example.com/services/T000/B000?token=query-secret";
const OTHER = "https://other.example.com/hook";
const SIGNING_KEY = "whsec-unit-signing-key";

function target(name: string, url: string, extra: Partial<WebhookTarget> = {}): WebhookTarget {
  return { name, url, events: new Set(), ...extra };
}

const notifiers: Notifier[] = [];
afterEach(() => {
  for (const n of notifiers.splice(0)) n.close();
});

function setup(script: Record<string, Answer[]>, options: Partial<NotifierOptions> = {}) {
  const timers = new ManualTimers();
  const registry = new Registry();
  const log = capturedLogger();
  const fake = scriptedFetch(script);
  const notifier = new Notifier({
    logger: log.logger,
    clock: { now: () => START_MS + timers.now },
    metrics: registry,
    timers,
    random: () => 0,
    retry: { attempts: 4, baseDelayMs: 1_000, maxDelayMs: 10_000, timeoutMs: 5_000 },
    fetch: fake.fetch,
    ...options,
  });
  notifiers.push(notifier);
  const run = () => runUntilIdle(timers, notifier);
  return { notifier, timers, registry, log, fake, run, counts: () => notificationCounts(registry) };
}

describe("the notifier", () => {
  it("posts the signed body to every webhook of the pool that wants the event", async () => {
    const t = setup({});
    t.notifier.setTargets(POOL, [
      target("slack", HOOK, { signingKey: SIGNING_KEY }),
      target("pager", OTHER, { events: new Set(["PoolUnavailable"]) }),
    ]);
    t.notifier.setTargets("other/pool", [target("elsewhere", "https://elsewhere.example.com/")]);
    t.notifier.notify(sampleEvent());
    await t.run();
    expect(t.fake.requests.map((r) => r.url)).toEqual([HOOK]);
    const [sent] = t.fake.requests;
    expect(JSON.parse(sent?.body ?? "").event).toEqual(sampleEvent());
    expect(
      verifySignature({
        body: sent?.body ?? "",
        signingKey: SIGNING_KEY,
        timestamp: sent?.headers["x-keypool-timestamp"],
        signature: sent?.headers["x-keypool-signature"],
        nowMs: START_MS,
      }),
    ).toEqual({ ok: true });
    expect(await t.counts()).toEqual({ "slack KeyInvalid delivered": 1 });
  });

  it("delivers an id once however often it is notified", async () => {
    const t = setup({});
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    for (let i = 0; i < 3; i++) t.notifier.notify(sampleEvent());
    t.notifier.notify(sampleEvent({ id: "another", type: "KeyRecovered" }));
    await t.run();
    expect(t.fake.requests.map((r) => r.headers["x-keypool-delivery"])).toEqual([
      sampleEvent().id,
      "another",
    ]);
  });

  it("forgets the oldest ids beyond its dedupe capacity", async () => {
    const t = setup({}, { dedupeCapacity: 2 });
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    for (const id of ["a", "b", "c", "a", "c"]) t.notifier.notify(sampleEvent({ id }));
    await t.run();
    expect(t.fake.requests.map((r) => r.headers["x-keypool-delivery"])).toEqual(["a", "b", "c", "a"]);
  });

  it.each<{ name: string; answers: Answer[]; attempts: number; outcome: string; delays: number[] }>([
    {
      name: "a 503 is retried after the backoff",
      answers: [503, 503, 200],
      attempts: 3,
      outcome: "delivered",
      delays: [500, 1_000],
    },
    {
      name: "a refused connection is retried",
      answers: ["refused", 200],
      attempts: 2,
      outcome: "delivered",
      delays: [500],
    },
    {
      name: "an attempt with no answer times out and is retried",
      answers: ["hang", 200],
      attempts: 2,
      outcome: "delivered",
      delays: [500],
    },
    { name: "a 408 is retried", answers: [408, 200], attempts: 2, outcome: "delivered", delays: [500] },
    {
      name: "a 429 waits its Retry-After",
      answers: [{ status: 429, headers: { "retry-after": "7" } }, 200],
      attempts: 2,
      outcome: "delivered",
      delays: [7_000],
    },
    {
      name: "a Retry-After beyond maxDelayMs waits maxDelayMs",
      answers: [{ status: 503, headers: { "retry-after": "3600" } }, 200],
      attempts: 2,
      outcome: "delivered",
      delays: [10_000],
    },
    { name: "a 404 fails at once", answers: [404], attempts: 1, outcome: "failed", delays: [] },
    { name: "a 401 fails at once", answers: [401], attempts: 1, outcome: "failed", delays: [] },
    {
      name: "a redirect fails at once (it is not followed)",
      answers: [{ status: 302, headers: { location: OTHER } }],
      attempts: 1,
      outcome: "failed",
      delays: [],
    },
    {
      name: "a 500 on every attempt fails after the last",
      answers: [500],
      attempts: 4,
      outcome: "failed",
      delays: [500, 1_000, 2_000],
    },
  ])("$name", async ({ answers, attempts, outcome, delays }) => {
    const t = setup({ [HOOK]: answers });
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    t.notifier.notify(sampleEvent());
    await t.run();
    expect(t.fake.requests.map((r) => r.headers["x-keypool-attempt"])).toEqual(
      Array.from({ length: attempts }, (_, i) => String(i + 1)),
    );
    // Every attempt sets its 5 s timeout; the other timers are the waits between attempts.
    expect(t.timers.delays.filter((ms) => ms !== 5_000)).toEqual(delays);
    const counts = await t.counts();
    expect(counts).toEqual({
      [`slack KeyInvalid ${outcome}`]: 1,
      ...(attempts > 1 ? { "slack KeyInvalid retried": attempts - 1 } : {}),
    });
    const finals = t.log.lines().filter((l) => l["msg"] === `notification ${outcome}`);
    expect(finals).toMatchObject([
      { webhook: "slack", type: "KeyInvalid", eventId: sampleEvent().id, attempts },
    ]);
  });

  it("signs each attempt with the time it is sent", async () => {
    const t = setup({ [HOOK]: [{ status: 503, headers: { "retry-after": "7" } }, 200] });
    t.notifier.setTargets(POOL, [target("slack", HOOK, { signingKey: SIGNING_KEY })]);
    t.notifier.notify(sampleEvent());
    await t.run();
    const stamps = t.fake.requests.map((r) => Number(r.headers["x-keypool-timestamp"]));
    expect(stamps).toEqual([START_MS / 1000, START_MS / 1000 + 7]);
    const retry = t.fake.requests[1];
    expect(
      verifySignature({
        body: retry?.body ?? "",
        signingKey: SIGNING_KEY,
        timestamp: retry?.headers["x-keypool-timestamp"],
        signature: retry?.headers["x-keypool-signature"],
        nowMs: START_MS + t.timers.now,
      }),
    ).toEqual({ ok: true });
  });

  it("sends a webhook's deliveries one at a time, in order, while another webhook goes on", async () => {
    const t = setup({ [HOOK]: [500, 500, 200], [OTHER]: [200] });
    t.notifier.setTargets(POOL, [target("slack", HOOK), target("pager", OTHER)]);
    const ids = ["e1", "e2", "e3"];
    for (const id of ids) t.notifier.notify(sampleEvent({ id }));
    await t.run();
    const to = (url: string) =>
      t.fake.requests.filter((r) => r.url === url).map((r) => r.headers["x-keypool-delivery"]);
    expect(to(HOOK)).toEqual(["e1", "e1", "e1", "e2", "e3"]);
    expect(to(OTHER)).toEqual(ids);
    // The second webhook was not held up by the first's retries.
    expect(t.fake.requests.slice(0, 4).map((r) => r.url)).toEqual([HOOK, OTHER, OTHER, OTHER]);
    expect(t.fake.maxInFlight).toBeLessThanOrEqual(2);
  });

  it("drops the oldest waiting delivery when a webhook's queue is full", async () => {
    const t = setup({}, { queueCapacity: 2 });
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    for (const id of ["e1", "e2", "e3", "e4"]) t.notifier.notify(sampleEvent({ id }));
    await t.run();
    // e1 went out at once; e2 was the oldest waiting when e4 came.
    expect(t.fake.requests.map((r) => r.headers["x-keypool-delivery"])).toEqual(["e1", "e3", "e4"]);
    expect(await t.counts()).toEqual({ "slack KeyInvalid delivered": 3, "slack KeyInvalid dropped": 1 });
    expect(t.log.lines().filter((l) => l["msg"] === "notification dropped")).toMatchObject([
      { eventId: "e2", error: "queue full", level: 40 },
    ]);
  });

  it("drops the deliveries of a webhook that is removed, and aborts its attempt", async () => {
    const t = setup({ [HOOK]: ["hang"] });
    t.notifier.setTargets(POOL, [target("slack", HOOK), target("pager", OTHER)]);
    for (const id of ["e1", "e2", "e3"]) t.notifier.notify(sampleEvent({ id }));
    await settle();
    t.notifier.setTargets(POOL, [target("pager", OTHER)]);
    await t.run();
    expect(t.notifier.pending).toBe(0);
    expect(await t.counts()).toEqual({ "slack KeyInvalid dropped": 3, "pager KeyInvalid delivered": 3 });
  });

  it("sends a webhook's next attempt to its new URL and key when the pool's Secret changes", async () => {
    const moved = "https://hooks.example.com/services/T000/B999";
    const t = setup({ [HOOK]: [503] });
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    t.notifier.notify(sampleEvent());
    await settle();
    t.notifier.setTargets(POOL, [target("slack", moved, { signingKey: SIGNING_KEY })]);
    await t.run();
    expect(t.fake.requests.map((r) => r.url)).toEqual([HOOK, moved]);
    expect(t.fake.requests[1]?.headers["x-keypool-signature"]).toMatch(/^sha256=/);
  });

  it("forgets a removed pool", async () => {
    const t = setup({});
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    t.notifier.removePool(POOL);
    t.notifier.notify(sampleEvent());
    await t.run();
    expect(t.fake.requests).toEqual([]);
  });

  it.each([
    ["a URL that is not http(s)", "ftp://hooks.example.com/x"],
    ["a URL that does not parse", "hooks.example.com/x"],
  ])("leaves out a webhook with %s", async (_name, url) => {
    const t = setup({});
    t.notifier.setTargets(POOL, [target("bad", url), target("slack", HOOK)]);
    t.notifier.notify(sampleEvent());
    await t.run();
    expect(t.fake.requests.map((r) => r.url)).toEqual([HOOK]);
    expect(t.log.lines()).toContainEqual(expect.objectContaining({ webhook: "bad", level: 40 }));
    expect(t.log.text()).not.toContain(url);
  });

  it("never throws and never calls out for a pool without webhooks", () => {
    const t = setup({});
    expect(() => t.notifier.notify(sampleEvent())).not.toThrow();
    expect(() => t.notifier.notify(null as unknown as NotificationEvent)).not.toThrow();
    expect(t.notifier.pending).toBe(0);
  });

  it("logs the webhook's origin only, never its path, query or signing key", async () => {
    const t = setup({ [HOOK]: ["refused", 500, 404] });
    t.notifier.setTargets(POOL, [target("slack", HOOK, { signingKey: SIGNING_KEY })]);
    t.notifier.notify(sampleEvent());
    await t.run();
    const text = t.log.text();
    expect(t.log.lines()).toContainEqual(
      expect.objectContaining({
        msg: "notification failed",
        origin: "https://hooks.example.com",
        status: 404,
      }),
    );
    for (const secret of ["query-secret", "/services/T000", SIGNING_KEY, RAW_KEY])
      expect(text).not.toContain(secret);
  });

  it("resolves drain when everything finished, or with false when its timeout passes first", async () => {
    const t = setup({ [HOOK]: ["hang"] }, { retry: { attempts: 1, timeoutMs: 60_000 } });
    expect(await t.notifier.drain()).toBe(true);
    t.notifier.setTargets(POOL, [target("slack", HOOK)]);
    t.notifier.notify(sampleEvent());
    const drained = t.notifier.drain(1_000);
    await settle();
    t.timers.fireNext(); // the drain's 1 s comes before the attempt's 60 s
    expect(await drained).toBe(false);
    const later = t.notifier.drain();
    t.timers.fireNext(); // the attempt times out: its only attempt, so it fails
    expect(await later).toBe(true);
    expect(await t.counts()).toEqual({ "slack KeyInvalid failed": 1 });
  });

  it("stops on close: the attempt in flight and the waits end, queued deliveries are dropped", async () => {
    const t = setup({ [HOOK]: [503], [OTHER]: ["hang"] });
    t.notifier.setTargets(POOL, [target("slack", HOOK), target("pager", OTHER)]);
    t.notifier.notify(sampleEvent({ id: "e1" }));
    t.notifier.notify(sampleEvent({ id: "e2" }));
    await settle();
    const drained = t.notifier.drain();
    t.notifier.close();
    expect(await drained).toBe(true);
    expect(t.timers.size).toBe(0);
    t.notifier.notify(sampleEvent({ id: "e3" }));
    expect(t.notifier.pending).toBe(0);
    expect(await t.counts()).toEqual({
      "slack KeyInvalid retried": 1,
      "slack KeyInvalid dropped": 2,
      "pager KeyInvalid dropped": 2,
    });
  });
});
