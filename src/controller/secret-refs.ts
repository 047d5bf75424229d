/**
 * Which Secret entries the KeyPools read, per namespace: what the Secret cache's transform keeps
 * (trim.ts). A pool reads
 * - spec.keys[].secretRef {name, key}: that entry; without key, every entry of the Secret;
 * - spec.secretSelector: every entry of every Secret whose labels match;
 * - spec.notifications.webhooks[]: urlSecretRef and signingKeySecretRef, one entry each.
 * The spec is read as the API server stored it, before parsing: a spec the reconciler refuses
 * may keep more than it needs, never less. The operator updates this index in the KeyPool
 * watcher's onEvent, in the same tick the pool cache changes, so a reconcile never sees a spec
 * the index does not know. No I/O.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { type LabelSelector, matchesSelector } from "../sources/kubernetes/selector.ts";

/** What one pool reads. */
interface PoolReads {
  /** Secrets read whole. */
  whole: Set<string>;
  /** Secret name → entries read one by one. */
  entries: Map<string, Set<string>>;
  selector: LabelSelector | undefined;
  /** A stable text of the above, to tell a change. */
  signature: string;
}

/** What the pools of one namespace read, counted, so a pool leaving takes only its own share. */
interface NamespaceReads {
  whole: Map<string, number>;
  /** Secret name → entry → pools reading it. */
  entries: Map<string, Map<string, number>>;
  /** Pool name → its secretSelector. */
  selectors: Map<string, LabelSelector>;
}

/** What the Secret cache may now drop: named Secrets, or (a selector went) any in the namespace. */
export interface ReadsShrank {
  namespace: string;
  secrets: string[];
  anySecret: boolean;
}

const EVERYTHING = () => true;
const NOTHING = () => false;

export class SecretReferences {
  readonly #pools = new Map<string, PoolReads>();
  readonly #namespaces = new Map<string, NamespaceReads>();

  /**
   * Takes a KeyPool's current spec (added or changed); answers what may be dropped now, when it
   * read something before.
   */
  set(pool: KubernetesObject): ReadsShrank | undefined {
    const namespace = pool.metadata?.namespace;
    const name = pool.metadata?.name;
    if (!namespace || !name) return undefined;
    const next = readsOf((pool as { spec?: unknown }).spec);
    const previous = this.#pools.get(`${namespace}/${name}`);
    if (previous?.signature === next.signature) return undefined;
    this.#replace(namespace, name, previous, next);
    return previous && shrank(namespace, previous);
  }

  /** Forgets a deleted KeyPool; answers what may be dropped now. */
  delete(pool: KubernetesObject): ReadsShrank | undefined {
    const namespace = pool.metadata?.namespace;
    const name = pool.metadata?.name;
    if (!namespace || !name) return undefined;
    const previous = this.#pools.get(`${namespace}/${name}`);
    if (!previous) return undefined;
    this.#replace(namespace, name, previous, undefined);
    return shrank(namespace, previous);
  }

  /** Which entries of a Secret some pool reads (asked with the Secret's labels, for selectors). */
  wanted(
    namespace: string,
    name: string,
    labels: Record<string, string> | undefined,
  ): (entry: string) => boolean {
    const reads = this.#namespaces.get(namespace);
    if (!reads) return NOTHING;
    if (reads.whole.has(name)) return EVERYTHING;
    for (const selector of reads.selectors.values()) if (matchesSelector(labels, selector)) return EVERYTHING;
    const entries = reads.entries.get(name);
    return entries ? (entry) => entries.has(entry) : NOTHING;
  }

  /** Swaps one pool's share of its namespace's counts. */
  #replace(
    namespace: string,
    pool: string,
    previous: PoolReads | undefined,
    next: PoolReads | undefined,
  ): void {
    let ns = this.#namespaces.get(namespace);
    if (!ns) {
      ns = { whole: new Map(), entries: new Map(), selectors: new Map() };
      this.#namespaces.set(namespace, ns);
    }
    if (previous) count(ns, previous, -1);
    if (next) count(ns, next, +1);
    if (next?.selector) ns.selectors.set(pool, next.selector);
    else ns.selectors.delete(pool);
    if (next) this.#pools.set(`${namespace}/${pool}`, next);
    else this.#pools.delete(`${namespace}/${pool}`);
    if (ns.whole.size === 0 && ns.entries.size === 0 && ns.selectors.size === 0)
      this.#namespaces.delete(namespace);
  }
}

function count(ns: NamespaceReads, reads: PoolReads, by: 1 | -1): void {
  for (const secret of reads.whole) bump(ns.whole, secret, by);
  for (const [secret, entries] of reads.entries) {
    let counts = ns.entries.get(secret);
    if (!counts) ns.entries.set(secret, (counts = new Map()));
    for (const entry of entries) bump(counts, entry, by);
    if (counts.size === 0) ns.entries.delete(secret);
  }
}

function bump(counts: Map<string, number>, key: string, by: 1 | -1): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

function shrank(namespace: string, previous: PoolReads): ReadsShrank {
  return {
    namespace,
    secrets: [...new Set([...previous.whole, ...previous.entries.keys()])],
    anySecret: previous.selector !== undefined,
  };
}

/** A Secret reference as a raw spec may hold it. */
type RawRef = { name?: unknown; key?: unknown } | undefined;

/** What a raw (unparsed) KeyPool spec reads; anything malformed reads more, never less. */
function readsOf(spec: unknown): PoolReads {
  const s = (spec ?? {}) as {
    keys?: unknown;
    secretSelector?: unknown;
    notifications?: { webhooks?: unknown };
  };
  const whole = new Set<string>();
  const entries = new Map<string, Set<string>>();
  const one = (ref: RawRef) => {
    if (typeof ref?.name !== "string") return;
    if (typeof ref.key !== "string" || ref.key === "") {
      whole.add(ref.name);
      return;
    }
    let set = entries.get(ref.name);
    if (!set) entries.set(ref.name, (set = new Set()));
    set.add(ref.key);
  };
  for (const key of arrayOf(s.keys)) one((key as { secretRef?: RawRef } | undefined)?.secretRef);
  for (const hook of arrayOf(s.notifications?.webhooks)) {
    const h = hook as { urlSecretRef?: RawRef; signingKeySecretRef?: RawRef } | undefined;
    // A webhook reference always names its entry; a malformed one without a key keeps the Secret.
    if (h?.urlSecretRef) one(h.urlSecretRef);
    if (h?.signingKeySecretRef) one(h.signingKeySecretRef);
  }
  const raw = s.secretSelector;
  // A malformed selector ({} after dropping what is not an object) matches every Secret.
  const selector =
    raw === undefined || raw === null ? undefined : typeof raw === "object" ? (raw as LabelSelector) : {};
  const signature = JSON.stringify([
    [...whole].sort(),
    [...entries].map(([name, set]) => [name, [...set].sort()]).sort(),
    selector ?? null,
  ]);
  return { whole, entries, selector, signature };
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
