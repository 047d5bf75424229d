/** `keypool operator`: wiring only. */
import type { Server } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import { yieldBackgroundThreads } from "./background-threads.ts";
import type { OperatorConfig } from "./config.ts";
import { Operator } from "./controller/operator.ts";
import { createLogger } from "./log.ts";
import { KubernetesAuth } from "./server/auth.ts";
import { type Authorizer, NoAuth } from "./server/authorizer.ts";
import { createMetrics } from "./server/metrics.ts";
import { createProbesApp, listen } from "./server/probes.ts";
import {
  addressPort,
  closeServer,
  drainable,
  drainFor,
  onSignals,
  servingHandler,
  startNotifications,
  systemClock,
} from "./run-common.ts";
import { PoolRegistry } from "./pool/registry.ts";
import { openStateStore } from "./state/open.ts";
import type { SharedState } from "./state/shared-state.ts";
import { createStatusPage } from "./ui/status-page.ts";

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

export async function runOperator(config: OperatorConfig): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const kc = loadKubeConfig(config.kubeconfig, process.env);
  yieldBackgroundThreads(logger, { nice: config.backgroundThreadsNice });
  const registry = new PoolRegistry();
  // The store's availability changes every pool's conditions: each is reconciled again.
  const requeue: { all?: () => void } = {};
  const state = await openStateStore(config, {
    env: process.env,
    registry,
    logger,
    clock: systemClock,
    onAvailability: () => requeue.all?.(),
  });
  const operator = new Operator({
    kc,
    logger,
    clock: systemClock,
    registry,
    sharedState: state.shared,
    probes: config.probes,
    namespaces: config.namespaces,
    leaderElection: config.leaderElect
      ? {
          enabled: true,
          namespace: config.leaderElectionNamespace,
          name: config.leaderElectionId,
          leaseDurationMs: config.leaderElectionLeaseDuration,
          renewDeadlineMs: config.leaderElectionRenewDeadline,
          retryPeriodMs: config.leaderElectionRetryPeriod,
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
      clock: systemClock,
      staleGraceMs: config.authStaleGrace,
    });
  }
  const metrics = createMetrics({
    pools: operator.registry,
    isLeader: () => operator.isLeader,
    watchStaleSeconds: () => Number(operator.health().details.watchStaleMs ?? 0) / 1000,
    statusWrites: () => operator.statusWriter.stats.writes,
    statusWriteFailures: () => operator.statusWriter.stats.failures,
    ...(state.shared ? { stateStoreUp: () => (state.shared as { up: boolean }).up } : {}),
    ...(auth instanceof KubernetesAuth ? { authStats: () => (auth as KubernetesAuth).stats } : {}),
  });
  const dispenserApp = servingHandler(config, metrics, {
    registry: operator.registry,
    auth,
    logger,
    clock: systemClock,
    mode: "kubernetes",
    defaultNamespace: config.defaultNamespace,
    probePool: (ref) => operator.prober.probePool(ref),
    coordinator: state.coordinator,
  });
  requeue.all = () => operator.requeueAll();
  const notifications = startNotifications({
    registry: operator.registry,
    metrics,
    logger,
    isLeader: () => operator.isLeader,
    claim: state.shared ? (pool, id) => (state.shared as SharedState).claimNotification(pool, id) : undefined,
  });

  const health = drainable(operator);
  const statusPage = createStatusPage({ registry: operator.registry, clock: systemClock });
  const probes = await listen(
    createProbesApp(health, metrics, statusPage.router),
    config.probesPort,
    config.probesAddress,
  );
  logger.info(
    { cluster: kc.getCurrentCluster()?.server, identity: operator.identity, probesPort: addressPort(probes) },
    "starting operator",
  );
  const servers: { dispenser?: Server } = {};
  const stopped = onSignals(logger, async () => {
    await drainFor(health, config.shutdownDelay, logger);
    await closeServer(servers.dispenser);
    await operator.stop();
    await notifications.stop();
    await state.close();
    statusPage.close(); // its event streams would hold the probes server open
    await closeServer(probes);
  });

  await operator.start();
  servers.dispenser = await listen(dispenserApp, config.port, config.address);
  logger.info({ port: addressPort(servers.dispenser), probesPort: addressPort(probes) }, "operator running");
  const code = await stopped;
  logger.flush();
  return code;
}
