/**
 * What both commands wire the same way: the system clock (the one place the process reads the
 * time for the parts that take a Clock), the HTTP handler (dispensing API with the provider
 * proxy mounted), servers that close gracefully, and signal handling. Wiring only.
 */
import type { Server } from "node:http";
import type { Registry } from "prom-client";
import type { OperatorConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Clock } from "./pool/clock.ts";
import { PoolNotifications } from "./notifications.ts";
import { Notifier } from "./notify/notifier.ts";
import type { PoolRegistry } from "./pool/registry.ts";
import { ProxyMetrics } from "./proxy/metrics.ts";
import { createProxy } from "./proxy/proxy.ts";
import { SessionAffinity } from "./server/affinity.ts";
import { createDispenserApp, type DispenserOptions, type RequestHandler } from "./server/dispenser.ts";
import { DispenseMetrics } from "./server/metrics.ts";
import type { HealthSource } from "./server/probes.ts";

export const systemClock: Clock = { now: () => Date.now() };

/**
 * The dispensing API with the provider proxy at /proxy/: one session-affinity table for both,
 * so a conversation keeps its key whichever way it asks.
 */
export function servingHandler(
  config: Pick<OperatorConfig, "proxyMaxBody" | "proxyRetryBody" | "proxyMaxWaitLimit">,
  metrics: Registry,
  options: Omit<DispenserOptions, "affinity" | "proxy" | "countDispense">,
): RequestHandler {
  const affinity = new SessionAffinity();
  const proxy = createProxy({
    registry: options.registry,
    auth: options.auth,
    logger: options.logger,
    clock: options.clock,
    affinity,
    limits: {
      maxBytes: config.proxyMaxBody,
      retryLimit: Math.min(config.proxyRetryBody, config.proxyMaxBody),
    },
    maxWaitLimitMs: config.proxyMaxWaitLimit,
    metrics: new ProxyMetrics(metrics),
    coordinator: options.coordinator,
  });
  const dispenses = new DispenseMetrics(metrics);
  return createDispenserApp({ ...options, affinity, proxy, countDispense: dispenses.count });
}

export function addressPort(server: Server): number | undefined {
  const address = server.address();
  return typeof address === "object" && address ? address.port : undefined;
}

/** Stops accepting, lets in-flight requests finish, then closes idle keep-alive connections. */
export function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/** A health source whose readiness turns false for good once the process starts to drain. */
export interface Drainable extends HealthSource {
  drain(): void;
}

export function drainable(source: HealthSource): Drainable {
  let draining = false;
  return {
    health() {
      const h = source.health();
      return draining ? { ...h, ready: false, details: { ...h.details, shuttingDown: true } } : h;
    },
    drain() {
      draining = true;
    },
  };
}

/**
 * The first step of stopping: /readyz answers 503 while the dispenser keeps serving for `delayMs`,
 * so kube-proxy and load balancers move new connections to other replicas before the listener
 * closes (closing at once refused the connections already routed here: test/e2e's rollout).
 */
export async function drainFor(health: Drainable, delayMs: number, logger: Logger): Promise<void> {
  health.drain();
  if (delayMs <= 0) return;
  logger.info({ delayMs }, "not ready; serving on until the shutdown delay has passed");
  await new Promise((resolve) => setTimeout(resolve, delayMs));
}

/**
 * Resolves with the exit code once SIGTERM/SIGINT has run `stop` (0), or at once on a second
 * signal (1).
 */
export function onSignals(logger: Logger, stop: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const handle = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, "stopping: finishing requests, flushing state");
      stop().then(
        () => resolve(0),
        (err: Error) => {
          logger.error({ err: err.message }, "error while stopping");
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => handle("SIGTERM"));
    process.on("SIGINT", () => handle("SIGINT"));
  });
}

/**
 * Webhook notifications for every pool that names webhooks (spec.notifications): the notifier
 * that delivers them and the part that decides when. `stop` waits up to `drainMs` for deliveries
 * under way (a graceful stop tells what it learned), then drops the rest.
 */
export function startNotifications(options: {
  registry: PoolRegistry;
  metrics: Registry;
  logger: Logger;
  isLeader: () => boolean;
  claim?: ((pool: string, id: string) => Promise<boolean>) | undefined;
}): { stop(drainMs?: number): Promise<void> } {
  const notifier = new Notifier({ logger: options.logger, clock: systemClock, metrics: options.metrics });
  const notifications = new PoolNotifications({
    registry: options.registry,
    notifier,
    clock: systemClock,
    logger: options.logger,
    isLeader: options.isLeader,
    ...(options.claim ? { claim: options.claim } : {}),
  });
  notifications.start();
  return {
    async stop(drainMs = 5_000) {
      notifications.stop();
      await notifier.drain(drainMs);
      notifier.close();
    },
  };
}
