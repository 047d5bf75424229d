/**
 * Prometheus metrics. Labels name pools and states, never keys (not even key ids: ids are
 * unbounded cardinality and the status already lists them).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { PoolRef, PoolRegistry } from "../pool/registry.ts";
import type { AuthStats } from "./auth.ts";
import type { DispenseOutcome } from "./dispense.ts";

export interface MetricsSources {
  pools: PoolRegistry;
  isLeader: () => boolean;
  watchStaleSeconds: () => number;
  /** Status writes so far (a counter the status writer keeps). */
  statusWrites: () => number;
  /** Status writes refused or lost so far (each retry counts), when a status writer runs. */
  statusWriteFailures?: () => number;
  /** Kubernetes auth counters, when that auth is in use. */
  authStats?: () => AuthStats;
  /** Whether the shared state store answers, when one is configured (--state-store redis://). */
  stateStoreUp?: () => boolean;
}

export function createMetrics(sources: MetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "keypool_" });

  new Gauge({
    name: "keypool_pools",
    help: "KeyPools known to this replica.",
    registers: [registry],
    collect() {
      this.set(sources.pools.size);
    },
  });
  new Gauge({
    name: "keypool_keys",
    help: "Keys per pool and state.",
    labelNames: ["namespace", "pool", "state"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of sources.pools.values()) {
        for (const [state, n] of Object.entries(pool.engine.stateCounts())) {
          this.set({ namespace: pool.ref.namespace, pool: pool.ref.name, state }, n);
        }
      }
    },
  });
  new Gauge({
    name: "keypool_leader",
    help: "1 when this replica holds the leader lease (writes status), else 0.",
    registers: [registry],
    collect() {
      this.set(sources.isLeader() ? 1 : 0);
    },
  });
  new Gauge({
    name: "keypool_watch_stale_seconds",
    help: "Seconds since the stalest watch last showed a sign of life.",
    registers: [registry],
    collect() {
      this.set(sources.watchStaleSeconds());
    },
  });
  if (sources.stateStoreUp) {
    const up = sources.stateStoreUp;
    new Gauge({
      name: "keypool_state_store_up",
      help: "1 while the shared state store (--state-store) answers; 0 while replicas count alone (open) or refuse to serve (closed).",
      registers: [registry],
      collect() {
        this.set(up() ? 1 : 0);
      },
    });
  }
  let reported = 0;
  new Counter({
    name: "keypool_status_writes_total",
    help: "KeyPool status merge-patches written by this replica.",
    registers: [registry],
    collect() {
      const now = sources.statusWrites();
      this.inc(now - reported);
      reported = now;
    },
  });
  counterFrom(registry, {
    name: "keypool_cost_usd_total",
    help: "What calls cost by the pool's price list (spec.pricing), USD, per model.",
    labelNames: ["namespace", "pool", "model"],
    read: () =>
      [...sources.pools.values()].flatMap((pool) =>
        [...pool.engine.costTotals()].map(
          ([model, usd]) =>
            [{ namespace: pool.ref.namespace, pool: pool.ref.name, model }, usd] as [
              Partial<Record<"namespace" | "pool" | "model", string>>,
              number,
            ],
        ),
      ),
  });
  new Gauge({
    name: "keypool_budget_spent_ratio",
    help: "Share of each pool budget spent in its current window (1 = exhausted).",
    labelNames: ["namespace", "pool", "period"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of sources.pools.values()) {
        const budget = pool.engine.budgetUse();
        for (const [period, use] of [
          ["daily", budget.daily],
          ["monthly", budget.monthly],
        ] as const)
          if (use)
            this.set(
              { namespace: pool.ref.namespace, pool: pool.ref.name, period },
              use.spentUSD / use.limitUSD,
            );
      }
    },
  });
  new Gauge({
    name: "keypool_forecast_exhaustion_timestamp_seconds",
    help: "When the pool's most pressing limit or budget runs out at the recent rate, Unix seconds (pools whose forecast says it will; before_reset: before its window resets).",
    labelNames: ["namespace", "pool", "limit", "before_reset"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of sources.pools.values()) {
        const { forecast } = pool.engine.spendingView();
        if (!forecast) continue;
        this.set(
          {
            namespace: pool.ref.namespace,
            pool: pool.ref.name,
            limit: forecast.limit,
            before_reset: String(forecast.beforeReset),
          },
          Math.floor(forecast.exhaustsAtMs / 1000),
        );
      }
    },
  });
  if (sources.statusWriteFailures) {
    const failures = sources.statusWriteFailures;
    counterFrom(registry, {
      name: "keypool_status_write_failures_total",
      help: "KeyPool status merge-patches that failed (each retry counts; they are retried with backoff up to 5 min).",
      labelNames: [],
      read: () => [[{}, failures()]],
    });
  }
  if (sources.authStats) {
    const stats = sources.authStats;
    new Gauge({
      name: "keypool_auth_requests_total",
      help: "Dispenser auth lookups: TokenReviews and SubjectAccessReviews sent, and cache hits.",
      labelNames: ["kind"] as const,
      registers: [registry],
      collect() {
        const s = stats();
        this.set({ kind: "token_review" }, s.tokenReviews);
        this.set({ kind: "access_review" }, s.accessReviews);
        this.set({ kind: "authn_cache_hit" }, s.authnHits);
        this.set({ kind: "authz_cache_hit" }, s.authzHits);
      },
    });
    counterFrom(registry, {
      name: "keypool_auth_review_failures_total",
      help: "TokenReviews and SubjectAccessReviews that got no answer (network error, timeout, 5xx, 429).",
      labelNames: ["kind"],
      read: () => {
        const s = stats();
        return [
          [{ kind: "token_review" }, s.tokenReviewFailures],
          [{ kind: "access_review" }, s.accessReviewFailures],
        ];
      },
    });
    counterFrom(registry, {
      name: "keypool_auth_stale_decisions_total",
      help: "Auth decisions served from the last answer past its lifetime while reviews failed (--auth-stale-grace).",
      labelNames: ["kind", "decision"],
      read: () => {
        const s = stats();
        return [
          [{ kind: "authn", decision: "allowed" }, s.staleAuthnAllowed],
          [{ kind: "authn", decision: "denied" }, s.staleAuthnDenied],
          [{ kind: "authz", decision: "allowed" }, s.staleAuthzAllowed],
          [{ kind: "authz", decision: "denied" }, s.staleAuthzDenied],
        ];
      },
    });
    counterFrom(registry, {
      name: "keypool_auth_unavailable_total",
      help: "Auth lookups answered auth_unavailable (503): no answer from the API server and no last answer to serve.",
      labelNames: [],
      read: () => [[{}, stats().unavailable]],
    });
    new Gauge({
      name: "keypool_auth_breaker_open",
      help: "1 while the circuit breaker around the auth reviews is open or half-open (reviews failing), else 0.",
      registers: [registry],
      collect() {
        this.set(stats().breakerOpen ? 1 : 0);
      },
    });
  }
  return registry;
}

/**
 * keypool_dispenses_total: keys handed out by the dispensing API and the compatibility routes
 * (not the proxy, which counts its calls in keypool_proxy_requests_total), by the pool asked for
 * and how it ended.
 */
export class DispenseMetrics {
  readonly #dispenses: Counter<"namespace" | "pool" | "outcome">;

  constructor(registry: Registry) {
    this.#dispenses = new Counter({
      name: "keypool_dispenses_total",
      help: "Key dispenses (GET /v1/pools/{namespace}/{pool}/key and the compatibility routes) by the pool asked for and outcome (dispensed, fallback, no_usable_key, state_store_unavailable, error).",
      labelNames: ["namespace", "pool", "outcome"],
      registers: [registry],
    });
  }

  /** Counts one dispense of `ref` (a pool that exists). */
  readonly count = (ref: PoolRef, outcome: DispenseOutcome): void => {
    this.#dispenses.inc({ namespace: ref.namespace, pool: ref.name, outcome });
  };
}

/** A counter that follows running totals kept elsewhere: each scrape adds what they grew by. */
function counterFrom<L extends string>(
  registry: Registry,
  spec: {
    name: string;
    help: string;
    labelNames: L[];
    read: () => Array<[Partial<Record<L, string>>, number]>;
  },
): void {
  const reported = new Map<string, number>();
  new Counter({
    name: spec.name,
    help: spec.help,
    labelNames: spec.labelNames,
    registers: [registry],
    collect() {
      for (const [labels, total] of spec.read()) {
        const key = JSON.stringify(labels);
        const grew = total - (reported.get(key) ?? 0);
        reported.set(key, total);
        this.inc(labels, Math.max(0, grew)); // 0 too: every series shows from the first scrape
      }
    },
  });
}
