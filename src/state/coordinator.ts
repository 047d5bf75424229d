/**
 * What the dispenser and the proxy ask around each pick and report: with the memory store
 * (the default) nothing beyond the pool's own engine; with a shared store (shared-state.ts) a
 * pick is confirmed by an atomic reservation on the store and a report reaches it too.
 */
import type { Dispensed, PickResult, ReportRef, ReportResult } from "../pool/engine.ts";
import type { OutcomeOrigin } from "../pool/key.ts";
import type { Outcome } from "../pool/outcome.ts";
import type { PoolRuntime } from "../pool/registry.ts";

/** The store could not be asked, and `--state-store-failure=closed` says not to serve alone. */
export interface StoreUnavailable {
  ok: false;
  storeUnavailable: true;
  retryAfterSeconds: number;
}

export type Confirmed = PickResult | StoreUnavailable;

export interface KeyCoordinator {
  /** Before a pool's engine picks: it follows the store's availability; LeastLoaded learns other replicas' in-flight calls. */
  beforePick(runtime: PoolRuntime): Promise<void> | undefined;
  /** After the engine picked `picked`: makes it count everywhere, or picks again when the store refuses it. */
  confirm(
    runtime: PoolRuntime,
    picked: Dispensed,
    exclude?: ReadonlySet<string>,
  ): Promise<Confirmed> | Confirmed;
  /** A report (a caller's, the proxy's): ends the lease wherever it was opened and records the outcome. */
  report(
    runtime: PoolRuntime,
    ref: ReportRef,
    outcome: Outcome,
    origin?: OutcomeOrigin,
  ): Promise<ReportResult> | ReportResult;
}

/** The memory store: each process's engine is the whole truth. */
export const localCoordinator: KeyCoordinator = {
  beforePick: () => undefined,
  confirm: (_runtime, picked) => picked,
  report: (runtime, ref, outcome, origin) => runtime.engine.report(ref, outcome, origin),
};
