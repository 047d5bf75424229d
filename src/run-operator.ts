/** `keypool operator`: wiring only. */
import type { Server } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import { parseDuration } from "./api/duration.ts";
import type { OperatorConfig } from "./config.ts";
import { Operator } from "./controller/operator.ts";
import { createLogger } from "./log.ts";
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

export async function runOperator(config: OperatorConfig): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const kc = loadKubeConfig(config.kubeconfig, process.env);
  const operator = new Operator({
    kc,
    logger,
    clock: systemClock,
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
  const metrics = createMetrics({
    pools: operator.registry,
    isLeader: () => operator.isLeader,
    watchStaleSeconds: () => Number(operator.health().details.watchStaleMs ?? 0) / 1000,
    statusWrites: () => operator.statusWriter.stats.writes,
  });
  const probes: Server = await listen(
    createProbesApp(operator, metrics),
    config.probesPort,
    config.probesAddress,
  );
  logger.info(
    { cluster: kc.getCurrentCluster()?.server, identity: operator.identity, probesPort: config.probesPort },
    "starting operator",
  );

  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, "stopping: flushing status, releasing the lease");
      operator
        .stop()
        .then(() => new Promise<void>((done) => probes.close(() => done())))
        .then(
          () => resolve(0),
          (err: Error) => {
            logger.error({ err: err.message }, "error while stopping");
            resolve(1);
          },
        );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

  await operator.start();
  logger.info("operator running");
  const code = await stopped;
  logger.flush();
  return code;
}
