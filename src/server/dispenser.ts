/**
 * src/server — the HTTP side: the key-dispensing API (this file), the key-pool-manager
 * compatibility API (compat.ts), auth, probes and metrics. Express 5 apps over the pool
 * registry; every error is JSON `{error: {code, message}}` with a code from errors.ts.
 * The provider proxy (src/proxy) is handed in as a request handler: this folder never imports it.
 * May import: src/api, src/pool, src/providers, src/log, src/describe-error, src/kube-client.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { z } from "zod";
import { type PoolRef, type PoolRegistry, refKey } from "../pool/registry.ts";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import { OutcomeKind } from "../pool/outcome.ts";
import type { SessionAffinity } from "./affinity.ts";
import type { AuthDecision, AuthVerb, Caller } from "./authorizer.ts";
import { type Authorizer, bearerToken, refusal } from "./authorizer.ts";
import { createCompatRouter, type RuntimeKeys } from "./compat.ts";
import { createAgentCompatRouter } from "./compat-agent.ts";
import { COMPAT_PATH_RE, compatErrorBody } from "./compat-pools.ts";
import { parseBody } from "./body.ts";
import {
  type DispenseOptions,
  type DispenseResult,
  dispense,
  poolView,
  report,
  requirePool,
} from "./dispense.ts";
import { KeyPoolError, writeError } from "./errors.ts";
import type { KeyCoordinator } from "../state/coordinator.ts";
import { kubeName, nameSegment } from "./names.ts";

export interface DispenserOptions {
  registry: PoolRegistry;
  auth: Authorizer;
  logger: Logger;
  clock: Clock;
  /** "kubernetes": Git is the source of truth, keys change only through Secrets. */
  mode: "kubernetes" | "standalone";
  /** Namespace for compat routes when the caller has none (not a ServiceAccount, or no auth). */
  defaultNamespace: string;
  /** Standalone only: keys added/removed at run time (compat POST/DELETE /keys/:pool). */
  runtimeKeys?: RuntimeKeys;
  /** Forces a probe of every key of a pool (admin action). */
  probePool?: (ref: PoolRef) => Promise<number>;
  /** Largest request body accepted. */
  bodyLimit?: string;
  /** Sessions pinned to keys, shared with the proxy (x-keypool-session). */
  affinity: SessionAffinity;
  /** The provider proxy's handler (src/proxy), mounted at /proxy/; without it, /proxy/ is 404. */
  proxy?: RequestHandler;
  /** The state store's side of picks and reports (default: the memory store). */
  coordinator?: KeyCoordinator;
  /** Told how each dispense of an existing pool ended (keypool_dispenses_total). */
  countDispense?: DispenseOptions["count"];
}
const KEY_ID_RE = /^[0-9a-f]{12}$/;

function nameParam(req: Request, param: string): string {
  return kubeName(req.params[param], param);
}

/** A report's token count: what one call can use, with room to spare. */
const TokenCount = z.number().int().min(0).max(100_000_000);
/** Longest model name a report may give (the proxy takes the same from requests). */
const MAX_MODEL_LENGTH = 200;

export const ReportBody = z
  .strictObject({
    leaseId: z.string().min(1).max(128).optional(),
    keyId: z.string().regex(KEY_ID_RE, "must be a 12-character key id").optional(),
    outcome: z.enum(Object.values(OutcomeKind) as [OutcomeKind, ...OutcomeKind[]]).optional(),
    statusCode: z.number().int().min(100).max(599).optional(),
    body: z.unknown().optional(),
    error: z.unknown().optional(),
    headers: z.record(z.string(), z.string().max(1024)).optional(),
    retryAfterSeconds: z
      .number()
      .min(0)
      .max(7 * 86_400)
      .optional(),
    tokens: TokenCount.optional(),
    latencyMs: z.number().min(0).max(86_400_000).optional(),
    // What the call cost, for the pool's price list (outcome.usage); cachedInputTokens is part of
    // inputTokens, which dispense.ts checks (invalid_usage).
    model: z.string().min(1).max(MAX_MODEL_LENGTH).optional(),
    inputTokens: TokenCount.optional(),
    cachedInputTokens: TokenCount.optional(),
    outputTokens: TokenCount.optional(),
  })
  .refine((r) => r.leaseId !== undefined || r.keyId !== undefined, {
    message: "give leaseId (from the dispense answer) or keyId",
    path: ["leaseId"],
  })
  .refine((r) => r.outcome !== undefined || r.statusCode !== undefined, {
    message: "give outcome or statusCode (the provider's HTTP status)",
    path: ["outcome"],
  });

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const KEY_PATH_RE = /^\/v1\/pools\/([^/?]+)\/([^/?]+)\/key(?:\?(.*))?$/;
/** Most key ids one `exclude` may name (a client's failover tries a handful of keys). */
const EXCLUDE_MAX = 64;

/**
 * `?exclude=<keyId>,<keyId>`: keys the caller already tried for this call (a client's failover
 * moves to a key it has not tried yet, as the proxy does). Undefined when there is none.
 */
export function excludedKeys(query: string | undefined): ReadonlySet<string> | undefined {
  if (!query) return undefined;
  const values = new URLSearchParams(query).getAll("exclude");
  if (values.length === 0) return undefined;
  const ids = values.flatMap((v) => v.split(",")).filter(Boolean);
  if (ids.length > EXCLUDE_MAX)
    throw new KeyPoolError("invalid_request", `exclude: at most ${EXCLUDE_MAX} key ids`);
  for (const id of ids) {
    if (!KEY_ID_RE.test(id))
      throw new KeyPoolError("invalid_request", `exclude: "${id.slice(0, 32)}" is not a 12-character key id`);
  }
  return new Set(ids);
}

/**
 * The dispenser: GET /v1/pools/{namespace}/{pool}/key, the hot path, is answered directly on
 * node:http (bench/dispense: express's router and response helpers cost more than everything
 * the dispense itself does); every other endpoint goes to the express app.
 */
export function createDispenserApp(options: DispenserOptions): RequestHandler {
  const log = options.logger.child({ component: "dispenser" });
  const affinity = options.affinity;
  const app = createExpressApp(options, log, affinity);
  const proxy = options.proxy;

  const serveKey = (
    req: IncomingMessage,
    res: ServerResponse,
    ref: PoolRef,
    exclude: ReadonlySet<string> | undefined,
    decision: AuthDecision,
  ) => {
    if (!decision.ok) throw refusal(decision);
    const caller = decision.caller;
    const sessionHeader = req.headers["x-keypool-session"];
    const session = typeof sessionHeader === "string" ? sessionHeader.slice(0, 256) : undefined;
    const result = dispense(options.registry, affinity, options.clock, ref, {
      session,
      exclude,
      coordinator: options.coordinator,
      count: options.countDispense,
    });
    if (result instanceof Promise) {
      result
        .then((r) => sendKey(res, ref, caller.username, r))
        .catch((err: unknown) => writeError(res, asKeyPoolError(err, log, req.url ?? "")));
    } else {
      sendKey(res, ref, caller.username, result);
    }
  };

  const sendKey = (res: ServerResponse, ref: PoolRef, caller: string, result: DispenseResult) => {
    log.info(
      {
        audit: "dispense",
        caller,
        pool: refKey(ref),
        servedBy: refKey(result.servedBy),
        keyId: result.keyId,
        leaseId: result.leaseId,
      },
      "key dispensed",
    );
    const body = JSON.stringify({
      key: result.key,
      keyId: result.keyId,
      leaseId: result.leaseId,
      pool: result.servedBy,
      ...(result.fallbackFrom.length ? { fallbackFrom: result.fallbackFrom } : {}),
      strategy: result.strategy,
      expiresAt: new Date(result.expiresAtMs).toISOString(),
    });
    res.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  };

  // Synchronous when the auth answer is cached (the usual case): no promise tick per request.
  const handleKey = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray) => {
    const ref = {
      namespace: nameSegment(match[1], "namespace"),
      name: nameSegment(match[2], "pool"),
    };
    const exclude = excludedKeys(match[3]);
    const decision = options.auth.check(
      bearerToken(req.headers.authorization),
      "use",
      ref.namespace,
      ref.name,
    );
    if (decision instanceof Promise) {
      decision
        .then((d) => serveKey(req, res, ref, exclude, d))
        .catch((err: unknown) => writeError(res, asKeyPoolError(err, log, req.url ?? "")));
    } else {
      serveKey(req, res, ref, exclude, decision);
    }
  };

  return (req, res) => {
    if (proxy && req.url?.startsWith("/proxy/")) {
      proxy(req, res);
      return;
    }
    const match = req.method === "GET" ? KEY_PATH_RE.exec(req.url ?? "") : null;
    if (!match) {
      app(req, res);
      return;
    }
    try {
      handleKey(req, res, match);
    } catch (err) {
      writeError(res, asKeyPoolError(err, log, req.url ?? ""));
    }
  };
}

function createExpressApp(
  options: DispenserOptions,
  log: Logger,
  affinity: SessionAffinity,
): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  const bodyLimit = options.bodyLimit ?? "64kb";
  // The compatibility routes read a body as JSON whatever its content type (curl -d sends a
  // form type); the API's own routes refuse anything but JSON.
  app.use(
    express.json({
      limit: bodyLimit,
      strict: true,
      type: (req) => COMPAT_PATH_RE.test((req as Request).path),
    }),
  );
  app.use(requireJsonBodies);
  app.use(express.json({ limit: bodyLimit, strict: true }));

  const authorize = async (req: Request, verb: AuthVerb, ref: PoolRef): Promise<Caller> => {
    const decision = await options.auth.check(
      bearerToken(req.get("authorization")),
      verb,
      ref.namespace,
      ref.name,
    );
    if (!decision.ok) throw refusal(decision);
    return decision.caller;
  };
  const poolRef = (req: Request): PoolRef => ({
    namespace: nameParam(req, "namespace"),
    name: nameParam(req, "pool"),
  });

  app.post("/v1/pools/:namespace/:pool/report", async (req, res) => {
    const ref = poolRef(req);
    await authorize(req, "use", ref);
    const body = parseBody(ReportBody, req.body);
    const result = await report(
      options.registry,
      options.clock,
      ref,
      { ...body, body: body.body ?? body.error },
      options.coordinator,
    );
    res.json({ keyId: result.keyId, state: result.state });
  });

  app.get("/v1/pools/:namespace/:pool", async (req, res) => {
    const ref = poolRef(req);
    await authorize(req, "use", ref);
    res.json(poolView(requirePool(options.registry, ref)));
  });

  // Admin actions: verb "update" on the KeyPool.
  const keyAction = (action: "reset" | "disable" | "enable") =>
    async function keyActionRoute(req: Request, res: Response) {
      const ref = poolRef(req);
      const caller = await authorize(req, "update", ref);
      const keyId = String(req.params.keyId);
      if (!KEY_ID_RE.test(keyId))
        throw new KeyPoolError("invalid_request", "keyId must be a 12-character key id");
      const engine = requirePool(options.registry, ref).engine;
      if (!engine[action](keyId))
        throw new KeyPoolError(
          "key_not_found",
          `Key ${keyId} is not in KeyPool ${ref.namespace}/${ref.name}`,
        );
      log.info({ audit: action, caller: caller.username, pool: refKey(ref), keyId }, `key ${action}`);
      options.registry.touched(ref);
      res.json({ keyId, state: engine.keys().find((k) => k.id === keyId)?.state });
    };
  app.post("/v1/pools/:namespace/:pool/keys/:keyId/reset", keyAction("reset"));
  app.post("/v1/pools/:namespace/:pool/keys/:keyId/disable", keyAction("disable"));
  app.post("/v1/pools/:namespace/:pool/keys/:keyId/enable", keyAction("enable"));
  app.post("/v1/pools/:namespace/:pool/probe", async (req, res) => {
    const ref = poolRef(req);
    const caller = await authorize(req, "update", ref);
    requirePool(options.registry, ref);
    if (!options.probePool)
      throw new KeyPoolError("method_not_allowed", "Probes are not enabled on this server");
    const probed = await options.probePool(ref);
    log.info({ audit: "probe", caller: caller.username, pool: refKey(ref), probed }, "pool probed");
    res.json({ probed, pool: poolView(requirePool(options.registry, ref)) });
  });

  app.use(
    createCompatRouter({
      registry: options.registry,
      auth: options.auth,
      clock: options.clock,
      logger: log,
      affinity,
      mode: options.mode,
      defaultNamespace: options.defaultNamespace,
      runtimeKeys: options.runtimeKeys,
      coordinator: options.coordinator,
      countDispense: options.countDispense,
    }),
  );
  app.use(
    createAgentCompatRouter({
      registry: options.registry,
      auth: options.auth,
      clock: options.clock,
      logger: log,
      affinity,
      defaultNamespace: options.defaultNamespace,
      coordinator: options.coordinator,
      countDispense: options.countDispense,
    }),
  );

  app.use((req, _res, next) => {
    next(new KeyPoolError("not_found", `No endpoint ${req.method} ${req.path.slice(0, 200)}`));
  });
  app.use(errorHandler(log));
  return app;
}

/** Bodies must be JSON: a form or text body is refused instead of silently ignored. */
function requireJsonBodies(req: Request, _res: Response, next: NextFunction) {
  if (COMPAT_PATH_RE.test(req.path)) {
    next();
    return;
  }
  const length = Number(req.get("content-length") ?? 0);
  if ((length > 0 || req.get("transfer-encoding")) && !req.is("application/json")) {
    next(
      new KeyPoolError("unsupported_media_type", "Send the body as JSON (Content-Type: application/json)"),
    );
    return;
  }
  next();
}

/** Any thrown value as the API error it answers with (unexpected ones are logged, not shown). */
function asKeyPoolError(err: unknown, log: Logger, path: string): KeyPoolError {
  if (err instanceof KeyPoolError) return err;
  const type = (err as { type?: string }).type;
  if (type === "entity.too.large")
    return new KeyPoolError("payload_too_large", "The request body is too large");
  if (type === "entity.parse.failed")
    return new KeyPoolError("invalid_request", "The request body is not valid JSON");
  if ((err as { status?: number }).status === 400)
    return new KeyPoolError("invalid_request", "The request is malformed");
  log.error(
    { err: (err as Error).message, stack: (err as Error).stack, path: path.slice(0, 200) },
    "request failed",
  );
  return new KeyPoolError("internal", "Internal error; it has been logged");
}

export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const error = asKeyPoolError(err, log, req.path);
    writeError(res, error, COMPAT_PATH_RE.test(req.path) ? compatErrorBody(error) : error.toJSON());
  };
}
