/**
 * Opens the state store a configuration names: nothing for `memory`, else a Redis/Valkey
 * connection and the SharedState that keeps this process's engines in step with it.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import type { PoolRef, PoolRegistry } from "../pool/registry.ts";
import { type KeyCoordinator, localCoordinator } from "./coordinator.ts";
import { SharedState, type StoreFailureMode } from "./shared-state.ts";

export interface StateStoreConfig {
  stateStore: string;
  stateStorePasswordFile?: string | undefined;
  stateStorePrefix: string;
  stateStoreFailure: StoreFailureMode;
}

export interface OpenedStateStore {
  coordinator: KeyCoordinator;
  /** Set for a shared store. */
  shared: SharedState | undefined;
  close(): Promise<void>;
}

/** The password: from --state-store-password-file (trailing newline dropped), else the environment. */
export async function storePassword(
  config: StateStoreConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<string | undefined> {
  if (config.stateStorePasswordFile) {
    return (await readFile(config.stateStorePasswordFile, "utf8")).replace(/\r?\n$/, "");
  }
  return env.KEYPOOL_STATE_STORE_PASSWORD || undefined;
}

export async function openStateStore(
  config: StateStoreConfig,
  options: {
    env: Readonly<Record<string, string | undefined>>;
    registry: PoolRegistry;
    logger: Logger;
    clock: Clock;
    onAvailability?: (up: boolean) => void;
    onRemoteTouch?: (ref: PoolRef) => void;
  },
): Promise<OpenedStateStore> {
  if (config.stateStore === "memory") {
    return { coordinator: localCoordinator, shared: undefined, close: async () => undefined };
  }
  const { RedisStateStore } = await import("./redis-store.ts");
  const store = new RedisStateStore({
    url: config.stateStore,
    password: await storePassword(config, options.env),
    prefix: config.stateStorePrefix,
    logger: options.logger,
    clock: options.clock,
  });
  const shared = new SharedState({
    store,
    registry: options.registry,
    logger: options.logger,
    clock: options.clock,
    failure: config.stateStoreFailure,
    ...(options.onAvailability ? { onAvailability: options.onAvailability } : {}),
    ...(options.onRemoteTouch ? { onRemoteTouch: options.onRemoteTouch } : {}),
  });
  await store.connect();
  if (!store.up) {
    options.logger.warn(
      { failure: config.stateStoreFailure },
      config.stateStoreFailure === "open"
        ? "state store not reachable at start: serving from this replica's engine alone until it is"
        : "state store not reachable at start: keys are not served until it is (--state-store-failure=closed)",
    );
  }
  return {
    coordinator: shared,
    shared,
    close: async () => {
      shared.stop();
      await store.close();
    },
  };
}
