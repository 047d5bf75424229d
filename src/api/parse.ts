/**
 * Parsing KeyPool objects at run time. The CRD schema (generated from the same zod schemas)
 * already stops most bad input at `kubectl apply`; what it cannot express is checked here, and
 * every failure becomes a message naming the field, fit for a status condition.
 */
import { z } from "zod";
import { API_VERSION, KeyPoolSpec, KIND, SPEC_RULES } from "./keypool.ts";
import { refineWith } from "./rules.ts";
import { KeyPoolStatus } from "./status.ts";

/**
 * The spec with every check: the CRD's rules across fields (which the API server runs as CEL),
 * and those that have no CRD form.
 */
export const KeyPoolSpecChecked = KeyPoolSpec.superRefine(refineWith(SPEC_RULES)).superRefine((spec, ctx) => {
  // Each Secret entry may be listed once: by itself, or through a source taking the whole Secret.
  const whole = new Map<string, number>(); // Secret name → the source taking all its entries
  const single = new Map<string, number>(); // "name#key" → the source taking that entry
  const someEntry = new Map<string, number>(); // Secret name → the first source taking one entry
  spec.keys?.forEach(({ secretRef: { name, key } }, i) => {
    const first = whole.get(name) ?? (key === undefined ? someEntry.get(name) : single.get(`${name}#${key}`));
    if (first !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["keys", i, "secretRef"],
        message: `duplicates spec.keys[${first}]: each Secret entry may be listed once`,
      });
    } else if (key === undefined) {
      whole.set(name, i);
    } else {
      single.set(`${name}#${key}`, i);
      if (!someEntry.has(name)) someEntry.set(name, i);
    }
  });
  const groups = new Set<string>();
  spec.quotaGroups?.forEach((group, i) => {
    if (groups.has(group.name)) {
      ctx.addIssue({
        code: "custom",
        path: ["quotaGroups", i, "name"],
        message: `quota group "${group.name}" is declared twice`,
      });
    }
    groups.add(group.name);
  });
  if (!isTimeZone(spec.budget.timeZone)) {
    ctx.addIssue({
      code: "custom",
      path: ["budget", "timeZone"],
      message: `"${spec.budget.timeZone}" is not an IANA time zone (UTC, Europe/Berlin, America/New_York)`,
    });
  }
  // The CRD keeps webhooks as a map by name: the API server refuses a duplicate too.
  const hooks = new Set<string>();
  spec.notifications?.webhooks?.forEach((hook, i) => {
    if (hooks.has(hook.name))
      ctx.addIssue({
        code: "custom",
        path: ["notifications", "webhooks", i, "name"],
        message: `webhook "${hook.name}" is named twice`,
      });
    hooks.add(hook.name);
  });
  const models = new Set<string>();
  spec.pricing?.forEach((price, i) => {
    if (models.has(price.model))
      ctx.addIssue({
        code: "custom",
        path: ["pricing", i, "model"],
        message: `model "${price.model}" is priced twice`,
      });
    models.add(price.model);
  });
});

/** Whether Intl (Node's ICU data) knows the time zone. */
function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return true;
  } catch {
    return false;
  }
}

export const KeyPoolMetadata = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().optional(),
  generation: z.number().int().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const KeyPoolResource = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: KeyPoolMetadata,
    spec: KeyPoolSpecChecked,
    status: KeyPoolStatus.optional(),
  })
  .superRefine((pool, ctx) => {
    if (pool.spec.fallbackPoolRef?.name === pool.metadata.name) {
      ctx.addIssue({
        code: "custom",
        path: ["spec", "fallbackPoolRef", "name"],
        message: "a pool cannot fall back to itself",
      });
    }
  });
export type KeyPool = z.infer<typeof KeyPoolResource>;

export interface FieldProblem {
  /** Dotted path with indexes, e.g. "spec.keys[0].weight". */
  field: string;
  message: string;
}

export type ParseResult<T> =
  { ok: true; value: T } | { ok: false; problems: FieldProblem[]; message: string };

export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || "(root)";
}

function toResult<T>(parsed: z.ZodSafeParseResult<T>, prefix: PropertyKey[]): ParseResult<T> {
  if (parsed.success) return { ok: true, value: parsed.data };
  const problems = parsed.error.issues.map((issue) => ({
    field: fieldPath([...prefix, ...issue.path]),
    message: issue.message,
  }));
  return { ok: false, problems, message: problems.map((p) => `${p.field}: ${p.message}`).join("; ") };
}

/** Parses a whole KeyPool object (apiVersion, kind, metadata, spec, status). */
export function parseKeyPool(object: unknown): ParseResult<KeyPool> {
  return toResult(KeyPoolResource.safeParse(object), []);
}

/** Parses only a spec; paths in messages start with "spec.". */
export function parseKeyPoolSpec(spec: unknown): ParseResult<KeyPoolSpec> {
  return toResult(KeyPoolSpecChecked.safeParse(spec), ["spec"]);
}
