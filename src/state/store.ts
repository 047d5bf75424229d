/**
 * src/state — where key state is shared between replicas: the store interface (this file), the
 * Redis/Valkey store (redis-store.ts, Lua scripts in scripts.ts) and the part that keeps the
 * engines of this process and the store in step (shared-state.ts). Keys never go to the store:
 * only key ids, states, deadlines, window counts, leases and counters.
 * May import: src/api, src/pool, src/log, @redis/client. Time comes from an
 * injected Clock; the store's own clock (Redis TIME) decides windows.
 */
import type { KeyState, Limits } from "../api/keypool.ts";

/** One key's state as the store keeps it. Times are this process's epoch ms (converted by the store). */
export interface SharedKeyState {
  state: KeyState;
  /** When the key entered `state`. */
  sinceMs: number;
  /** End of a cooldown (RateLimited, QuotaExhausted); 0 otherwise. */
  untilMs: number;
  consecutiveErrors: number;
  lastErrorAtMs: number;
  /** The transition's reason (rate_limited, invalid_key, ...), for logs. */
  reason?: string;
}

/** What a reservation must check: the key's limits and, in a quota group, the group's. */
export interface ReservationRequest {
  /** "namespace/name" of the pool. */
  pool: string;
  keyId: string;
  keyLimits: Limits | undefined;
  group: { name: string; limits: Limits | undefined } | undefined;
  /** The lease this dispense opens, and how long it lives. */
  leaseId: string;
  leaseMs: number;
}

export type Reservation =
  | { ok: true }
  /** A limit window (the key's or the group's) is full until `retryAtMs`. */
  | { ok: false; reason: "window"; scope: "key" | "group"; retryAtMs: number }
  /** The store knows the key as unusable (another replica's report). */
  | { ok: false; reason: "state"; state: SharedKeyState };

export interface LeaseEnd {
  pool: string;
  /** The lease reported, when the report names one. */
  leaseId?: string;
  /** The key reported (known when the lease is local, or for key-id reports). */
  keyId?: string;
  /** Tokens the call used, for the token windows (the key's and its group's). */
  tokens?: number;
  keyLimits?: Limits | undefined;
  group?: { name: string; limits: Limits | undefined } | undefined;
  /** The call failed (counted in the key's errors). */
  error: boolean;
}

/** Usage counters of one key, summed over replicas. */
export interface SharedUsage {
  requests: number;
  errors: number;
  lastUsedMs: number;
}

/** USD spent in a budget day and month. */
export interface SharedSpendTotals {
  dayUSD: number;
  monthUSD: number;
}

/** One call's cost to add, in the budget windows it falls in. */
export interface SpendRequest {
  pool: string;
  keyId: string;
  /** Window ids (2026-12-04, 2026-12) and when they end (epoch ms). */
  day: { id: string; endMs: number };
  month: { id: string; endMs: number };
  usd: number;
}

/** Spend over every replica: the key's and the pool's. */
export interface SharedSpend {
  key: SharedSpendTotals;
  pool: SharedSpendTotals;
}

/** Messages other replicas publish. */
export type StoreMessage =
  | { kind: "state"; pool: string; keyId: string; state: SharedKeyState }
  /** A lease opened here was reported on another replica (`leaseId` as this replica issued it). */
  | { kind: "leaseClosed"; pool: string; leaseId: string; origin: string }
  /** Someone used the pool (counters changed): the leader refreshes its status. */
  | { kind: "touched"; pool: string };

export interface StateStore {
  /** "memory" or "redis": which store this is (metrics, logs). */
  readonly kind: "redis";
  /** Whether the last command reached the store. */
  readonly up: boolean;
  /** Called with true/false when `up` changes (connection lost, reconnected). */
  onAvailability(listener: (up: boolean) => void): void;
  onMessage(listener: (message: StoreMessage) => void): void;

  /** Connects; resolves when connected or after `waitMs` (the store may come later). */
  connect(waitMs?: number): Promise<void>;
  close(): Promise<void>;

  /** Atomically: checks every window and the key's state, and when all allow, counts the request and opens the lease. */
  reserve(request: ReservationRequest): Promise<Reservation>;
  /**
   * Ends a lease (any replica's) and records tokens and errors. Returns the key id (the lease's,
   * or the one given), or undefined when the lease is not open in the store.
   */
  endLease(end: LeaseEnd): Promise<{ keyId: string; origin: string | undefined } | undefined>;
  /**
   * Writes a key's state (the newer fact wins, a cooldown keeps the later deadline) and tells the
   * other replicas. Returns what the store holds afterwards (undefined: nothing).
   */
  setState(pool: string, keyId: string, state: SharedKeyState): Promise<SharedKeyState | undefined>;
  /** The states the store holds for these keys (missing: none known). */
  states(pool: string, keyIds: readonly string[]): Promise<Map<string, SharedKeyState>>;
  /** Usage counters of these keys, summed over replicas. */
  usage(pool: string, keyIds: readonly string[]): Promise<Map<string, SharedUsage>>;
  /** In-flight leases per key, over all replicas (keys with none are left out). */
  inFlight(pool: string): Promise<Map<string, number>>;
  publish(message: StoreMessage): Promise<void>;
  /**
   * Claims a notification over every replica: true for the first replica to ask for `id` (in the
   * next `ttlMs`), false for the others. Webhooks get one message per notice, not one per replica.
   */
  claimNotification(pool: string, id: string, ttlMs: number): Promise<boolean>;
  /** Adds a call's cost to its key's and pool's budget windows; the totals over every replica. */
  addSpend(request: SpendRequest): Promise<SharedSpend>;
  /** What these keys and their pool spent in the given windows, over every replica. */
  spend(
    pool: string,
    keyIds: readonly string[],
    windows: { day: string; month: string },
  ): Promise<{ keys: Map<string, SharedSpendTotals>; pool: SharedSpendTotals }>;
}
