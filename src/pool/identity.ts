/**
 * How a key is named without being shown: a fingerprint id and a masked form.
 */
import { createHash } from "node:crypto";

/** First 12 hex characters of sha256(key). Stable across restarts and replicas. */
export function keyId(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex").slice(0, 12);
}

/**
 * At most a short prefix and the last 4 characters: "sk-...Xy7Q". The prefix is kept only when it
 * is a provider's well-known, non-secret marker (sk-, sk-ant-, AIza), and only for keys long
 * enough that prefix + last 4 reveal a small fraction of them.
 */
export function maskKey(key: string): string {
  if (key.length < 12) return "****";
  const prefix = /^(sk-ant-|sk-proj-|sk-|AIza)/.exec(key)?.[1] ?? "";
  return `${prefix}...${key.slice(-4)}`;
}
