/**
 * Pools from environment variables, the way the simple key-pool managers users come from read
 * them: `GPT_4_KEYS=sk-a,sk-b` is pool "gpt-4" with two keys. Optional companions:
 * `GPT_4_PROVIDER` (default openai), `GPT_4_BASE_URL`, `GPT_4_STRATEGY` (default RoundRobin).
 * Read once, at start.
 */
import { KeyPoolSpec, SPEC_RULES, Strategy } from "../../api/keypool.ts";
import { fieldPath } from "../../api/parse.ts";
import type { KeyEntry } from "../../pool/key.ts";
import { splitKeys } from "../kubernetes/secrets.ts";

/** `NAME_KEYS`: NAME is upper-case letters, digits and underscores (so no two variables name one pool). */
const KEYS_VAR_RE = /^([A-Z0-9][A-Z0-9_]*)_KEYS$/;
const POOL_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const POOL_NAME_MAX = 253;

/** Which variable sets which spec field (to name the variable in a problem). */
const FIELD_VARIABLES: Record<string, string> = {
  "spec.provider": "PROVIDER",
  "spec.baseURL": "BASE_URL",
  "spec.strategy": "STRATEGY",
};

export interface EnvPool {
  name: string;
  /** The variable holding the keys, e.g. GPT_4_KEYS. */
  variable: string;
  spec: KeyPoolSpec;
  entries: KeyEntry[];
  /** Comma/newline parts that were empty. */
  emptyValues: number;
}

export interface EnvProblem {
  name: string;
  message: string;
}

export interface EnvPools {
  pools: EnvPool[];
  problems: EnvProblem[];
}

/** Whether any `NAME_KEYS` variable defines a pool (set, even when empty or invalid). */
export function hasEnvPools(env: Readonly<Record<string, string | undefined>>): boolean {
  return Object.keys(env).some((variable) => KEYS_VAR_RE.test(variable) && env[variable] !== undefined);
}

/** GPT_4 → gpt-4. */
export function poolNameOf(prefix: string): string {
  return prefix.toLowerCase().replaceAll("_", "-");
}

/** "round-robin", "round_robin", "roundrobin" → RoundRobin; anything else is left for the schema to reject. */
function normalizeStrategy(value: string): string {
  const folded = value.replace(/[-_\s]/g, "").toLowerCase();
  return Strategy.options.find((s) => s.toLowerCase() === folded) ?? value;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** Reads every `*_KEYS` variable. Problems name the variable, never a value that could be a key. */
export function readEnvPools(env: Readonly<Record<string, string | undefined>>): EnvPools {
  const pools: EnvPool[] = [];
  const problems: EnvProblem[] = [];
  for (const variable of Object.keys(env).sort()) {
    const match = KEYS_VAR_RE.exec(variable);
    const value = env[variable];
    if (!match?.[1] || value === undefined) continue;
    const prefix = match[1];
    const name = poolNameOf(prefix);
    if (name.length > POOL_NAME_MAX || !POOL_NAME_RE.test(name)) {
      problems.push({
        name,
        message:
          `${variable}: "${name}" is not a valid pool name (lower-case letters, digits and "-", ` +
          `starting and ending with a letter or digit)`,
      });
      continue;
    }
    const provider = nonEmpty(env[`${prefix}_PROVIDER`])?.toLowerCase() ?? "openai";
    const baseURL = nonEmpty(env[`${prefix}_BASE_URL`]);
    const strategy = nonEmpty(env[`${prefix}_STRATEGY`]);
    const parsed = KeyPoolSpec.safeParse({
      provider,
      ...(baseURL !== undefined ? { baseURL } : {}),
      // In turn, as the key-pool managers these variables come from rotate (NAME_STRATEGY changes it).
      strategy: strategy !== undefined ? normalizeStrategy(strategy) : "RoundRobin",
    });
    if (!parsed.success) {
      const messages = parsed.error.issues.map((issue) => {
        const field = fieldPath(["spec", ...issue.path]);
        const suffix = FIELD_VARIABLES[field];
        return `${suffix ? `${prefix}_${suffix}` : field}: ${issue.message}`;
      });
      problems.push({ name, message: messages.join("; ") });
      continue;
    }
    const spec = parsed.data;
    // The rule "a pool needs spec.keys or spec.secretSelector" is about manifests: an env pool's
    // keys come from the variable itself. The other rules (e.g. openai-compatible needs a base
    // URL) apply as they are.
    const broken = SPEC_RULES.filter((rule) => !rule.holds({ ...spec, keys: [variable] }));
    if (broken.length > 0) {
      const messages = broken.map((rule) => {
        const suffix = rule.fieldPath ? FIELD_VARIABLES[`spec${rule.fieldPath}`] : undefined;
        return `${suffix ? `${prefix}_${suffix}` : variable}: ${rule.message}`;
      });
      problems.push({ name, message: messages.join("; ") });
      continue;
    }
    const { keys, empty } = splitKeys(value);
    pools.push({
      name,
      variable,
      spec,
      entries: keys.map((key, i) => ({ key, source: `env/${variable}[${i}]` })),
      emptyValues: empty,
    });
  }
  return { pools, problems };
}
