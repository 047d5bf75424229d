/**
 * src/pool — the engine: key states, strategies, client-side limits, leases, quota groups,
 * snapshots. Pure: no I/O, no timers, no clock reads except through the injected Clock.
 * May import: src/api (schemas and types), node:crypto (hashing), zod. Nothing else.
 */
export * from "./capacity.ts";
export * from "./clock.ts";
export * from "./config.ts";
export * from "./engine.ts";
export * from "./identity.ts";
export { type KeyEntry, USABLE_STATES } from "./key.ts";
export * from "./outcome.ts";
export * from "./snapshot.ts";
