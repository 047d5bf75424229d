/**
 * KubernetesAuth against the real API server: ServiceAccount tokens authenticated with
 * TokenReview, access to keypools/<name> decided by RBAC through SubjectAccessReview. The KeyPool
 * CRD need not exist: RBAC matches resources and names as strings.
 */
import {
  AuthorizationV1Api,
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
} from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { createLogger, type Logger } from "../../src/log.ts";
import type { Clock } from "../../src/pool/clock.ts";
import { KubernetesAuth, type KubernetesAuthOptions } from "../../src/server/auth.ts";
import type { AuthVerb } from "../../src/server/authorizer.ts";
import { adminKubeConfig, createTestNamespace, eventually, tokenKubeConfig } from "../support/kube.ts";

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const sar = kc.makeApiClient(AuthorizationV1Api);
const silent = createLogger({ level: "silent" });
const wallClock: Clock = { now: () => Date.now() };

function newAuth(options: Partial<KubernetesAuthOptions> = {}): KubernetesAuth {
  return new KubernetesAuth({ kc, audiences: ["keypool"], logger: silent, clock: wallClock, ...options });
}

/** A logger whose lines the test reads. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", destination: { write: (line: string) => lines.push(line) } });
  return { logger, lines };
}

async function serviceAccount(namespace: string, name: string): Promise<void> {
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
}

/** A TokenRequest token; without audiences it is for the API server itself. */
async function tokenFor(namespace: string, name: string, audiences?: string[]): Promise<string> {
  const { status } = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { ...(audiences && { audiences }), expirationSeconds: 600 } },
  });
  if (!status?.token) throw new Error("TokenRequest returned no token");
  return status.token;
}

/**
 * A Role with `verbs` on keypools.keypool.dev/<pool> and a RoleBinding to the ServiceAccount.
 * With `wait`, returns once RBAC answers a SubjectAccessReview with the grant (the ms it took).
 */
async function grant(
  namespace: string,
  account: string,
  verbs: AuthVerb[],
  pool: string,
  wait = true,
): Promise<number> {
  const name = `${account}-${verbs.join("-")}-${pool}`;
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name },
      rules: [{ apiGroups: ["keypool.dev"], resources: ["keypools"], verbs, resourceNames: [pool] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: account, namespace }],
    },
  });
  const boundAt = Date.now();
  if (!wait) return 0;
  await eventually(async () => {
    const review = await sar.createSubjectAccessReview({
      body: {
        spec: {
          user: `system:serviceaccount:${namespace}:${account}`,
          groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
          resourceAttributes: {
            group: "keypool.dev",
            resource: "keypools",
            verb: verbs[0],
            namespace,
            name: pool,
          },
        },
      },
    });
    return review.status?.allowed;
  });
  return Date.now() - boundAt;
}

const howTo =
  "send your ServiceAccount token as Authorization: Bearer <token>; a projected token needs audience keypool";

describe("KubernetesAuth against the API server", () => {
  it("lets a ServiceAccount bound to a Role with verb use on the pool take keys with its keypool-audience token", async () => {
    const namespace = await createTestNamespace(kc, "auth-ok");
    await serviceAccount(namespace, "chatbot");
    const propagationMs = await grant(namespace, "chatbot", ["use"], "openai-prod");
    console.log(`RBAC answered with the new RoleBinding ${propagationMs} ms after it was created`);
    const token = await tokenFor(namespace, "chatbot", ["keypool"]);
    const auth = newAuth();

    const decision = await auth.check(token, "use", namespace, "openai-prod");
    expect(decision).toMatchObject({
      ok: true,
      caller: {
        username: `system:serviceaccount:${namespace}:chatbot`,
        serviceAccount: { namespace, name: "chatbot" },
      },
    });
    if (!decision.ok) throw new Error("unreachable");
    expect(decision.caller.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(decision.caller.groups).toEqual(
      expect.arrayContaining(["system:serviceaccounts", `system:serviceaccounts:${namespace}`]),
    );

    // resourceNames is exact: another pool in the same namespace stays closed.
    expect(await auth.check(token, "use", namespace, "openai-batch")).toMatchObject({
      ok: false,
      code: "forbidden",
    });
  });

  it("forbids a ServiceAccount without a binding, saying which Role and RoleBinding would grant it", async () => {
    const namespace = await createTestNamespace(kc, "auth-denied");
    await serviceAccount(namespace, "nobody");
    const token = await tokenFor(namespace, "nobody", ["keypool"]);

    expect(await newAuth().check(token, "use", namespace, "openai-prod")).toEqual({
      ok: false,
      code: "forbidden",
      message:
        `system:serviceaccount:${namespace}:nobody may not "use" keypools.keypool.dev "openai-prod" in namespace "${namespace}": ` +
        "grant it with a Role (verbs: [use], resourceNames: [openai-prod]) and a RoleBinding",
    });
  });

  it("refuses a missing token, garbage, and tokens for another audience as unauthenticated, without echoing them", async () => {
    const namespace = await createTestNamespace(kc, "auth-authn");
    await serviceAccount(namespace, "chatbot");
    await grant(namespace, "chatbot", ["use"], "openai-prod");
    const cases: Array<{ name: string; token: string | undefined }> = [
      { name: "no token", token: undefined },
      { name: "an empty token", token: "" },
      { name: "garbage", token: "not-a-token-at-all" },
      {
        name: "a TokenRequest token for audience other",
        token: await tokenFor(namespace, "chatbot", ["other"]),
      },
      { name: "a default (API server audience) token", token: await tokenFor(namespace, "chatbot") },
    ];
    const auth = newAuth();
    for (const { name, token } of cases) {
      const decision = await auth.check(token, "use", namespace, "openai-prod");
      expect(decision, name).toMatchObject({ ok: false, code: "unauthenticated" });
      if (decision.ok) throw new Error("unreachable");
      expect(decision.message, name).toContain(howTo);
      if (token) expect(decision.message, name).not.toContain(token);
      console.log(`${name}: ${decision.message}`);
    }

    // A client retrying the same garbage costs one TokenReview per negativeTtlMs, not one per try.
    const before = auth.stats.tokenReviews;
    for (let i = 0; i < 5; i++) {
      expect(await auth.check("not-a-token-at-all", "use", namespace, "openai-prod")).toMatchObject({
        code: "unauthenticated",
      });
    }
    expect(auth.stats.tokenReviews).toBe(before);
  });

  it("lets a binding added later take effect once the cached denial expires", async () => {
    const namespace = await createTestNamespace(kc, "auth-late");
    await serviceAccount(namespace, "late");
    const token = await tokenFor(namespace, "late", ["keypool"]);
    // Real time, frozen while the denial is cached and re-read, so "before expiry" is certain.
    let frozenAt: number | undefined = Date.now();
    const cachedAt = frozenAt;
    const auth = newAuth({ authzTtlMs: 1000, clock: { now: () => frozenAt ?? Date.now() } });

    expect(await auth.check(token, "use", namespace, "late-pool")).toMatchObject({ code: "forbidden" });
    await grant(namespace, "late", ["use"], "late-pool", false);
    const boundAt = Date.now();
    const reviews = auth.stats.accessReviews;
    expect(await auth.check(token, "use", namespace, "late-pool")).toMatchObject({ code: "forbidden" });
    expect(auth.stats.accessReviews).toBe(reviews); // the denial came from the cache
    frozenAt = undefined;

    await eventually(async () => (await auth.check(token, "use", namespace, "late-pool")).ok, 15_000, 25);
    const delayMs = Date.now() - boundAt;
    const cacheLeftMs = cachedAt + 1000 - boundAt;
    console.log(
      `a new RoleBinding took effect ${delayMs} ms after it was created ` +
        `(authzTtlMs 1000; the cached denial had ${cacheLeftMs} ms left; then ${delayMs - cacheLeftMs} ms of polling and RBAC)`,
    );
    expect(auth.stats.accessReviews).toBeGreaterThan(reviews);
  });

  it("makes one TokenReview and one SubjectAccessReview for a burst of 50 checks with a new token", async () => {
    const namespace = await createTestNamespace(kc, "auth-burst");
    await serviceAccount(namespace, "bursty");
    await grant(namespace, "bursty", ["use"], "openai-prod");
    const token = await tokenFor(namespace, "bursty", ["keypool"]);
    const auth = newAuth();
    const before = auth.stats;

    const decisions = await Promise.all(
      Array.from({ length: 50 }, () => auth.check(token, "use", namespace, "openai-prod")),
    );
    expect(decisions.every((d) => d.ok)).toBe(true);
    const after = auth.stats;
    expect(after.tokenReviews - before.tokenReviews).toBe(1);
    expect(after.accessReviews - before.accessReviews).toBe(1);
    expect(after.authnHits - before.authnHits).toBe(49);
    expect(after.authzHits - before.authzHits).toBe(49);

    // And the next one is answered from the caches.
    expect(await auth.check(token, "use", namespace, "openai-prod")).toMatchObject({ ok: true });
    expect(auth.stats).toMatchObject({
      tokenReviews: after.tokenReviews,
      accessReviews: after.accessReviews,
    });
  });

  it("trusts a TokenReview for authnTtlMs, and never past the token's own expiry", async () => {
    const namespace = await createTestNamespace(kc, "auth-ttl");
    await serviceAccount(namespace, "chatbot");
    await grant(namespace, "chatbot", ["use"], "openai-prod");
    const token = await tokenFor(namespace, "chatbot", ["keypool"]); // expirationSeconds 600
    let now = Date.now();
    const cases = [
      // Before the last fifth of its life, when a refresh would start in the background.
      { name: "the default lifetime", options: {}, stillCachedAt: 7_999, expiredAt: 10_000 },
      // An hour asked for, but the token itself expires within 600 s.
      {
        name: "the token's exp",
        options: { authnTtlMs: 3_600_000 },
        stillCachedAt: 470_000,
        expiredAt: 601_000,
      },
    ];
    for (const { name, options, stillCachedAt, expiredAt } of cases) {
      const start = (now = Date.now());
      const auth = newAuth({ ...options, clock: { now: () => now } });
      expect(await auth.authenticate(token), name).toMatchObject({ ok: true });
      now = start + stillCachedAt;
      expect(await auth.authenticate(token), name).toMatchObject({ ok: true });
      expect(auth.stats.tokenReviews, name).toBe(1);
      now = start + expiredAt;
      await auth.authenticate(token);
      expect(auth.stats.tokenReviews, name).toBe(2);
    }
  });

  it("checks the update verb separately: a Role granting only use does not allow update", async () => {
    const namespace = await createTestNamespace(kc, "auth-update");
    await serviceAccount(namespace, "user");
    await serviceAccount(namespace, "reporter");
    await grant(namespace, "user", ["use"], "openai-prod");
    await grant(namespace, "reporter", ["use", "update"], "openai-prod");
    const auth = newAuth();
    const userToken = await tokenFor(namespace, "user", ["keypool"]);
    const reporterToken = await tokenFor(namespace, "reporter", ["keypool"]);

    expect(await auth.check(userToken, "use", namespace, "openai-prod")).toMatchObject({ ok: true });
    const denied = await auth.check(userToken, "update", namespace, "openai-prod");
    expect(denied).toMatchObject({ ok: false, code: "forbidden" });
    if (denied.ok) throw new Error("unreachable");
    expect(denied.message).toContain('may not "update"');
    expect(denied.message).toContain("(verbs: [update], resourceNames: [openai-prod])");

    expect(await auth.check(reporterToken, "update", namespace, "openai-prod")).toMatchObject({ ok: true });
  });

  it("answers auth_unavailable, uncached and logged without the token, when the operator may not review tokens or access", async () => {
    const namespace = await createTestNamespace(kc, "auth-unavail");
    await serviceAccount(namespace, "chatbot");
    await grant(namespace, "chatbot", ["use"], "openai-prod");
    const callerToken = await tokenFor(namespace, "chatbot", ["keypool"]);
    await serviceAccount(namespace, "operator");
    const operatorKc: KubeConfig = tokenKubeConfig(await tokenFor(namespace, "operator"));
    const { logger, lines } = capturingLogger();
    const auth = new KubernetesAuth({ kc: operatorKc, audiences: ["keypool"], logger, clock: wallClock });

    // No grant at all: the TokenReview is forbidden to the operator.
    for (let i = 0; i < 2; i++) {
      const decision = await auth.check(callerToken, "use", namespace, "openai-prod");
      expect(decision).toMatchObject({ ok: false, code: "auth_unavailable" });
      if (decision.ok) throw new Error("unreachable");
      expect(decision.message).toMatch(/TokenReview failed \(HTTP 403\)/);
    }
    expect(auth.stats.tokenReviews).toBe(2); // failures are not cached
    const warnings = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === "warn");
    expect(warnings[0]).toMatchObject({ review: "TokenReview", status: 403 });
    expect(lines.join("\n")).not.toContain(callerToken);

    // Cluster-scoped grants: unique names, removed afterwards.
    const reviewTokens = `${namespace}-tokenreviews`;
    const subject = { kind: "ServiceAccount", name: "operator", namespace };
    try {
      await rbac.createClusterRole({
        body: {
          metadata: { name: reviewTokens },
          rules: [{ apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] }],
        },
      });
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: reviewTokens },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: reviewTokens },
          subjects: [subject],
        },
      });
      // TokenReview allowed, SubjectAccessReview not: still unavailable, now from the SAR.
      const sarFailure = await eventually(async () => {
        const d = await auth.check(callerToken, "use", namespace, "openai-prod");
        return !d.ok && d.message.includes("SubjectAccessReview") && d;
      });
      expect(sarFailure).toMatchObject({ code: "auth_unavailable" });

      // With system:auth-delegator (create on both reviews) it works.
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: `${namespace}-auth-delegator` },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: "system:auth-delegator",
          },
          subjects: [subject],
        },
      });
      await eventually(async () => (await auth.check(callerToken, "use", namespace, "openai-prod")).ok);
    } finally {
      await rbac.deleteClusterRoleBinding({ name: reviewTokens }).catch(() => undefined);
      await rbac.deleteClusterRoleBinding({ name: `${namespace}-auth-delegator` }).catch(() => undefined);
      await rbac.deleteClusterRole({ name: reviewTokens }).catch(() => undefined);
    }
  });
});
