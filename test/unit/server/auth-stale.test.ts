/**
 * KubernetesAuth while the API server cannot answer: the last decision is served for up to the
 * stale grace (never turning a denial into an allow, never past the token's exp), a circuit
 * breaker answers at once instead of letting callers wait out timeouts, and an outage is logged
 * once. Time is an injected clock; the API server is a scriptable fake on loopback.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PoolRegistry } from "../../../src/pool/registry.ts";
import { createLogger } from "../../../src/log.ts";
import { KubernetesAuth, type KubernetesAuthOptions } from "../../../src/server/auth.ts";
import type { AuthDecision } from "../../../src/server/authorizer.ts";
import { createMetrics } from "../../../src/server/metrics.ts";
import { type FakeReviewApi, type ReviewMode, startFakeReviewApi } from "./fake-review-api.ts";

const TTL = 10_000;
const GRACE = 300_000;
const OPEN_MS = 1_000;
const TIMEOUT_MS = 150;
const NS = "ai";
const POOL = "openai-prod";

const jwt = (payload: unknown) =>
  `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;

let api: FakeReviewApi;
let now: number;
let lines: Array<Record<string, unknown>>;

beforeEach(async () => {
  api = await startFakeReviewApi();
  now = 1_800_000_000_000;
  lines = [];
  api.tokens.set("alice-token", "alice");
  api.grants.add(`alice use ${NS}/${POOL}`);
});

afterEach(async () => {
  await api.close();
});

function newAuth(options: Partial<KubernetesAuthOptions> = {}): KubernetesAuth {
  const logger = createLogger({
    level: "debug",
    destination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return new KubernetesAuth({
    kc: api.kc,
    audiences: ["keypool"],
    logger,
    authnTtlMs: TTL,
    authzTtlMs: TTL,
    staleGraceMs: GRACE,
    requestTimeoutMs: TIMEOUT_MS,
    breakerOpenMs: OPEN_MS,
    clock: { now: () => now },
    ...options,
  });
}

const check = (auth: KubernetesAuth, token = "alice-token"): Promise<AuthDecision> =>
  Promise.resolve(auth.check(token, "use", NS, POOL));

/** Lets background reviews (refresh-ahead, half-open probes) finish. */
const settle = () => new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS + 100));

const OUTAGES: Array<{ name: string; mode: ReviewMode }> = [
  { name: "a 500", mode: "error500" },
  { name: "a review that hangs past the timeout", mode: "hang" },
  { name: "a reset connection", mode: "reset" },
];

describe("the stale grace", () => {
  it.each(OUTAGES)(
    "serves the last allow past its lifetime when reviews fail with $name",
    async ({ mode }) => {
      const auth = newAuth();
      expect(await check(auth)).toMatchObject({ ok: true });
      api.mode = mode;
      now += TTL + 1;
      expect(await check(auth)).toMatchObject({ ok: true, caller: { username: "alice" } });
      expect(auth.stats).toMatchObject({ staleAuthnAllowed: 1, staleAuthzAllowed: 1, unavailable: 0 });
    },
  );

  it("serves a denial the API server gave as a denial: a revoked grant never comes back from the past", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.grants.clear(); // the RoleBinding is removed
    now += TTL + 1;
    expect(await check(auth)).toMatchObject({ ok: false, code: "forbidden" });
    api.mode = "error500";
    now += TTL + 1;
    expect(await check(auth)).toMatchObject({ ok: false, code: "forbidden" });
    expect(auth.stats).toMatchObject({ staleAuthzDenied: 1, staleAuthzAllowed: 0 });
  });

  it("keeps a token TokenReview refused refused", async () => {
    const auth = newAuth();
    expect(await check(auth, "garbage")).toMatchObject({ ok: false, code: "unauthenticated" });
    api.mode = "error500";
    now += TTL;
    expect(await check(auth, "garbage")).toMatchObject({ ok: false, code: "unauthenticated" });
    expect(auth.stats.staleAuthnDenied).toBe(1);
  });

  it("never accepts a token past its own exp, and says it expired", async () => {
    const token = jwt({ sub: "alice", exp: (now + 30_000) / 1000 });
    api.tokens.set(token, "alice");
    const auth = newAuth();
    expect(await check(auth, token)).toMatchObject({ ok: true });
    api.mode = "error500";
    now += 20_000; // past the cache lifetime, before exp: served stale
    expect(await check(auth, token)).toMatchObject({ ok: true });
    now += 10_000; // at exp
    const decision = await check(auth, token);
    expect(decision).toMatchObject({ ok: false, code: "unauthenticated" });
    if (decision.ok) throw new Error("unreachable");
    expect(decision.message).toMatch(/^the token expired at /);
  });

  it("stops at the grace: later, a known caller gets auth_unavailable", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    now += TTL + GRACE - 1;
    expect(await check(auth)).toMatchObject({ ok: true });
    now += 1;
    expect(await check(auth)).toMatchObject({ ok: false, code: "auth_unavailable" });
  });

  it("is off with a grace of 0: after the lifetime, auth_unavailable with Retry-After", async () => {
    const auth = newAuth({ staleGraceMs: 0 });
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    now += TTL;
    expect(await check(auth)).toEqual({
      ok: false,
      code: "auth_unavailable",
      message: expect.stringMatching(
        /^cannot check credentials right now: the Kubernetes TokenReview failed/,
      ),
      retryAfterSeconds: 1,
    });
    expect(auth.stats).toMatchObject({ staleAuthnAllowed: 0, unavailable: 1 });
  });

  it("answers a token never seen before with auth_unavailable", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    api.tokens.set("bob-token", "bob");
    expect(await check(auth, "bob-token")).toMatchObject({ ok: false, code: "auth_unavailable" });
  });

  it("is not used when the API server refuses the operator itself (403): that needs fixing, not waiting out", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "forbiddenToOperator";
    now += TTL;
    expect(await check(auth)).toMatchObject({ ok: false, code: "auth_unavailable" });
    expect(auth.stats).toMatchObject({ staleAuthnAllowed: 0, tokenReviewFailures: 0, breakerOpen: false });
  });
});

describe("the circuit breaker", () => {
  it("opens after 3 failures in a row and then answers without sending a review", async () => {
    const auth = newAuth();
    api.mode = "error500";
    for (const token of ["t1", "t2", "t3"]) {
      expect(await check(auth, token)).toMatchObject({ code: "auth_unavailable" });
    }
    expect(auth.stats.breakerOpen).toBe(true);
    const sent = api.received.tokenReviews;
    const decision = auth.check("t4", "use", NS, POOL);
    expect(decision).not.toBeInstanceOf(Promise); // answered at once
    expect(decision).toMatchObject({ code: "auth_unavailable", retryAfterSeconds: 1 });
    expect(api.received.tokenReviews).toBe(sent);
  });

  it("opens at once on a timeout: the next caller does not wait", async () => {
    const auth = newAuth();
    api.mode = "hang";
    const started = performance.now();
    expect(await check(auth, "t1")).toMatchObject({ code: "auth_unavailable" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(auth.breakerState).toBe("open");
    expect(auth.check("t2", "use", NS, POOL)).toMatchObject({ code: "auth_unavailable" });
  });

  it("after openMs sends one probe in the background; its success closes the breaker", async () => {
    const auth = newAuth();
    api.mode = "hang";
    await check(auth, "t1");
    api.mode = "answer";
    now += OPEN_MS;
    expect(auth.breakerState).toBe("half-open");
    const sent = api.received.tokenReviews;
    // The probe's caller and the next one are answered at once; one review goes out.
    expect(auth.check("alice-token", "use", NS, POOL)).toMatchObject({ code: "auth_unavailable" });
    expect(auth.check("alice-token", "use", NS, POOL)).toMatchObject({ code: "auth_unavailable" });
    await settle();
    expect(api.received.tokenReviews).toBe(sent + 1);
    expect(auth.breakerState).toBe("closed");
    expect(await check(auth)).toMatchObject({ ok: true });
  });

  it("opens again when the probe fails", async () => {
    const auth = newAuth();
    api.mode = "error500";
    for (const token of ["t1", "t2", "t3"]) await check(auth, token);
    now += OPEN_MS;
    auth.check("t4", "use", NS, POOL); // the probe
    await settle();
    expect(auth.breakerState).toBe("open");
  });

  it("lets callers with a cached allow in its last fifth refresh it as the probe", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    for (const token of ["t1", "t2", "t3"]) await check(auth, token);
    expect(auth.breakerState).toBe("open");
    api.mode = "answer";
    now += TTL - 1_000; // the cached allow is in its last fifth; the breaker is half-open
    expect(auth.check("alice-token", "use", NS, POOL)).toMatchObject({ ok: true });
    await settle();
    expect(auth.breakerState).toBe("closed");
  });
});

describe("an outage in the logs", () => {
  it("is one warn line when it starts and one info line when it ends, however many reviews fail", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    for (let i = 0; i < 10; i++) {
      now += TTL;
      await check(auth);
      await check(auth, `never-seen-${i}`);
    }
    api.mode = "answer";
    now += OPEN_MS;
    auth.check("alice-token", "use", NS, POOL);
    await settle();
    expect(auth.breakerState).toBe("closed");
    const warnings = lines.filter((l) => l.level === "warn" || l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      "auth reviews failing; serving from last decisions for up to 5m",
    ]);
    const ended = lines.filter((l) => l.msg === "auth reviews work again");
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ servedStale: expect.any(Number), answeredUnavailable: 10 });
    // Never a token in a line.
    expect(JSON.stringify(lines)).not.toContain("alice-token");
  });

  it("says when the grace is off", async () => {
    const auth = newAuth({ staleGraceMs: 0 });
    api.mode = "reset";
    await check(auth);
    expect(lines.find((l) => String(l.msg).startsWith("auth reviews failing"))?.msg).toBe(
      "auth reviews failing; callers without a cached decision get auth_unavailable (--auth-stale-grace is 0)",
    );
  });
});

describe("the auth metrics", () => {
  it("count review failures, stale decisions by kind and decision, auth_unavailable answers and the breaker", async () => {
    const auth = newAuth();
    expect(await check(auth)).toMatchObject({ ok: true });
    api.mode = "error500";
    now += TTL;
    await check(auth);
    await check(auth, "never-seen");
    const registry = createMetrics({
      pools: { size: 0, values: () => [] } as unknown as PoolRegistry,
      isLeader: () => true,
      watchStaleSeconds: () => 0,
      statusWrites: () => 0,
      authStats: () => auth.stats,
    });
    const text = await registry.metrics();
    for (const line of [
      'keypool_auth_review_failures_total{kind="token_review"} 2',
      'keypool_auth_review_failures_total{kind="access_review"} 1',
      'keypool_auth_stale_decisions_total{kind="authn",decision="allowed"} 1',
      'keypool_auth_stale_decisions_total{kind="authz",decision="allowed"} 1',
      'keypool_auth_stale_decisions_total{kind="authz",decision="denied"} 0',
      "keypool_auth_unavailable_total 1",
      "keypool_auth_breaker_open 1",
    ]) {
      expect(text).toContain(line);
    }
    // A second scrape adds only what grew.
    expect(await registry.metrics()).toContain("keypool_auth_unavailable_total 1");
  });
});
