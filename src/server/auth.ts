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
 * Failures of the reviews themselves (network, timeouts, 5xx, the operator's own credentials
 * lacking `create` on tokenreviews/subjectaccessreviews: the `system:auth-delegator`
 * ClusterRole grants both) are `auth_unavailable`, logged at warn and never cached.
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
import { type Logger, scrubSecrets } from "../log.ts";
import { apiClient } from "../kube-client.ts";

export interface Caller {
  /** e.g. system:serviceaccount:ai:chatbot */
  username: string;
  uid: string | undefined;
  groups: string[];
  extra?: Record<string, string[]>;
  /** Set when the caller is a ServiceAccount. */
  serviceAccount?: { namespace: string; name: string };
}

export type AuthVerb = "use" | "update";

/** A value now when it is known (a cache hit), a promise when it needs a round trip. */
export type MaybeAsync<T> = T | Promise<T>;

export type AuthDecision =
  | { ok: true; caller: Caller }
  | { ok: false; code: "unauthenticated" | "forbidden" | "auth_unavailable"; message: string };

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
  /** Entries per cache; the least recently used goes first. */
  maxEntries?: number;
  /** A TokenReview or SubjectAccessReview that takes longer is `auth_unavailable`. */
  requestTimeoutMs?: number;
  now?: () => number;
}

/** Each default in one place. */
const DEFAULTS = {
  authnTtlMs: 10_000,
  negativeTtlMs: 2_000,
  authzTtlMs: 10_000,
  maxEntries: 10_000,
  requestTimeoutMs: 5_000,
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
}

export class KubernetesAuth {
  readonly #authn: AuthenticationV1Api;
  readonly #authz: AuthorizationV1Api;
  readonly #audiences: string[];
  readonly #logger: Logger;
  readonly #authnTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #authzTtlMs: number;
  readonly #requestTimeoutMs: number;
  readonly #now: () => number;
  readonly #authnCache: TtlCache<AuthDecision>;
  readonly #authzCache: TtlCache<AuthDecision>;
  readonly #authnInFlight = new Map<string, Promise<AuthDecision>>();
  readonly #authzInFlight = new Map<string, Promise<AuthDecision>>();
  readonly #stats: AuthStats = { tokenReviews: 0, accessReviews: 0, authnHits: 0, authzHits: 0 };

  constructor(options: KubernetesAuthOptions) {
    if (options.audiences.length === 0) throw new Error("KubernetesAuth needs at least one audience");
    this.#authn = apiClient(options.kc, AuthenticationV1Api);
    this.#authz = apiClient(options.kc, AuthorizationV1Api);
    this.#audiences = [...options.audiences];
    this.#logger = options.logger.child({ component: "auth" });
    this.#authnTtlMs = options.authnTtlMs ?? DEFAULTS.authnTtlMs;
    this.#negativeTtlMs = options.negativeTtlMs ?? DEFAULTS.negativeTtlMs;
    this.#authzTtlMs = options.authzTtlMs ?? DEFAULTS.authzTtlMs;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#now = options.now ?? Date.now;
    const maxEntries = options.maxEntries ?? DEFAULTS.maxEntries;
    this.#authnCache = new TtlCache(maxEntries);
    this.#authzCache = new TtlCache(maxEntries);
  }

  /** A snapshot of the counters. */
  get stats(): AuthStats {
    return { ...this.#stats };
  }

  /**
   * Bearer token → caller. Never logs or stores the token: cache keys are sha256(token).
   * A cached answer comes back synchronously (the dispenser's hot path skips a promise tick).
   */
  authenticate(token: string): MaybeAsync<AuthDecision> {
    if (!token) return unauthenticated(`no bearer token: ${this.#howToAuthenticate()}`);
    const key = hash("sha256", token, "base64url");
    return this.#lookup(key, this.#authnCache, this.#authnInFlight, "authnHits", () =>
      this.#reviewToken(token, key),
    );
  }

  /** May `caller` do `verb` on keypools/<pool> in `namespace` (group keypool.dev)? */
  authorize(caller: Caller, verb: AuthVerb, namespace: string, pool: string): MaybeAsync<AuthDecision> {
    if (!namespace || !pool) return forbidden("a namespace and a pool name are required");
    const key = `${callerKey(caller)}\u0000${verb}\u0000${namespace}\u0000${pool}`;
    return this.#lookup(key, this.#authzCache, this.#authzInFlight, "authzHits", () =>
      this.#reviewAccess(key, caller, verb, namespace, pool),
    );
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
   * served within the cache lifetime.
   */
  #lookup(
    key: string,
    cache: TtlCache<AuthDecision>,
    inFlight: Map<string, Promise<AuthDecision>>,
    hits: "authnHits" | "authzHits",
    request: () => Promise<AuthDecision>,
  ): MaybeAsync<AuthDecision> {
    const now = this.#now();
    const cached = cache.entry(key, now);
    const start = () => {
      const started = request().finally(() => inFlight.delete(key));
      inFlight.set(key, started);
      return started;
    };
    if (cached) {
      this.#stats[hits]++;
      const lifetime = cached.expiresAt - cached.storedAt;
      if (cached.value.ok && cached.expiresAt - now < lifetime / 5 && !inFlight.has(key)) {
        void start().catch(() => {});
      }
      return cached.value;
    }
    const pending = inFlight.get(key);
    if (pending) {
      this.#stats[hits]++;
      return pending;
    }
    return start();
  }

  async #reviewToken(token: string, key: string): Promise<AuthDecision> {
    this.#stats.tokenReviews++;
    let status;
    try {
      const review = await this.#authn.createTokenReview(
        { body: { spec: { token, audiences: this.#audiences } } },
        withTimeout(this.#requestTimeoutMs),
      );
      status = review.status;
    } catch (err) {
      return this.#unavailable("TokenReview", "tokenreviews.authentication.k8s.io", err);
    }
    const now = this.#now();
    const user = status?.user;
    if (status?.authenticated && user?.username) {
      if (status.audiences?.some((a) => this.#audiences.includes(a))) {
        const caller = callerFrom(user);
        const decision = freeze({ ok: true, caller });
        this.#authnCache.set(
          key,
          decision,
          Math.min(now + this.#authnTtlMs, tokenExpiry(token) ?? Infinity),
          now,
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
    this.#authnCache.set(key, decision, now + this.#negativeTtlMs, now);
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
      return this.#unavailable("SubjectAccessReview", "subjectaccessreviews.authorization.k8s.io", err);
    }
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
    this.#authzCache.set(key, decision, this.#now() + this.#authzTtlMs, this.#now());
    return decision;
  }

  #unavailable(review: string, resource: string, err: unknown): AuthDecision {
    const detail = describeError(err);
    const forbiddenToUs = err instanceof ApiException && (err.code === 401 || err.code === 403);
    this.#logger.warn(
      {
        review,
        status: err instanceof ApiException ? err.code : undefined,
        err: detail,
        ...(forbiddenToUs && {
          hint: `the operator's credentials need create on ${resource} (the system:auth-delegator ClusterRole grants it)`,
        }),
      },
      `${review} failed: callers get auth_unavailable until it works`,
    );
    return {
      ok: false,
      code: "auth_unavailable",
      message: `cannot check credentials right now: the Kubernetes ${review} failed (${
        err instanceof ApiException ? `HTTP ${err.code}` : "no answer"
      }); retry later`,
    };
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

/** Extracts a bearer token from an Authorization header value ("Bearer x"), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^[ \t]*Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
  return match?.[1];
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

/**
 * A map with a size bound and per-entry expiry. Map order is recency: a hit moves its entry to
 * the end, and the first entry is evicted when full. Expired entries are never served.
 */
export class TtlCache<V> {
  readonly #max: number;
  readonly #entries = new Map<string, { value: V; storedAt: number; expiresAt: number; touchedAt: number }>();

  constructor(maxEntries: number) {
    if (!(maxEntries >= 1)) throw new Error(`maxEntries must be at least 1, got ${maxEntries}`);
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now: number): V | undefined {
    return this.entry(key, now)?.value;
  }

  /** The live entry with its expiry, or undefined. */
  entry(key: string, now: number): { value: V; storedAt: number; expiresAt: number } | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    // Move to the recent end at most once a second: on the hot path (one caller, thousands of
    // requests a second) re-inserting on every hit costs more than the rest of the lookup.
    if (now - entry.touchedAt >= 1_000) {
      entry.touchedAt = now;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, value: V, expiresAt: number, now = 0): void {
    this.#entries.delete(key);
    while (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { value, storedAt: now, expiresAt, touchedAt: now });
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

/** One line saying why a review failed, from the API server's Status when there is one. */
function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    let message: unknown;
    try {
      const body: unknown = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
      message = (body as { message?: unknown } | null)?.message;
    } catch {
      // not a Status: the code says enough
    }
    return `HTTP ${err.code}${typeof message === "string" ? `: ${scrubSecrets(message)}` : ""}`;
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return scrubSecrets(`${err.name}: ${err.message}${cause}`);
  }
  return "unknown error";
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
