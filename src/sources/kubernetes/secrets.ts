/**
 * src/sources/kubernetes — turning a KeyPool's Secret references into key entries.
 *
 * A Secret entry holds one key, or several separated by commas or newlines (for users coming
 * from `*_KEYS=a,b,c` variables). Empty and whitespace-only values are skipped and counted. A
 * value with whitespace inside a key is refused (a key never holds one: it is a pasted sentence
 * or two keys on one line), and a key two entries hold is used once; both are named as problems.
 * Only Secrets labelled keypool.dev/secret are watched (the operator never caches every Secret
 * in the cluster); a reference to an unlabelled one is reported with the fix.
 * The operator's cache keeps only the entries some pool reads (src/controller/trim.ts) and names
 * the others (`droppedEntries`): an entry a pool reads that the cached copy dropped (the pool
 * started reading it after the Secret was cached) is read from a fresh copy (`refetch`).
 * May import: src/api, src/pool types, node built-ins.
 */
import type { V1Secret } from "@kubernetes/client-node";
import type { KeyPoolSpec } from "../../api/keypool.ts";
import type { KeyEntry } from "../../pool/key.ts";
import type { PoolProblem, PoolWebhook } from "../../pool/registry.ts";
import { matchesSelector } from "./selector.ts";

/** Label a Secret must carry to be seen by the operator (any value). */
export const SECRET_LABEL = "keypool.dev/secret";

/** A Secret as a cache holds it: a trimming cache keeps `data` only for the entries pools read. */
export interface CachedSecret extends V1Secret {
  /** Entries the Secret has whose values the cache did not keep; `refetch` reads them. */
  droppedEntries?: string[];
}

export interface SecretCache {
  get(namespace: string, name: string): CachedSecret | undefined;
  list(namespace: string): CachedSecret[];
  /**
   * The whole Secret, read again from the API server because its cached copy dropped an entry a
   * pool reads now (the cache keeps that entry from then on); undefined when it is gone or no
   * longer labelled. Only a cache that drops entries needs it.
   */
  refetch?(namespace: string, name: string): Promise<V1Secret | undefined>;
}

/** What a Secret outside the cache turned out to be (a direct GET tells). */
export type UncachedSecret = "missing" | "unlabelled";

export type SourceProblemReason =
  | "SecretNotFound"
  | "SecretNotLabelled"
  | "SecretEntryMissing"
  | "KeyHasWhitespace"
  | "DuplicateKeys"
  | "FallbackCycle"
  | "FallbackPoolNotFound"
  | "WebhookSecretMissing"
  | "PricingNotFound"
  | "PricingEntryMissing"
  | "PricingInvalid";

export interface SourceProblem extends PoolProblem {
  reason: SourceProblemReason;
}

export interface ResolvedKeys {
  entries: KeyEntry[];
  problems: SourceProblem[];
  /** Entries (or comma/newline parts) that were empty or whitespace only. */
  emptyValues: number;
  /** Names of the Secrets the pool reads (for mapping Secret events back to pools). */
  secretNames: Set<string>;
  /** spec.notifications.webhooks whose URL (and signing key, when named) were found. */
  webhooks: PoolWebhook[];
}

/** Splits an entry's value into keys: commas and newlines separate, whitespace is trimmed. */
export function splitKeys(value: string): { keys: string[]; empty: number } {
  // Trailing newlines (a file turned into a Secret) are not empty values.
  const body = value.replace(/(\r?\n)+$/, "");
  if (body.trim() === "") return { keys: [], empty: 1 };
  const parts = body.split(/\r?\n|,/).map((p) => p.trim());
  const keys = parts.filter((p) => p.length > 0);
  return { keys, empty: parts.length - keys.length };
}

function decode(secret: CachedSecret, entry: string): string | undefined {
  const data = secret.data?.[entry];
  if (data !== undefined) return Buffer.from(data, "base64").toString("utf8");
  return secret.stringData?.[entry];
}

/** Every entry the Secret has, kept by the cache or not. */
function entriesOf(secret: CachedSecret): string[] {
  return [
    ...new Set([
      ...Object.keys(secret.data ?? {}),
      ...Object.keys(secret.stringData ?? {}),
      ...(secret.droppedEntries ?? []),
    ]),
  ].sort();
}

/**
 * One resolve's reader of whole Secrets: the cached copy when it holds every entry asked for,
 * else one refetch per Secret (undefined: gone or unlabelled since it was cached).
 */
function secretReader(namespace: string, cache: SecretCache) {
  const fetched = new Map<string, Promise<V1Secret | undefined>>();
  return async (name: string, cached: CachedSecret, entries: string[]): Promise<CachedSecret | undefined> => {
    const dropped = cached.droppedEntries;
    if (!cache.refetch || !dropped?.length || !entries.some((e) => dropped.includes(e))) return cached;
    let whole = fetched.get(name);
    if (!whole) fetched.set(name, (whole = cache.refetch(namespace, name)));
    return whole;
  };
}

export async function resolvePoolKeys(
  namespace: string,
  spec: KeyPoolSpec,
  cache: SecretCache,
  lookupUncached: (namespace: string, name: string) => Promise<UncachedSecret>,
): Promise<ResolvedKeys> {
  const result: ResolvedKeys = {
    entries: [],
    problems: [],
    emptyValues: 0,
    secretNames: new Set(),
    webhooks: [],
  };

  /** Where each key was first seen, to name duplicates by their sources (never by value). */
  const firstSource = new Map<string, string>();
  const complete = secretReader(namespace, cache);
  const addEntry = (secret: CachedSecret, name: string, entry: string, extra: Partial<KeyEntry>) => {
    const value = decode(secret, entry);
    if (value === undefined) return false;
    const { keys, empty } = splitKeys(value);
    result.emptyValues += empty;
    keys.forEach((key, i) => {
      const source = keys.length > 1 ? `secret/${name}#${entry}[${i}]` : `secret/${name}#${entry}`;
      if (/\s/.test(key)) {
        result.problems.push({
          reason: "KeyHasWhitespace",
          secret: name,
          entry,
          message: `${source} has whitespace inside a key, which no provider key holds: it is not used (separate keys with commas or newlines)`,
        });
        return;
      }
      const first = firstSource.get(key);
      if (first !== undefined) {
        result.problems.push({
          reason: "DuplicateKeys",
          secret: name,
          entry,
          message: `${source} holds the same key as ${first}: it is used once`,
        });
        return;
      }
      firstSource.set(key, source);
      result.entries.push({ key, source, ...extra });
    });
    return true;
  };

  for (const [index, ref] of (spec.keys ?? []).entries()) {
    const name = ref.secretRef.name;
    result.secretNames.add(name);
    const cached = cache.get(namespace, name);
    const secret =
      cached && (await complete(name, cached, ref.secretRef.key ? [ref.secretRef.key] : entriesOf(cached)));
    if (!secret) {
      const why = await lookupUncached(namespace, name);
      result.problems.push(
        why === "missing"
          ? {
              reason: "SecretNotFound",
              secret: name,
              message: `Secret ${namespace}/${name} (spec.keys[${index}]) not found`,
            }
          : {
              reason: "SecretNotLabelled",
              secret: name,
              message:
                `Secret ${namespace}/${name} (spec.keys[${index}]) is not labelled ${SECRET_LABEL}, so the operator ` +
                `does not watch it. Add the label: kubectl label secret -n ${namespace} ${name} ${SECRET_LABEL}=true`,
            },
      );
      continue;
    }
    const extra: Partial<KeyEntry> = {
      ...(ref.weight !== undefined ? { weight: ref.weight } : {}),
      ...(ref.limits !== undefined ? { limits: ref.limits } : {}),
      ...(ref.quotaGroup !== undefined ? { quotaGroup: ref.quotaGroup } : {}),
      ...(ref.costMultiplier !== undefined ? { costMultiplier: ref.costMultiplier } : {}),
      ...(ref.budget !== undefined ? { budget: ref.budget } : {}),
    };
    const entries = ref.secretRef.key ? [ref.secretRef.key] : entriesOf(secret);
    for (const entry of entries) {
      if (!addEntry(secret, name, entry, extra)) {
        result.problems.push({
          reason: "SecretEntryMissing",
          secret: name,
          entry,
          message: `Secret ${namespace}/${name} has no entry "${entry}" (spec.keys[${index}].secretRef.key)`,
        });
      }
    }
  }

  if (spec.secretSelector) {
    for (const cached of cache.list(namespace)) {
      const name = cached.metadata?.name;
      if (!name || !matchesSelector(cached.metadata?.labels, spec.secretSelector)) continue;
      result.secretNames.add(name);
      const secret = await complete(name, cached, entriesOf(cached));
      if (!secret) continue;
      for (const entry of entriesOf(secret)) addEntry(secret, name, entry, {});
    }
  }
  await resolveWebhooks(namespace, spec, cache, complete, lookupUncached, result);
  return result;
}

/**
 * spec.notifications.webhooks: each URL and signing key from its Secret entry (labelled like the
 * key Secrets, so the operator sees it change). A webhook whose Secret or entry is missing is left
 * out with a problem (Degraded, an Event); the pool serves on.
 */
async function resolveWebhooks(
  namespace: string,
  spec: KeyPoolSpec,
  cache: SecretCache,
  complete: ReturnType<typeof secretReader>,
  lookupUncached: (namespace: string, name: string) => Promise<UncachedSecret>,
  result: ResolvedKeys,
): Promise<void> {
  for (const [index, hook] of (spec.notifications?.webhooks ?? []).entries()) {
    const read = async (ref: { name: string; key: string }, field: string): Promise<string | undefined> => {
      result.secretNames.add(ref.name);
      const cached = cache.get(namespace, ref.name);
      const secret = cached && (await complete(ref.name, cached, [ref.key]));
      const value = secret ? decode(secret, ref.key)?.trim() : undefined;
      if (value) return value;
      const why = secret
        ? "has no entry"
        : (await lookupUncached(namespace, ref.name)) === "unlabelled"
          ? "is not labelled " + SECRET_LABEL + "=true"
          : "does not exist";
      result.problems.push({
        reason: "WebhookSecretMissing",
        secret: ref.name,
        entry: ref.key,
        message: `spec.notifications.webhooks[${index}].${field}: Secret ${namespace}/${ref.name} ${why === "has no entry" ? `has no entry "${ref.key}"` : why}; webhook ${hook.name} gets no notifications`,
      });
      return undefined;
    };
    const url = await read(hook.urlSecretRef, "urlSecretRef");
    const signingKey = hook.signingKeySecretRef
      ? await read(hook.signingKeySecretRef, "signingKeySecretRef")
      : undefined;
    if (!url || (hook.signingKeySecretRef && !signingKey)) continue;
    result.webhooks.push({
      name: hook.name,
      url,
      ...(signingKey ? { signingKey } : {}),
      events: hook.events ?? [],
    });
  }
}
