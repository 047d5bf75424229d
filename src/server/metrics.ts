/**
 * Prometheus metrics. Labels name pools and states, never keys (not even key ids: ids are
 * unbounded cardinality and the status already lists them).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { PoolRegistry } from "../controller/pools.ts";

export interface MetricsSources {
  pools: PoolRegistry;
  isLeader: () => boolean;
  watchStaleSeconds: () => number;
  /** Status writes so far (a counter the status writer keeps). */
  statusWrites: () => number;
  /** Kubernetes auth counters, when that auth is in use. */
  authStats?: () => { tokenReviews: number; accessReviews: number; authnHits: number; authzHits: number };
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
  }
  return registry;
}
