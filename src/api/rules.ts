/**
 * Validation rules stated once and enforced twice: as CEL in the generated CRD
 * (`x-kubernetes-validations`, checked by the API server at `kubectl apply`) and as a zod
 * refinement (checked by the runtime parser, which also reads pools that never met an API
 * server: standalone mode). The same message reaches the user either way.
 */
import type { z } from "zod";

/** The `reason` values the API server accepts on a validation rule. */
export type RuleReason =
  "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueDuplicate";

export interface Rule<T> {
  /** CEL over `self`, the value the rule is attached to. */
  rule: string;
  message: string;
  /** Field the failure is reported on, relative to `self`, e.g. ".baseURL". */
  fieldPath?: `.${string}`;
  reason?: RuleReason;
  /** The same rule in TypeScript, over the parsed value. */
  holds: (value: T) => boolean;
}

/** What the CRD carries for a rule (everything but `holds`). */
export type CelRule = Omit<Rule<unknown>, "holds">;

export function celRules<T>(rules: ReadonlyArray<Rule<T>>): CelRule[] {
  return rules.map(({ rule, message, fieldPath, reason }) => ({
    rule,
    message,
    ...(fieldPath ? { fieldPath } : {}),
    ...(reason ? { reason } : {}),
  }));
}

/** A zod refinement checking `rules`, each failure reported on the rule's fieldPath. */
export function refineWith<T>(rules: ReadonlyArray<Rule<T>>) {
  return (value: T, ctx: z.RefinementCtx<T>) => {
    for (const { holds, message, fieldPath } of rules) {
      if (!holds(value))
        ctx.addIssue({ code: "custom", message, path: fieldPath ? fieldPath.slice(1).split(".") : [] });
    }
  };
}

/** Attaches `rules` to `schema` as CEL for the CRD and as a refinement for the parser. */
export function withRules<S extends z.ZodType>(schema: S, rules: ReadonlyArray<Rule<z.output<S>>>): S {
  return schema.meta({ "x-kubernetes-validations": celRules(rules) }).superRefine(refineWith(rules));
}
