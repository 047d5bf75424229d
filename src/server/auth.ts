/**
 * Who is calling the dispenser, and may they? Kubernetes answers both:
 *
 * - authentication: the caller's bearer token (a ServiceAccount token, projected with audience
 *   `keypool` by default) goes to a TokenReview with `spec.audiences`;
 * - authorization: a SubjectAccessReview for verb `use` (or `update`) on
 *   `keypools.keypool.dev/<pool>` in the pool's namespace, with the caller's user, uid, groups
 *   and extra. A Role with `verbs: [use]` and `resourceNames: [<pool>]` is the whole grant.
 *
 * Both answers are cached briefly (like the API server's own webhook token and authorizer
 * caches), in bounded LRU maps; concurrent identical lookups share one request. The token itself
 * is never logged, stored or echoed: the authentication cache is keyed by its sha256.
 *
 * What the cache lifetimes mean for users: a new RoleBinding (or a revoked one) takes effect
 * within `authzTtlMs`; a deleted ServiceAccount's token stops working within `authnTtlMs`.
 *
 * When a review cannot be made (network error, timeout, 5xx or 429: the API server is down,
 * hung or overloaded), the last answer for that token (authentication) or that caller, verb
 * and pool (authorization) is served for up to `staleGraceMs` past its lifetime, so an API
 * server outage does not stop dispensing. Only failures to get an answer do this: an answer
 * ("not authenticated", "denied") always replaces the last one, a denial served stale still
 * denies, and nothing is ever served past the token's own `exp`. A caller with no last answer
 * gets `auth_unavailable` (503, Retry-After). A circuit breaker (circuit-breaker.ts) keeps
 * callers from each waiting out a timeout: while it is open they are answered at once, and one
 * probe at a time finds out when the API server is back. An outage is logged once when it
 * starts and once when it ends.
 *
 * Other failures of the reviews (the operator's own credentials lacking `create` on
 * tokenreviews/subjectaccessreviews: the `system:auth-delegator` ClusterRole grants both) are
 * `auth_unavailable`, logged at warn and never cached.
 */
import { hash } from "node:crypto";
import {
  ApiException,
  AuthenticationV1Api,
  AuthorizationV1Api,
  type ConfigurationOptions,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type V1UserInfo,
} from "@kubernetes/client-node";
import { formatDuration } from "../api/duration.ts";
import { describeError } from "../describe-error.ts";
import { apiClient } from "../kube-client.ts";
import { TtlCache } from "./ttl-cache.ts";
import type { AuthDecision, AuthVerb, Caller, MaybeAsync } from "./authorizer.ts";
import { type Logger, scrubSecrets } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { type BreakerState, CircuitBreaker } from "./circuit-breaker.ts";

export interface KubernetesAuthOptions {
  /** The operator's own credentials (needs create on tokenreviews and subjectaccessreviews). */
  kc: KubeConfig;
  /** TokenReview spec.audiences; the caller passes the configured default, ["keypool"]. */
  audiences: string[];
  logger: Logger;
  /** How long a positive TokenReview is trusted (never past the token's own `exp`). */
  authnTtlMs?: number;
  /** How long a failed authentication is remembered, so a client retrying garbage costs nothing. */
  negativeTtlMs?: number;
  /** How long a SubjectAccessReview answer (allowed or denied) is trusted. */
  authzTtlMs?: number;
  /**
   * While reviews cannot be made (network, timeout, 5xx, 429), the last answer is served up to
   * this long past its lifetime (never past the token's `exp`). 0, the default here, turns it
   * off; the operator passes --auth-stale-grace.
   */
  staleGraceMs?: number;
  /** Entries per cache; the least recently used goes first. */
  maxEntries?: number;
  /** A TokenReview or SubjectAccessReview that takes longer has failed (and opens the breaker). */
  requestTimeoutMs?: number;
  /** Review failures in a row (network, 5xx, 429) that open the circuit breaker; a timeout opens it at once. */
  breakerThreshold?: number;
  /** How long the open breaker sends no review before one probe may go out. */
  breakerOpenMs?: number;
  /** Cache lifetimes, the stale grace and the breaker's open period are judged by it. */
  clock: Clock;
}

/** Each default in one place. */
const DEFAULTS = {
  authnTtlMs: 10_000,
  negativeTtlMs: 2_000,
  authzTtlMs: 10_000,
  staleGraceMs: 0,
  maxEntries: 10_000,
  // The API server answers reviews in milliseconds; longer means it is hung or overloaded.
  requestTimeoutMs: 2_000,
  breakerThreshold: 3,
  breakerOpenMs: 1_000,
} as const;

const GROUP = "keypool.dev";
const RESOURCE = "keypools";
/** Longest excerpt of the API server's reason that goes into a caller-facing message. */
const MAX_REASON_LENGTH = 300;

export interface AuthStats {
  /** TokenReview requests sent. */
  tokenReviews: number;
  /** SubjectAccessReview requests sent. */
  accessReviews: number;
  /** Authentications answered without a request: from the cache or by joining one in flight. */
  authnHits: number;
  /** Authorizations answered without a request: from the cache or by joining one in flight. */
  authzHits: number;
  /** TokenReviews that got no answer: network errors, timeouts, 5xx and 429. */
  tokenReviewFailures: number;
  /** SubjectAccessReviews that got no answer: network errors, timeouts, 5xx and 429. */
  accessReviewFailures: number;
  /** Authentications answered from a last answer past its lifetime, while reviews failed. */
  staleAuthnAllowed: number;
  staleAuthnDenied: number;
  /** Authorizations answered from a last answer past its lifetime, while reviews failed. */
  staleAuthzAllowed: number;
  staleAuthzDenied: number;
  /** auth_unavailable decisions made (callers that joined one request share its decision). */
  unavailable: number;
  /** Whether the circuit breaker is open or half-open (a state, not a counter). */
  breakerOpen: boolean;
}

type Kind = "authn" | "authz";

/** One of the two lookups: its cache, its requests in flight, and its counters. */
interface Lookup {
  kind: Kind;
  review: "TokenReview" | "SubjectAccessReview";
  resource: string;
  cache: TtlCache<AuthDecision>;
  inFlight: Map<string, Promise<AuthDecision>>;
  hits: "authnHits" | "authzHits";
  failures: "tokenReviewFailures" | "accessReviewFailures";
  stale: { allowed: keyof AuthStats; denied: keyof AuthStats };
}

/** An outage: reviews get no answer since `since`; what callers got meanwhile. */
interface Outage {
  since: number;
  stale: number;
  unavailable: number;
  /** The last failure, for the messages of callers refused without a request. */
  lastError: string;
}

export class KubernetesAuth {
  readonly #authn: AuthenticationV1Api;
  readonly #authz: AuthorizationV1Api;
  readonly #audiences: string[];
  readonly #logger: Logger;
  readonly #authnTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #authzTtlMs: number;
  readonly #staleGraceMs: number;
  readonly #requestTimeoutMs: number;
  readonly #clock: Clock;
  readonly #breaker: CircuitBreaker;
  readonly #tokens: Lookup;
  readonly #access: Lookup;
  #outage: Outage | undefined;
  readonly #stats: AuthStats = {
    tokenReviews: 0,
    accessReviews: 0,
    authnHits: 0,
    authzHits: 0,
    tokenReviewFailures: 0,
    accessReviewFailures: 0,
    staleAuthnAllowed: 0,
    staleAuthnDenied: 0,
    staleAuthzAllowed: 0,
    staleAuthzDenied: 0,
    unavailable: 0,
    breakerOpen: false,
  };

  constructor(options: KubernetesAuthOptions) {
    if (options.audiences.length === 0) throw new Error("KubernetesAuth needs at least one audience");
    this.#authn = apiClient(options.kc, AuthenticationV1Api);
    this.#authz = apiClient(options.kc, AuthorizationV1Api);
    this.#audiences = [...options.audiences];
    this.#logger = options.logger.child({ component: "auth" });
    this.#authnTtlMs = options.authnTtlMs ?? DEFAULTS.authnTtlMs;
    this.#negativeTtlMs = options.negativeTtlMs ?? DEFAULTS.negativeTtlMs;
    this.#authzTtlMs = options.authzTtlMs ?? DEFAULTS.authzTtlMs;
    this.#staleGraceMs = Math.max(0, options.staleGraceMs ?? DEFAULTS.staleGraceMs);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#clock = options.clock;
    this.#breaker = new CircuitBreaker({
      failureThreshold: options.breakerThreshold ?? DEFAULTS.breakerThreshold,
      openMs: options.breakerOpenMs ?? DEFAULTS.breakerOpenMs,
      clock: options.clock,
    });
    const maxEntries = options.maxEntries ?? DEFAULTS.maxEntries;
    this.#tokens = {
      kind: "authn",
      review: "TokenReview",
      resource: "tokenreviews.authentication.k8s.io",
      cache: new TtlCache(maxEntries),
      inFlight: new Map(),
      hits: "authnHits",
      failures: "tokenReviewFailures",
      stale: { allowed: "staleAuthnAllowed", denied: "staleAuthnDenied" },
    };
    this.#access = {
      kind: "authz",
      review: "SubjectAccessReview",
      resource: "subjectaccessreviews.authorization.k8s.io",
      cache: new TtlCache(maxEntries),
      inFlight: new Map(),
      hits: "authzHits",
      failures: "accessReviewFailures",
      stale: { allowed: "staleAuthzAllowed", denied: "staleAuthzDenied" },
    };
  }

  /** A snapshot of the counters. */
  get stats(): AuthStats {
    return { ...this.#stats, breakerOpen: this.#breaker.state !== "closed" };
  }

  /** The circuit breaker around the reviews: closed (reviews go out), open or half-open. */
  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /**
   * Bearer token → caller. Never logs or stores the token: cache keys are sha256(token).
   * A cached answer comes back synchronously (the dispenser's hot path skips a promise tick).
   */
  authenticate(token: string): MaybeAsync<AuthDecision> {
    if (!token) return unauthenticated(`no bearer token: ${this.#howToAuthenticate()}`);
    const key = hash("sha256", token, "base64url");
    return this.#lookup(this.#tokens, key, () => this.#reviewToken(token, key), token);
  }

  /** May `caller` do `verb` on keypools/<pool> in `namespace` (group keypool.dev)? */
  authorize(caller: Caller, verb: AuthVerb, namespace: string, pool: string): MaybeAsync<AuthDecision> {
    if (!namespace || !pool) return forbidden("a namespace and a pool name are required");
    const key = `${callerKey(caller)}\u0000${verb}\u0000${namespace}\u0000${pool}`;
    return this.#lookup(this.#access, key, () => this.#reviewAccess(key, caller, verb, namespace, pool));
  }

  /** Both, in one call, as the dispenser uses it; synchronous when both answers are cached. */
  check(
    token: string | undefined,
    verb: AuthVerb,
    namespace: string,
    pool: string,
  ): MaybeAsync<AuthDecision> {
    const authn = this.authenticate(token ?? "");
    if (authn instanceof Promise) {
      return authn.then((a) => (a.ok ? this.authorize(a.caller, verb, namespace, pool) : a));
    }
    return authn.ok ? this.authorize(authn.caller, verb, namespace, pool) : authn;
  }

  /**
   * The cache, then a request already in flight, then a new request. A positive answer in its
   * last fifth of life is served while a fresh review runs in the background, so busy callers
   * never all wait for a review when an entry expires; a revoked grant still stops being
   * served within the cache lifetime. While the breaker is open nobody waits: the last answer
   * (within the grace) or auth_unavailable comes back at once, and in half-open one review goes
   * out in the background as the probe.
   */
  #lookup(
    lookup: Lookup,
    key: string,
    request: () => Promise<AuthDecision>,
    token?: string,
  ): MaybeAsync<AuthDecision> {
    const { cache, inFlight } = lookup;
    const now = this.#clock.now();
    const cached = cache.entry(key, now);
    const start = () => {
      const started = request().finally(() => inFlight.delete(key));
      inFlight.set(key, started);
      return started;
    };
    if (cached) {
      this.#stats[lookup.hits]++;
      const lifetime = cached.expiresAt - cached.storedAt;
      if (
        cached.value.ok &&
        cached.expiresAt - now < lifetime / 5 &&
        !inFlight.has(key) &&
        this.#breaker.admit() !== "refuse"
      ) {
        void start().catch(() => {});
      }
      return cached.value;
    }
    const admission = this.#breaker.admit();
    if (admission === "request") {
      const pending = inFlight.get(key);
      if (pending) {
        this.#stats[lookup.hits]++;
        return pending;
      }
      return start();
    }
    if (admission === "probe" && !inFlight.has(key)) void start().catch(() => {});
    return this.#fallback(lookup, key, now, token);
  }

  /**
   * No answer from the API server: the last answer while it is within the grace, else a token
   * past its `exp` is unauthenticated, else auth_unavailable.
   */
  #fallback(lookup: Lookup, key: string, now: number, token: string | undefined, why?: string): AuthDecision {
    // A background refresh failed while the entry is still fresh: nothing stale about it.
    const fresh = lookup.cache.entry(key, now);
    if (fresh) return fresh.value;
    const stale = lookup.cache.stale(key, now);
    if (stale) {
      this.#stats[stale.ok ? lookup.stale.allowed : lookup.stale.denied]++;
      if (this.#outage) this.#outage.stale++;
      return stale;
    }
    const expiry = token === undefined ? undefined : tokenExpiry(token);
    if (expiry !== undefined && expiry <= now) {
      return unauthenticated(
        `the token expired at ${new Date(expiry).toISOString()}: ${this.#howToAuthenticate()}`,
      );
    }
    return this.#unavailable(
      why ?? `Kubernetes ${lookup.review}s are failing (${this.#outage?.lastError ?? "no answer"})`,
    );
  }

  /** auth_unavailable, with when to come back: when the breaker lets a review out again. */
  #unavailable(reason: string): AuthDecision {
    this.#stats.unavailable++;
    if (this.#outage) this.#outage.unavailable++;
    const retryAfterSeconds = Math.max(1, Math.ceil(this.#breaker.retryAfterMs() / 1000));
    return {
      ok: false,
      code: "auth_unavailable",
      message: `cannot check credentials right now: ${reason}; retry in ${retryAfterSeconds} s`,
      retryAfterSeconds,
    };
  }

  async #reviewToken(token: string, key: string): Promise<AuthDecision> {
    this.#stats.tokenReviews++;
    const startedAt = this.#clock.now();
    let status;
    try {
      const review = await this.#authn.createTokenReview(
        { body: { spec: { token, audiences: this.#audiences } } },
        withTimeout(this.#requestTimeoutMs),
      );
      status = review.status;
    } catch (err) {
      return this.#failed(this.#tokens, key, err, startedAt, token);
    }
    this.#answered(startedAt);
    const now = this.#clock.now();
    const user = status?.user;
    if (status?.authenticated && user?.username) {
      if (status.audiences?.some((a) => this.#audiences.includes(a))) {
        const caller = callerFrom(user);
        const decision = freeze({ ok: true, caller });
        const expiry = tokenExpiry(token) ?? Infinity;
        this.#tokens.cache.set(
          key,
          decision,
          Math.min(now + this.#authnTtlMs, expiry),
          now,
          Math.min(now + this.#authnTtlMs + this.#staleGraceMs, expiry),
        );
        this.#logger.debug({ user: caller.username }, "authenticated");
        return decision;
      }
    }
    let message: string;
    if (!status?.authenticated || !user?.username) {
      const reason = status?.error ? ` (the API server says: ${sanitize(status.error, token)})` : "";
      message = `the token was not accepted${reason}: ${this.#howToAuthenticate()}`;
    } else {
      // The API server returns the audiences it checked; none of ours means it did not check them.
      message = `the token is not valid for ${this.#audienceWords()}: ${this.#howToAuthenticate()}`;
    }
    const decision = unauthenticated(message);
    this.#tokens.cache.set(
      key,
      decision,
      now + this.#negativeTtlMs,
      now,
      now + this.#negativeTtlMs + this.#staleGraceMs,
    );
    this.#logger.debug({ reason: message }, "authentication refused");
    return decision;
  }

  async #reviewAccess(
    key: string,
    caller: Caller,
    verb: AuthVerb,
    namespace: string,
    pool: string,
  ): Promise<AuthDecision> {
    this.#stats.accessReviews++;
    const startedAt = this.#clock.now();
    let status;
    try {
      const review = await this.#authz.createSubjectAccessReview(
        {
          body: {
            spec: {
              user: caller.username,
              uid: caller.uid,
              groups: caller.groups,
              extra: caller.extra,
              resourceAttributes: { group: GROUP, resource: RESOURCE, verb, namespace, name: pool },
            },
          },
        },
        withTimeout(this.#requestTimeoutMs),
      );
      status = review.status;
    } catch (err) {
      return this.#failed(this.#access, key, err, startedAt);
    }
    this.#answered(startedAt);
    const log = { user: caller.username, verb, namespace, pool };
    let decision: AuthDecision;
    if (status?.allowed && !status.denied) {
      decision = freeze({ ok: true, caller });
      this.#logger.debug(log, "authorized");
    } else {
      decision = forbidden(
        `${caller.username} may not "${verb}" ${RESOURCE}.${GROUP} "${pool}" in namespace "${namespace}": ` +
          `grant it with a Role (verbs: [${verb}], resourceNames: [${pool}]) and a RoleBinding`,
      );
      this.#logger.debug(
        { ...log, reason: status?.reason, evaluationError: status?.evaluationError },
        "access denied",
      );
    }
    const now = this.#clock.now();
    this.#access.cache.set(
      key,
      decision,
      now + this.#authzTtlMs,
      now,
      now + this.#authzTtlMs + this.#staleGraceMs,
    );
    return decision;
  }

  /** The API server answered a review: the breaker closes, and an outage ends. */
  #answered(startedAt: number): void {
    this.#breaker.success(startedAt);
    const outage = this.#outage;
    if (!outage) return;
    this.#outage = undefined;
    this.#logger.info(
      {
        outageMs: this.#clock.now() - outage.since,
        servedStale: outage.stale,
        answeredUnavailable: outage.unavailable,
      },
      "auth reviews work again",
    );
  }

  /**
   * A review failed. Without an answer (network, timeout, 5xx, 429) the caller gets the last
   * answer or auth_unavailable, the breaker counts it, and the first such failure of an outage
   * is logged at warn. An answer refusing the operator itself (401, 403, other 4xx) is logged at
   * warn every time and never served from the last answer: it needs fixing, not waiting out.
   */
  #failed(lookup: Lookup, key: string, err: unknown, startedAt: number, token?: string): AuthDecision {
    const status = err instanceof ApiException ? err.code : undefined;
    const detail = describeError(err);
    if (status !== undefined && status < 500 && status !== 429) {
      this.#answered(startedAt);
      this.#logger.warn(
        {
          review: lookup.review,
          status,
          err: detail,
          ...((status === 401 || status === 403) && {
            hint: `the operator's credentials need create on ${lookup.resource} (the system:auth-delegator ClusterRole grants it)`,
          }),
        },
        `${lookup.review} failed: callers get auth_unavailable until it works`,
      );
      return this.#unavailable(`the Kubernetes ${lookup.review} failed (HTTP ${status})`);
    }
    this.#stats[lookup.failures]++;
    const timedOut = isTimeout(err);
    const lastError = timedOut ? `no answer within ${this.#requestTimeoutMs} ms` : detail;
    const breaker = this.#breaker.failure(startedAt, timedOut);
    const opened = breaker === "opened";
    if (breaker === "ignored") {
      // Sent before the API server last answered: old news, not a new outage.
      this.#logger.debug(
        { review: lookup.review, err: detail },
        "auth review sent before the last answer failed",
      );
    } else if (this.#outage) {
      this.#outage.lastError = lastError;
      this.#logger.debug({ review: lookup.review, err: detail, breakerOpened: opened }, "auth review failed");
    } else {
      this.#outage = { since: this.#clock.now(), stale: 0, unavailable: 0, lastError };
      const serving =
        this.#staleGraceMs > 0
          ? `serving from last decisions for up to ${formatDuration(this.#staleGraceMs)}`
          : "callers without a cached decision get auth_unavailable (--auth-stale-grace is 0)";
      this.#logger.warn(
        { review: lookup.review, status, err: detail, breakerOpened: opened },
        `auth reviews failing; ${serving}`,
      );
    }
    return this.#fallback(
      lookup,
      key,
      this.#clock.now(),
      token,
      `the Kubernetes ${lookup.review} failed (${lastError})`,
    );
  }

  #audienceWords(): string {
    return this.#audiences.length === 1
      ? `audience ${this.#audiences[0]}`
      : `any of the audiences ${this.#audiences.join(", ")}`;
  }

  #howToAuthenticate(): string {
    return `send your ServiceAccount token as Authorization: Bearer <token>; a projected token needs ${this.#audienceWords()}`;
  }
}

/**
 * The `exp` of a JWT in epoch milliseconds, read WITHOUT verifying the signature: only used to
 * cache an API-server-authenticated token no longer than it lives. Undefined when not a JWT.
 */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function callerFrom(user: V1UserInfo): Caller {
  const username = user.username ?? "";
  const caller: Caller = { username, uid: user.uid || undefined, groups: [...(user.groups ?? [])] };
  if (user.extra && Object.keys(user.extra).length > 0) {
    caller.extra = Object.fromEntries(Object.entries(user.extra).map(([k, v]) => [k, [...v]]));
  }
  const parts = username.split(":");
  if (parts.length === 4 && parts[0] === "system" && parts[1] === "serviceaccount" && parts[2] && parts[3]) {
    caller.serviceAccount = { namespace: parts[2], name: parts[3] };
  }
  return caller;
}

/**
 * The part of an authorization cache key that says who the caller is. Cached callers are
 * frozen and reused, so the key is computed once per caller object, not once per request.
 */
const callerKeys = new WeakMap<Caller, string>();
function callerKey(caller: Caller): string {
  let key = callerKeys.get(caller);
  if (key === undefined) {
    key = JSON.stringify([
      caller.username,
      caller.uid ?? "",
      [...caller.groups].sort(),
      canonicalExtra(caller.extra),
    ]);
    callerKeys.set(caller, key);
  }
  return key;
}

/** Extra as sorted [key, sorted values] pairs, so equal extras give equal cache keys. */
function canonicalExtra(extra: Record<string, string[]> | undefined): Array<[string, string[]]> {
  return Object.entries(extra ?? {})
    .map(([k, v]): [string, string[]] => [k, [...v].sort()])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Cached decisions are shared between callers: nobody may change one. */
function freeze(decision: { ok: true; caller: Caller }): AuthDecision {
  const { caller } = decision;
  Object.freeze(caller.groups);
  if (caller.extra) {
    for (const values of Object.values(caller.extra)) Object.freeze(values);
    Object.freeze(caller.extra);
  }
  if (caller.serviceAccount) Object.freeze(caller.serviceAccount);
  Object.freeze(caller);
  return Object.freeze(decision);
}

function unauthenticated(message: string): AuthDecision {
  return Object.freeze({ ok: false, code: "unauthenticated", message });
}

function forbidden(message: string): AuthDecision {
  return Object.freeze({ ok: false, code: "forbidden", message });
}

/** The API server's reason, made safe to show: without the token or anything shaped like one. */
function sanitize(reason: string, token: string): string {
  const text = scrubSecrets(reason.split(token).join("[token]"));
  return text.length > MAX_REASON_LENGTH ? `${text.slice(0, MAX_REASON_LENGTH)}…` : text;
}

/** Whether a review failed because it took longer than the request timeout. */
function isTimeout(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === "TimeoutError" || (err.cause instanceof Error && err.cause.name === "TimeoutError"))
  );
}

/** Per-request options that abort the request after `ms`. */
function withTimeout(ms: number): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(AbortSignal.timeout(ms));
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" };
}
