/**
 * Builds a KeyPool's status from the engine and the key sources, and reads engine state back
 * from a status (so a restarted operator resumes cooldowns and Invalid marks).
 */
import { KEY_STATES } from "../api/keypool.ts";
import type { Condition, KeyPoolStatus, KeyStatus } from "../api/status.ts";
import type { KeyView } from "../pool/engine.ts";
import { USABLE_STATES } from "../pool/key.ts";
import { type EngineSnapshot, KeySnapshot, SNAPSHOT_VERSION } from "../pool/snapshot.ts";
import type { PoolProblem } from "../pool/registry.ts";
import { ConditionType, Reason, setCondition } from "./conditions.ts";

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const fromIso = (text: string | undefined) => (text ? Date.parse(text) : undefined);

export function toKeyStatus(view: KeyView): KeyStatus {
  return {
    id: view.id,
    masked: view.masked,
    source: view.source,
    ...(view.quotaGroup ? { quotaGroup: view.quotaGroup } : {}),
    state: view.state,
    ...(view.sinceMs ? { since: new Date(view.sinceMs).toISOString() } : {}),
    // Rounded up to the second the status can hold, so a restored cooldown never ends early.
    ...(view.untilMs ? { until: iso(Math.ceil(view.untilMs / 1000) * 1000) } : {}),
    ...(view.stateBeforeDrain ? { stateBeforeDrain: view.stateBeforeDrain } : {}),
    ...(view.stateBeforeDrainUntilMs
      ? { stateBeforeDrainUntil: iso(Math.ceil(view.stateBeforeDrainUntilMs / 1000) * 1000) }
      : {}),
    ...(view.disabledBySpec ? { disabledBySpec: true } : {}),
    healthScore: view.healthScore,
    requests: view.requests,
    errors: view.errors,
    ...(view.consecutiveErrors ? { consecutiveErrors: view.consecutiveErrors } : {}),
    ...(view.lastUsedMs ? { lastUsed: iso(view.lastUsedMs) } : {}),
    ...(view.lastError
      ? {
          lastError: {
            ...(view.lastError.code !== undefined ? { code: view.lastError.code } : {}),
            reason: view.lastError.reason,
            at: iso(view.lastError.atMs),
          },
        }
      : {}),
  };
}

/** Engine state saved in a status: what restore() needs. Entries that do not parse are skipped. */
export function snapshotFromStatus(status: KeyPoolStatus | undefined, nowMs: number): EngineSnapshot {
  const keys = (status?.keyStatuses ?? []).flatMap((k) => {
    const parsed = KeySnapshot.safeParse({
      id: k.id,
      state: k.state,
      sinceMs: fromIso(k.since),
      untilMs: fromIso(k.until),
      stateBeforeDrain: k.stateBeforeDrain,
      stateBeforeDrainUntilMs: fromIso(k.stateBeforeDrainUntil),
      disabledBySpec: k.disabledBySpec === true ? true : undefined,
      healthScore: k.healthScore,
      requests: k.requests,
      errors: k.errors,
      consecutiveErrors: k.consecutiveErrors ?? 0,
      lastUsedMs: fromIso(k.lastUsed),
      lastErrorAtMs: fromIso(k.lastError?.at),
      lastError: k.lastError
        ? { code: k.lastError.code, reason: k.lastError.reason, atMs: fromIso(k.lastError.at) }
        : undefined,
    });
    return parsed.success ? [parsed.data] : [];
  });
  return { version: SNAPSHOT_VERSION, takenAtMs: nowMs, keys };
}

export type Evaluation =
  /** The first reconcile of a generation: nothing is known yet (kstatus needs a Ready condition at once). */
  | { kind: "reconciling" }
  | { kind: "invalidSpec"; message: string }
  | { kind: "evaluated"; views: KeyView[]; problems: PoolProblem[]; emptyValues: number };

/** Every state, zeros included: a merge patch must overwrite a count that dropped to zero. */
function countByState(views: KeyView[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(KEY_STATES.map((s) => [s, 0]));
  for (const v of views) counts[v.state] = (counts[v.state] ?? 0) + 1;
  return counts;
}

function describeCounts(byState: Record<string, number>): string {
  return Object.entries(byState)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(", ");
}

/** The status the operator wants the KeyPool to have now. */
export function desiredStatus(
  previous: KeyPoolStatus | undefined,
  evaluation: Evaluation,
  generation: number | undefined,
  now: Date,
): KeyPoolStatus {
  let conditions: Condition[] = previous?.conditions ?? [];
  const set = (type: string, status: "True" | "False" | "Unknown", reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status, reason, message }, generation, now);
  };

  if (evaluation.kind === "reconciling") {
    set(ConditionType.Ready, "Unknown", Reason.Reconciling, "Resolving keys from the pool's Secrets");
    set(ConditionType.Reconciling, "True", Reason.Reconciling, "Resolving keys from the pool's Secrets");
    return { ...previous, observedGeneration: generation, conditions };
  }

  if (evaluation.kind === "invalidSpec") {
    const message = `Invalid spec: ${evaluation.message}`;
    set(ConditionType.Ready, "False", Reason.InvalidSpec, message);
    set(ConditionType.Stalled, "True", Reason.InvalidSpec, message);
    set(ConditionType.Reconciling, "False", Reason.Reconciled, "Waiting for a valid spec");
    return { ...previous, observedGeneration: generation, conditions };
  }

  const { views, problems, emptyValues } = evaluation;
  // Usable by state: a key momentarily at its client-side limit still counts, so the status does
  // not churn with every request.
  const usable = views.filter((v) => USABLE_STATES.has(v.state)).length;
  const byState = countByState(views);
  const total = views.length;
  const live = views.filter((v) => v.state !== "Draining").length;
  const emptyNote = emptyValues ? ` (${emptyValues} empty value${emptyValues === 1 ? "" : "s"} ignored)` : "";
  const problemText = problems.map((p) => p.message).join("; ");

  // Ready says whether keys are served; problems that leave some serving are Degraded's to tell.
  if (usable > 0) {
    set(ConditionType.Ready, "True", Reason.KeysAvailable, `${usable} of ${live} keys usable${emptyNote}`);
  } else if (problems.length) {
    set(ConditionType.Ready, "False", (problems[0] as PoolProblem).reason, problemText);
  } else if (live === 0) {
    set(ConditionType.Ready, "False", Reason.NoKeys, `The pool's Secrets hold no keys${emptyNote}`);
  } else {
    set(ConditionType.Ready, "False", Reason.NoUsableKeys, `No usable key: ${describeCounts(byState)}`);
  }

  // Stalled (kstatus: Failed) only when nothing is served and only the user can change that: a
  // pool that serves with a partial problem is Ready and Degraded instead.
  if (usable === 0 && problems.length)
    set(ConditionType.Stalled, "True", (problems[0] as PoolProblem).reason, problemText);
  else if (usable === 0 && live === 0)
    set(ConditionType.Stalled, "True", Reason.NoKeys, `The pool's Secrets hold no keys${emptyNote}`);
  else set(ConditionType.Stalled, "False", Reason.NoProblem, "Nothing needs a change");

  const unusable = live - usable;
  const unusableText = `${unusable} of ${live} keys unusable: ${describeCounts(byState)}`;
  if (problems.length)
    set(
      ConditionType.Degraded,
      "True",
      (problems[0] as PoolProblem).reason,
      unusable > 0 ? `${problemText}; ${unusableText}` : problemText,
    );
  else if (unusable > 0) set(ConditionType.Degraded, "True", Reason.KeysUnusable, unusableText);
  else
    set(ConditionType.Degraded, "False", Reason.AllKeysUsable, live ? `All ${live} keys usable` : "No keys");

  set(ConditionType.Reconciling, "False", Reason.Reconciled, "The current generation has been evaluated");

  return {
    observedGeneration: generation,
    conditions,
    keys: { total, usable, byState },
    keyStatuses: views.map(toKeyStatus),
    ...(previous?.lastProbeRequest !== undefined ? { lastProbeRequest: previous.lastProbeRequest } : {}),
  };
}
