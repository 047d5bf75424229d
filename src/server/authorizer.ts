/**
 * Who may do what, as the HTTP servers ask it. Three implementations:
 * - KubernetesAuth (auth.ts): TokenReview + SubjectAccessReview, the product's RBAC model;
 * - StaticTokenAuth: bearer tokens from a file, for standalone mode;
 * - NoAuth: everyone may do everything (`--auth=none`, local use only; logged at start).
 */
import { hash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { z } from "zod";
import { KeyPoolError } from "./errors.ts";

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
  | {
      ok: false;
      code: "unauthenticated" | "forbidden" | "auth_unavailable";
      message: string;
      /** auth_unavailable: when to try again (the Retry-After header). */
      retryAfterSeconds?: number;
    };

/** Extracts a bearer token from an Authorization header value ("Bearer x"), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^[ \t]*Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** A refusal as the API error it answers with (Retry-After included for auth_unavailable). */
export function refusal(decision: Extract<AuthDecision, { ok: false }>, hint = ""): KeyPoolError {
  return new KeyPoolError(decision.code, `${decision.message}${hint}`, {
    retryAfterSeconds: decision.retryAfterSeconds,
  });
}

export interface Authorizer {
  /**
   * Checks a bearer token and a verb on keypools/<pool> in <namespace>: the decision itself when
   * it is known without I/O, else a promise of it.
   */
  check(token: string | undefined, verb: AuthVerb, namespace: string, pool: string): MaybeAsync<AuthDecision>;
  /** Only who the caller is (for compat routes that resolve pools in the caller's namespace). */
  authenticate(token: string | undefined): MaybeAsync<AuthDecision>;
}

const ANONYMOUS: Caller = { username: "anonymous", uid: undefined, groups: [] };

/** Whether an address a server binds to is reachable from this host only. */
export function isLoopbackAddress(address: string): boolean {
  return address === "localhost" || address === "::1" || /^127(?:\.\d{1,3}){3}$/.test(address);
}

/**
 * Anyone may take keys. Admin actions (verb update) need a real identity, unless `admin` says
 * otherwise: a server on loopback only, where nobody has an identity and whoever reaches the
 * port can already take every key (the key-pool-manager's POST/DELETE /keys work there).
 */
export class NoAuth implements Authorizer {
  readonly #admin: boolean;

  constructor(options: { admin?: boolean } = {}) {
    this.#admin = options.admin ?? false;
  }

  check(_token: string | undefined, verb: AuthVerb): AuthDecision {
    if (verb === "update" && !this.#admin) {
      return {
        ok: false,
        code: "forbidden",
        message:
          "admin actions need an identity when the port is reachable from other hosts: run with --auth tokens (standalone) or --auth kubernetes, or listen on loopback",
      };
    }
    return { ok: true, caller: ANONYMOUS };
  }
  authenticate(): AuthDecision {
    return { ok: true, caller: ANONYMOUS };
  }
}

const TokensFile = z.object({
  tokens: z
    .array(
      z.object({
        name: z.string().min(1),
        token: z.string().min(16, "tokens must be at least 16 characters"),
        /** "namespace/pool", "namespace/*" or "*". */
        pools: z.array(z.string().min(1)).default(["*"]),
        verbs: z.array(z.enum(["use", "update"])).default(["use"]),
      }),
    )
    .min(1),
});

const digest = (s: string) => hash("sha256", s, "buffer");

interface TokenEntry {
  name: string;
  digest: Buffer;
  pools: string[];
  verbs: AuthVerb[];
}

/** Bearer tokens from a file: `tokens: [{name, token, pools: ["default/gpt-4"], verbs: [use]}]`. */
export class StaticTokenAuth implements Authorizer {
  readonly #entries: TokenEntry[];

  constructor(file: z.input<typeof TokensFile>) {
    const parsed = TokensFile.parse(file);
    this.#entries = parsed.tokens.map((t) => ({
      name: t.name,
      digest: digest(t.token),
      pools: t.pools,
      verbs: t.verbs,
    }));
  }

  static async fromFile(path: string): Promise<StaticTokenAuth> {
    const parsed = TokensFile.safeParse(parse(await readFile(path, "utf8")));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`${path}: ${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid tokens file"}`);
    }
    return new StaticTokenAuth(parsed.data);
  }

  #find(token: string | undefined) {
    if (!token) return undefined;
    const d = digest(token);
    return this.#entries.find((e) => timingSafeEqual(e.digest, d));
  }

  authenticate(token: string | undefined): AuthDecision {
    return this.#identify(this.#find(token));
  }

  #identify(entry: TokenEntry | undefined): AuthDecision {
    if (!entry) {
      return {
        ok: false,
        code: "unauthenticated",
        message: "send a token from the tokens file as Authorization: Bearer <token>",
      };
    }
    return { ok: true, caller: { username: `token:${entry.name}`, uid: undefined, groups: [] } };
  }

  check(token: string | undefined, verb: AuthVerb, namespace: string, pool: string): AuthDecision {
    const entry = this.#find(token);
    const who = this.#identify(entry);
    if (!entry || !who.ok) return who;
    const poolAllowed = entry.pools.some(
      (p) => p === "*" || p === `${namespace}/${pool}` || p === `${namespace}/*`,
    );
    if (!poolAllowed || !entry.verbs.includes(verb)) {
      return {
        ok: false,
        code: "forbidden",
        message: `token "${entry.name}" may not "${verb}" pool ${namespace}/${pool}`,
      };
    }
    return who;
  }
}
