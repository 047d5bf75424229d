/** `keypool operator`: wiring only. */
import type { Server } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { parseDuration } from "./api/duration.ts";
import { yieldBackgroundThreads } from "./background-threads.ts";
import type { OperatorConfig } from "./config.ts";
import { Operator } from "./controller/operator.ts";
import { createLogger, type Logger } from "./log.ts";
import { KubernetesAuth } from "./server/auth.ts";
import { type Authorizer, NoAuth } from "./server/authorizer.ts";
import { createDispenserApp } from "./server/dispenser.ts";
import { createMetrics } from "./server/metrics.ts";
import { createProbesApp, listen } from "./server/probes.ts";

const systemClock = { now: () => Date.now() };

export function loadKubeConfig(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error(
      "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a cluster",
    );
  }
  return kc;
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

export async function runOperator(config: OperatorConfig): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const kc = loadKubeConfig(config.kubeconfig, process.env);
  yieldBackgroundThreads(logger, { nice: config.backgroundThreadsNice });
  const operator = new Operator({
    kc,
    logger,
    clock: systemClock,
    probes: config.probes,
    namespaces: config.namespaces,
    leaderElection: config.leaderElect
      ? {
          enabled: true,
          namespace: config.leaderElectionNamespace,
          name: config.leaderElectionId,
          leaseDurationMs: parseDuration(config.leaderElectionLeaseDuration),
          renewDeadlineMs: parseDuration(config.leaderElectionRenewDeadline),
          retryPeriodMs: parseDuration(config.leaderElectionRetryPeriod),
        }
      : { enabled: false },
  });
  let auth: Authorizer;
  if (config.auth === "none") {
    logger.warn(
      "--auth=none: ANYONE who reaches the dispenser port gets keys. Use it only on your own machine.",
    );
    auth = new NoAuth();
  } else {
    auth = new KubernetesAuth({
      kc,
      audiences: config.authAudiences,
      logger,
      staleGraceMs: parseDuration(config.authStaleGrace) ?? 0,
    });
  }
  const metrics = createMetrics({
    pools: operator.registry,
    isLeader: () => operator.isLeader,
    watchStaleSeconds: () => Number(operator.health().details.watchStaleMs ?? 0) / 1000,
    statusWrites: () => operator.statusWriter.stats.writes,
    ...(auth instanceof KubernetesAuth ? { authStats: () => (auth as KubernetesAuth).stats } : {}),
  });
  const dispenserApp = createDispenserApp({
    registry: operator.registry,
    auth,
    logger,
    clock: systemClock,
    mode: "kubernetes",
    defaultNamespace: config.defaultNamespace,
    probePool: (ref) => operator.prober.probePool(ref),
    proxy: proxySettings(config, metrics),
  });

  const probes = await listen(createProbesApp(operator, metrics), config.probesPort, config.probesAddress);
  logger.info(
    { cluster: kc.getCurrentCluster()?.server, identity: operator.identity, probesPort: addressPort(probes) },
    "starting operator",
  );
  const servers: { dispenser?: Server } = {};
  const stopped = onSignals(logger, async () => {
    await closeServer(servers.dispenser);
    await operator.stop();
    await closeServer(probes);
  });

  await operator.start();
  servers.dispenser = await listen(dispenserApp, config.port, config.address);
  logger.info({ port: addressPort(servers.dispenser), probesPort: addressPort(probes) }, "operator running");
  const code = await stopped;
  logger.flush();
  return code;
}

/** The proxy's settings from either command's configuration. */
export function proxySettings(
  config: Pick<OperatorConfig, "proxyMaxBody" | "proxyRetryBody" | "proxyMaxWaitLimit">,
  metrics: Registry,
) {
  return {
    limits: {
      maxBytes: config.proxyMaxBody,
      retryLimit: Math.min(config.proxyRetryBody, config.proxyMaxBody),
    },
    maxWaitLimitMs: parseDuration(config.proxyMaxWaitLimit) ?? 60_000,
    metrics,
  };
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
