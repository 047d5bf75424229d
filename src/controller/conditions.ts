/**
 * Status conditions in the metav1.Condition shape, kstatus-compatible: Ready (normal-true) and
 * Degraded, plus the abnormal-true Reconciling and Stalled that kstatus, Argo CD and Flux read.
 * One helper sets a condition and keeps lastTransitionTime unless the status flips.
 */
import type { Condition } from "../api/status.ts";

export const ConditionType = {
  /** True when at least one key is usable. */
  Ready: "Ready",
  /** True when some keys are not usable, or a source problem leaves the pool serving with less. */
  Degraded: "Degraded",
  /** True while the operator has not yet finished evaluating the current generation. */
  Reconciling: "Reconciling",
  /**
   * True when nothing can be served and only a user's change helps: an invalid spec, or no usable
   * key and a source problem (missing or unlabelled Secret, ...) or no keys at all. kstatus (Flux,
   * Argo CD's kstatus users) reads it as Failed, so a pool that still serves is never Stalled.
   */
  Stalled: "Stalled",
  /** True while the pool's budget (or a key's) has reached spec.budget.warnAtPercent or more. */
  BudgetWarning: "BudgetWarning",
  /** True while the forecast says a limit or budget of the pool runs out before it resets. */
  ExhaustionPredicted: "ExhaustionPredicted",
} as const;

export const Reason = {
  /** Ready=True: at least one key can be handed out. */
  KeysAvailable: "KeysAvailable",
  /** Ready=False: keys exist but none is usable right now (all cooling down, invalid, ...). */
  NoUsableKeys: "NoUsableKeys",
  /** Ready=False, Stalled=True: the sources hold no keys at all. */
  NoKeys: "NoKeys",
  /** Ready=False, Stalled=True: the spec passed the CRD schema but failed runtime checks. */
  InvalidSpec: "InvalidSpec",
  /**
   * A referenced Secret does not exist: Degraded=True while other keys serve; Ready=False and
   * Stalled=True when nothing does. The same holds for every source problem below.
   */
  SecretNotFound: "SecretNotFound",
  /** A referenced Secret lacks the keypool.dev/secret label, so the operator does not see it. */
  SecretNotLabelled: "SecretNotLabelled",
  /** A referenced Secret entry does not exist. */
  SecretEntryMissing: "SecretEntryMissing",
  /** An entry has whitespace inside a key: that value is not used. */
  KeyHasWhitespace: "KeyHasWhitespace",
  /** Two entries hold the same key: it is used once. */
  DuplicateKeys: "DuplicateKeys",
  /** spec.fallbackPoolRef leads back to a pool already in the chain. */
  FallbackCycle: "FallbackCycle",
  /** spec.fallbackPoolRef names a KeyPool that does not exist: no fallback when the pool runs dry. */
  FallbackPoolNotFound: "FallbackPoolNotFound",
  /** Ready=Unknown, Reconciling=True: the first evaluation of this generation is under way. */
  Reconciling: "Reconciling",
  /** Reconciling=False: the current generation has been evaluated. */
  Reconciled: "Reconciled",
  /** Stalled=False. */
  NoProblem: "NoProblem",
  /** Degraded=True: some keys are unusable (cooling down, invalid, disabled); no source problem. */
  KeysUnusable: "KeysUnusable",
  /** Degraded=False. */
  AllKeysUsable: "AllKeysUsable",
  /** BudgetWarning=True: a budget is at its warning share; BudgetExhausted: at 100%. */
  BudgetNearLimit: "BudgetNearLimit",
  BudgetExhausted: "BudgetExhausted",
  /** BudgetWarning=False. */
  WithinBudget: "WithinBudget",
  /** ExhaustionPredicted=True / False. */
  RunsOutBeforeReset: "RunsOutBeforeReset",
  NoExhaustionPredicted: "NoExhaustionPredicted",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export interface ConditionInput {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/**
 * Returns `conditions` with `input` set: lastTransitionTime changes only when the status flips;
 * reason, message and observedGeneration are updated in place. The order of types is kept.
 */
export function setCondition(
  conditions: readonly Condition[],
  input: ConditionInput,
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const existing = conditions.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    lastTransitionTime:
      existing && existing.status === input.status
        ? existing.lastTransitionTime
        : now.toISOString().replace(/\.\d{3}Z$/, "Z"),
    reason: input.reason,
    message: input.message,
  };
  return existing ? conditions.map((c) => (c.type === input.type ? next : c)) : [...conditions, next];
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Reasons of the Events recorded on KeyPools (beside the conditions' reasons, which problems reuse). */
export const EventReason = {
  /** Warning: a key got a rate-limit answer (or reset headers said nothing is left). */
  KeyRateLimited: "KeyRateLimited",
  /** Warning: a key's account is out of credit or quota. */
  KeyQuotaExhausted: "KeyQuotaExhausted",
  /** Warning: the provider refused a key (revoked, wrong). */
  KeyInvalid: "KeyInvalid",
  /** Warning: a key failed failureThreshold times in a row (or a caller said degraded). */
  KeyDegraded: "KeyDegraded",
  /** Normal: a key is usable again. */
  KeyRecovered: "KeyRecovered",
  /** Warning: the spec passed the CRD but not the runtime checks (once per generation). */
  InvalidSpec: "InvalidSpec",
  /** Normal: every key was probed for keypool.dev/probe-requested-at. */
  ProbeRequested: "ProbeRequested",
  /** Warning: the API server refused a status write with 403 or 422 (once per failure episode). */
  StatusWriteFailed: "StatusWriteFailed",
  /** Warning: a pool or key budget reached spec.budget.warnAtPercent (once per window). */
  BudgetWarning: "BudgetWarning",
  /** Warning: a pool or key budget is spent: its keys are QuotaExhausted until the window resets. */
  BudgetExhausted: "BudgetExhausted",
  /** Warning: ExhaustionPredicted turned True (once per flip). */
  ExhaustionPredicted: "ExhaustionPredicted",
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];
