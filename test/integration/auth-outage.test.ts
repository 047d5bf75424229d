/**
 * Dispensing survives an API server that stops answering (issue 18, item 4). A control plane of
 * this file's own (the shared one must never be paused) and two operators against it: one with
 * the default --auth-stale-grace (5m), one with it off. Steady dispensing by an allowed
 * ServiceAccount runs against both while kube-apiserver is paused (SIGSTOP) for 20 s: the first
 * serves every call from its last decisions; the second fails, but fast (503 auth_unavailable),
 * never holding a caller for a review timeout. Tokens never seen before stay refused (503), and a
 * RoleBinding removed before the pause stays removed (403).
 */
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { ensureBinaries } from "../support/control-plane/build.ts";
import { ControlPlane } from "../support/control-plane/control-plane.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { eventually, kubectl } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const NS = "ai";
const POOL = "pool";
const KEY = "sk-test-auth-outage-00000001";
const PAUSE_MS = 20_000;
/** Steady dispensing: one call every this many ms per operator, not waiting for answers. */
const INTERVAL_MS = 25;

interface Call {
  at: number;
  status: number;
  code: string | undefined;
  ms: number;
  retryAfter: string | null;
}

let plane: ControlPlane | undefined;
let fake: FakeProvider | undefined;
const operators: OperatorProcess[] = [];
/** The operator with the default grace, and the one with --auth-stale-grace 0. */
const url = { grace: "", strict: "" };
const tokens = { steady: "", newcomer: "", revoked: "" };
/** What the drill saw. */
const seen = {
  pausedAt: 0,
  resumedAt: 0,
  steady: { grace: [] as Call[], strict: [] as Call[] },
  newcomer: [] as Call[],
  revoked: { grace: [] as Call[], strict: [] as Call[] },
};

async function dispense(base: string, token: string): Promise<Call> {
  const started = performance.now();
  const res = await fetch(`${base}/v1/pools/${NS}/${POOL}/key`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.json()) as { error?: { code?: string } };
  return {
    at: Date.now(),
    status: res.status,
    code: body.error?.code,
    ms: performance.now() - started,
    retryAfter: res.headers.get("retry-after"),
  };
}

/** Calls `dispense` every INTERVAL_MS without waiting for answers, until stopped. */
function steadily(base: string, token: string, into: Call[]): () => Promise<void> {
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const call = dispense(base, token).then(
      (c) => void into.push(c),
      (err: Error) =>
        void into.push({ at: Date.now(), status: 0, code: err.name, ms: NaN, retryAfter: null }),
    );
    pending.add(call);
    void call.finally(() => pending.delete(call));
  }, INTERVAL_MS);
  return async () => {
    clearInterval(timer);
    await Promise.all(pending);
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The q-quantile (0.99: p99) of `values`, nearest rank. */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * q) - 1)] ?? NaN;
}

const during = (calls: Call[]) => calls.filter((c) => c.at >= seen.pausedAt && c.at <= seen.resumedAt);
const summary = (calls: Call[]) => {
  const byStatus = new Map<number, number>();
  for (const c of calls) byStatus.set(c.status, (byStatus.get(c.status) ?? 0) + 1);
  return `${calls.length} calls: ${[...byStatus].map(([s, n]) => `${n}x ${s}`).join(", ")}`;
};

beforeAll(async () => {
  plane = await ControlPlane.start({ binaries: await ensureBinaries() });
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const api = poolApi(kc);
  const own = ["--kubeconfig", plane.kubeconfigPath];
  const crd = await kubectl([...own, "apply", "--server-side", "-f", "crds/keypool.dev_keypools.yaml"]);
  expect(crd.code, crd.stderr).toBe(0);
  await kubectl([...own, "wait", "--for=condition=Established", "crd/keypools.keypool.dev"]);

  fake = await startFakeProvider("openai", { [KEY]: { kind: "valid" } });
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await api.putSecret(NS, "keys", { a: KEY });
  await eventually(() =>
    api.createPool(NS, POOL, {
      provider: "openai",
      baseURL: fake?.url,
      keys: [{ secretRef: { name: "keys" } }],
      health: { probeInterval: "1h" },
    }),
  );
  await rbac.createNamespacedRole({
    namespace: NS,
    body: {
      metadata: { name: "use-pool" },
      rules: [{ apiGroups: ["keypool.dev"], resources: ["keypools"], verbs: ["use"], resourceNames: [POOL] }],
    },
  });
  for (const sa of Object.keys(tokens)) {
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: sa } } });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: sa },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "use-pool" },
        subjects: [{ kind: "ServiceAccount", name: sa, namespace: NS }],
      },
    });
    const { status } = await core.createNamespacedServiceAccountToken({
      namespace: NS,
      name: sa,
      body: { spec: { audiences: ["keypool"], expirationSeconds: 3600 } },
    });
    tokens[sa as keyof typeof tokens] = status?.token ?? "";
  }

  const grace = startOperator([...own, "--namespaces", NS]);
  const strict = startOperator([...own, "--namespaces", NS, "--auth-stale-grace", "0"]);
  operators.push(grace, strict);
  url.grace = await grace.dispenserUrl();
  url.strict = await strict.dispenserUrl();
  await api.waitForPool(NS, POOL, (p) => condition(p, "Ready")?.status === "True");
  for (const base of [url.grace, url.strict]) {
    await eventually(async () => (await dispense(base, tokens.steady)).status === 200, 20_000, 100);
    // The revoked account was allowed (a cached allow)...
    await eventually(async () => (await dispense(base, tokens.revoked)).status === 200, 20_000, 100);
  }

  // ...until its RoleBinding goes: each operator sees the denial once its cached allow is up for
  // renewal (within the 10 s authorization cache lifetime), and a denial replaces the allow.
  await rbac.deleteNamespacedRoleBinding({ namespace: NS, name: "revoked" });
  const stopSteady = [
    steadily(url.grace, tokens.steady, seen.steady.grace),
    steadily(url.strict, tokens.steady, seen.steady.strict),
  ];
  try {
    await Promise.all(
      [url.grace, url.strict].map((base) =>
        eventually(async () => (await dispense(base, tokens.revoked)).status === 403, 20_000, 200),
      ),
    );
    await sleep(1_000);

    seen.pausedAt = Date.now();
    await plane.pauseApiServer();
    // Past the caches' 10 s lifetime: every answer now comes from the last decisions, or fails.
    await sleep(12_000);
    for (let i = 0; i < 5; i++) {
      seen.newcomer.push(await dispense(url.grace, tokens.newcomer));
      seen.revoked.grace.push(await dispense(url.grace, tokens.revoked));
      seen.revoked.strict.push(await dispense(url.strict, tokens.revoked));
      await sleep(1_000);
    }
    await sleep(Math.max(0, seen.pausedAt + PAUSE_MS - Date.now()));
  } finally {
    plane.resumeApiServer();
    seen.resumedAt = Date.now();
  }
  // Both operators dispense again once their probe gets through.
  await Promise.all(
    [url.strict, url.grace].map((base) =>
      eventually(async () => (await dispense(base, tokens.steady)).status === 200, 30_000, 100),
    ),
  );
  await sleep(1_000);
  await Promise.all(stopSteady.map((stop) => stop()));
}, 150_000);

afterAll(async () => {
  plane?.resumeApiServer();
  await Promise.all(operators.map((o) => o.kill()));
  await fake?.close();
  await plane?.stop();
});

describe("kube-apiserver paused for 20 s under steady dispensing", () => {
  it("fails no dispense with the default --auth-stale-grace", () => {
    const calls = seen.steady.grace;
    const paused = during(calls);
    console.log(`default grace: ${summary(calls)}; during the pause ${summary(paused)}`);
    expect(paused.length, summary(paused)).toBeGreaterThan((PAUSE_MS / INTERVAL_MS) * 0.5);
    expect(
      calls.filter((c) => c.status !== 200),
      summary(calls),
    ).toEqual([]);
  });

  it("with --auth-stale-grace 0, fails fast: 503 auth_unavailable with Retry-After, p99 under 200 ms", () => {
    const calls = seen.steady.strict;
    const failed = calls.filter((c) => c.status !== 200);
    const latencies = failed.map((c) => c.ms);
    const figures =
      `--auth-stale-grace 0: ${summary(calls)}; failures answered in p50 ${quantile(latencies, 0.5).toFixed(1)} ms, ` +
      `p99 ${quantile(latencies, 0.99).toFixed(1)} ms, max ${quantile(latencies, 1).toFixed(1)} ms`;
    console.log(figures);
    // The caches carried the first 10 s; the rest of the pause failed.
    expect(failed.length, figures).toBeGreaterThan(((PAUSE_MS - 12_000) / INTERVAL_MS) * 0.5);
    expect(new Set(failed.map((c) => `${c.status} ${c.code}`)), figures).toEqual(
      new Set(["503 auth_unavailable"]),
    );
    expect(
      failed.every((c) => c.retryAfter !== null),
      figures,
    ).toBe(true);
    expect(quantile(latencies, 0.99), figures).toBeLessThan(200);
  });

  it("refuses a token minted before the pause but never used: a fast 503 auth_unavailable", () => {
    const figures = seen.newcomer.map((c) => `${c.status} ${c.code} in ${c.ms.toFixed(1)} ms`).join("; ");
    console.log(`never-seen token during the pause: ${figures}`);
    expect(seen.newcomer.length).toBe(5);
    for (const call of seen.newcomer) {
      expect(call, figures).toMatchObject({ status: 503, code: "auth_unavailable" });
      expect(call.ms, figures).toBeLessThan(200);
    }
  });

  it("still refuses a ServiceAccount whose RoleBinding was removed before the pause (403), and never lets it in", () => {
    const grace = seen.revoked.grace.map((c) => `${c.status} ${c.code}`);
    expect(grace).toEqual(Array.from({ length: 5 }, () => "403 forbidden"));
    // Without the grace there is no last decision to serve: refused all the same.
    expect(seen.revoked.strict.filter((c) => c.status === 200)).toEqual([]);
  });

  it("logs the outage once when it starts and once when it ends, and counts it in the metrics", async () => {
    const [grace, strict] = operators;
    if (!grace || !strict) throw new Error("operators not started");
    for (const op of [grace, strict]) {
      const failing = op.logs.filter((l) => String(l.msg).startsWith("auth reviews failing"));
      const working = op.logs.filter((l) => l.msg === "auth reviews work again");
      expect(failing, JSON.stringify(failing)).toHaveLength(1);
      expect(working.length, JSON.stringify(working)).toBeGreaterThanOrEqual(1);
    }
    expect(grace.logs.find((l) => String(l.msg).startsWith("auth reviews failing"))?.msg).toBe(
      "auth reviews failing; serving from last decisions for up to 5m",
    );
    const metrics = await (await fetch(`${await grace.probesUrl()}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series} (\\S+)$`, "m").exec(metrics)?.[1]);
    expect(value('keypool_auth_stale_decisions_total{kind="authz",decision="allowed"}')).toBeGreaterThan(100);
    expect(
      value('keypool_auth_stale_decisions_total{kind="authz",decision="denied"}'),
    ).toBeGreaterThanOrEqual(5);
    expect(value('keypool_auth_review_failures_total{kind="token_review"}')).toBeGreaterThan(0);
    expect(value("keypool_auth_unavailable_total")).toBeGreaterThanOrEqual(5);
    expect(value("keypool_auth_breaker_open")).toBe(0);
  });
});
