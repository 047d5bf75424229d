/**
 * What a notification says: the transitions a KeyPool reports to its webhooks. The operator
 * decides when one happens and builds the event; this folder only delivers it.
 *
 * An event names a key by its id and masked value, never by the key itself.
 */

/**
 * The kinds of notification, each a transition of a pool or of one of its keys: the list the
 * KeyPool's spec.notifications.webhooks[].events takes (src/api, where each is described).
 */
export { NOTIFICATION_TYPES, type NotificationType } from "../api/keypool.ts";
import type { NotificationType } from "../api/keypool.ts";

/** The pool an event is about. */
export interface NotificationPoolRef {
  namespace: string;
  name: string;
}

/** A key as an event may name it. */
export interface NotificationKeyRef {
  /** The key's 12-hex id (src/pool/identity.ts). */
  id: string;
  /** The masked value, like "sk-...abcd". Never the key itself. */
  masked: string;
}

export interface NotificationEvent {
  /** Identifies the transition: the same id is delivered once, however often notify() is called with it. */
  id: string;
  type: NotificationType;
  pool: NotificationPoolRef;
  key?: NotificationKeyRef;
  /** Machine-readable, e.g. "invalid_api_key", "BudgetExhausted", "ConsecutiveFailures". */
  reason: string;
  /** One human sentence. */
  message: string;
  /** When the transition happened, RFC 3339. */
  at: string;
  /** Figures that go with it, e.g. {spentUSD, limitUSD, resetsAt, exhaustsAt, limit}. */
  details?: Record<string, string | number | boolean>;
}

/** "namespace/name": how setTargets and removePool name a pool. */
export function poolKey(pool: NotificationPoolRef): string {
  return `${pool.namespace}/${pool.name}`;
}
