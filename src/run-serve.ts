/** `keypool serve`: the engine without a cluster (manifests directory + env vars). Wiring only. */
import { yieldBackgroundThreads } from "./background-threads.ts";
import type { ServeConfig } from "./config.ts";
import { PoolRegistry, refKey } from "./pool/registry.ts";
import { Prober } from "./providers/prober.ts";
import { leaseTokenSource } from "./lease-tokens.ts";
import { createLogger } from "./log.ts";
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
import { type Authorizer, isLoopbackAddress, NoAuth, StaticTokenAuth } from "./server/authorizer.ts";
import { createMetrics } from "./server/metrics.ts";
import { createProbesApp, listen } from "./server/probes.ts";
import { StandaloneSource } from "./sources/files/standalone.ts";
import { openStateStore } from "./state/open.ts";
import type { SharedState } from "./state/shared-state.ts";
import { createStatusPage, withStatusPage } from "./ui/status-page.ts";

export async function runServe(
  config: ServeConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  yieldBackgroundThreads(logger, { nice: config.backgroundThreadsNice });
  const registry = new PoolRegistry();
  // The source logs each key transition and each problem itself, once: no onTransition logging here.
  const source = new StandaloneSource({
    recoveryIntervalMs: config.healthCheckInterval,
    manifestsDir: config.manifests,
    env,
    defaultNamespace: config.defaultNamespace,
    stateFile: config.stateFile,
    registry,
    logger,
    clock: systemClock,
    newLeaseToken: leaseTokenSource(),
  });
  const state = await openStateStore(config, { env, registry, logger, clock: systemClock });
  let auth: Authorizer;
  if (config.auth === "tokens") {
    auth = await StaticTokenAuth.fromFile(config.authTokensFile as string);
  } else {
    const loopback = isLoopbackAddress(config.address);
    if (!loopback) {
      logger.warn(
        { address: config.address },
        "auth is off and the port is reachable from other hosts: anyone there gets keys (admin actions stay off)",
      );
    }
    auth = new NoAuth({ admin: loopback });
  }
  const prober = new Prober({
    registry,
    logger,
    clock: systemClock,
    isActive: () => true,
    tickMs: config.healthCheckInterval,
  });
  const metrics = createMetrics({
    pools: registry,
    isLeader: () => true,
    watchStaleSeconds: () => 0,
    statusWrites: () => 0,
    ...(state.shared ? { stateStoreUp: () => (state.shared as { up: boolean }).up } : {}),
  });
  const app = servingHandler(config, metrics, {
    registry,
    auth,
    logger,
    clock: systemClock,
    mode: "standalone",
    defaultNamespace: config.defaultNamespace,
    runtimeKeys: source,
    probePool: (ref) => prober.probePool(ref),
    coordinator: state.coordinator,
  });
  // The status page, open like /health on this port: ids and masked values only, no keys.
  const statusPage = createStatusPage({ registry, clock: systemClock });
  const health = {
    health: () => ({
      live: true,
      ready: true,
      details: { pools: registry.size, problems: source.problems().length },
    }),
  };

  const notifications = startNotifications({
    registry,
    metrics,
    logger,
    isLeader: () => true,
    claim: state.shared ? (pool, id) => (state.shared as SharedState).claimNotification(pool, id) : undefined,
  });
  await source.start(); // logs each problem it finds, once
  // Cooldowns and Invalid marks other processes (or this one before a restart) left in the store.
  await state.shared?.resync();
  if (config.probes) prober.start();
  const dispenser = await listen(withStatusPage(app, statusPage), config.port, config.address);
  const drain = drainable(health);
  const probes = await listen(createProbesApp(drain, metrics), config.probesPort, config.probesAddress);
  const host = config.address.includes(":") ? `[${config.address}]` : config.address;
  const url = `http://${host}:${addressPort(dispenser)}`;
  logger.info(
    {
      url,
      port: addressPort(dispenser),
      probesPort: addressPort(probes),
      pools: [...registry.values()].map((p) => refKey(p.ref)),
    },
    "serving keys",
  );
  process.stderr.write(`keypool: serving ${registry.size} pool(s) at ${url} (try: curl ${url}/status)\n`);

  const code = await onSignals(logger, async () => {
    await drainFor(drain, config.shutdownDelay, logger);
    statusPage.close(); // its event streams would hold the dispenser open
    await closeServer(dispenser);
    await prober.stop();
    await notifications.stop();
    await source.stop();
    await state.close();
    await closeServer(probes);
  });
  logger.flush();
  return code;
}
