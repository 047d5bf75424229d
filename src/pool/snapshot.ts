/**
 * The engine's saved state: plain JSON, no key material (keys are named by id), so it can live
 * in the KeyPool status or a state file and a restart resumes cooldowns and Invalid marks.
 */
import { z } from "zod";
import { KeyState } from "../api/keypool.ts";

export const SNAPSHOT_VERSION = 1;

/** What a spend counter keeps (spend.ts SpendSnapshot): the windows by id and their USD. */
export const SpendSnapshot = z.object({
  day: z.string(),
  dayUSD: z.number().min(0),
  month: z.string(),
  monthUSD: z.number().min(0),
  models: z.record(z.string(), z.tuple([z.number().min(0), z.number().min(0)])).optional(),
});

export const KeySnapshot = z.object({
  id: z.string().regex(/^[0-9a-f]{12}$/),
  state: KeyState,
  untilMs: z.number().optional(),
  /** When the key entered `state` (epoch ms): which of two views of a key is newer. */
  sinceMs: z.number().optional(),
  /** Draining: the state to return to when the key is back in its source, and that state's end. */
  stateBeforeDrain: KeyState.optional(),
  stateBeforeDrainUntilMs: z.number().optional(),
  /** spec.disabledKeys listed the key (KeyRecord.disabledBySpec). */
  disabledBySpec: z.literal(true).optional(),
  healthScore: z.number().min(0).max(100),
  /** Average time the key's calls took (exponentially weighted), when any reported one. */
  latencyMs: z.number().min(0).optional(),
  requests: z.number().int().min(0),
  errors: z.number().int().min(0),
  consecutiveErrors: z.number().int().min(0),
  lastUsedMs: z.number().optional(),
  lastErrorAtMs: z.number().optional(),
  lastError: z.object({ code: z.number().int().optional(), reason: z.string(), atMs: z.number() }).optional(),
  /** The reason of the key's last transition (budget_exhausted, error_rate_high, ...). */
  reason: z.string().optional(),
  /** What the key cost in the budget day and month it was saved in. */
  spend: SpendSnapshot.optional(),
});
export type KeySnapshot = z.infer<typeof KeySnapshot>;

export const EngineSnapshot = z.object({
  version: z.literal(SNAPSHOT_VERSION),
  takenAtMs: z.number(),
  keys: z.array(KeySnapshot),
  /** What the whole pool cost (it outlives keys that left). */
  spend: SpendSnapshot.optional(),
});
export type EngineSnapshot = z.infer<typeof EngineSnapshot>;
