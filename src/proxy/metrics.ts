/**
 * The proxy's Prometheus metrics. Labels name pools, outcomes and status codes; never keys or
 * key ids (unbounded cardinality; the KeyPool status lists keys).
 */
import { Counter, Histogram, type Registry } from "prom-client";

/** Latency buckets in seconds: proxy overhead is sub-millisecond, provider calls take seconds. */
const ADDED_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
const UPSTREAM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class ProxyMetrics {
  readonly requests: Counter<"namespace" | "pool" | "outcome" | "status">;
  readonly attempts: Counter<"namespace" | "pool" | "result">;
  readonly failovers: Counter<"namespace" | "pool">;
  readonly tokens: Counter<"namespace" | "pool">;
  readonly upstreamSeconds: Histogram<"namespace" | "pool">;
  readonly addedSeconds: Histogram<"namespace" | "pool">;
  readonly waitSeconds: Histogram<"namespace" | "pool">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: "keypool_proxy_requests_total",
      help: "Proxied calls by pool, outcome (success, upstream_error, exhausted, rate_limited, no_usable_key, client_aborted, upstream_unavailable, upstream_timeout, rejected) and the status the caller got.",
      labelNames: ["namespace", "pool", "outcome", "status"],
      registers,
    });
    this.attempts = new Counter({
      name: "keypool_proxy_attempts_total",
      help: "Calls to the provider by pool and how each went (the key outcome: success, rateLimited, serverError, networkError, ...).",
      labelNames: ["namespace", "pool", "result"],
      registers,
    });
    this.failovers = new Counter({
      name: "keypool_proxy_failovers_total",
      help: "Attempts retried on another key after a retryable answer (429, 5xx, 529, refused key, network error).",
      labelNames: ["namespace", "pool"],
      registers,
    });
    this.tokens = new Counter({
      name: "keypool_proxy_tokens_total",
      help: "Tokens the provider reported using on proxied calls.",
      labelNames: ["namespace", "pool"],
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: "keypool_proxy_upstream_duration_seconds",
      help: "Time from sending an attempt to the provider's response headers.",
      labelNames: ["namespace", "pool"],
      buckets: UPSTREAM_BUCKETS,
      registers,
    });
    this.addedSeconds = new Histogram({
      name: "keypool_proxy_added_latency_seconds",
      help: "Time the proxy adds before the caller gets response headers: the whole wait minus the provider's time to headers and any wait for a usable key.",
      labelNames: ["namespace", "pool"],
      buckets: ADDED_BUCKETS,
      registers,
    });
    this.waitSeconds = new Histogram({
      name: "keypool_proxy_key_wait_seconds",
      help: "Time proxied calls waited for a key to become usable (maxWait).",
      labelNames: ["namespace", "pool"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
  }
}
