/**
 * Active health probes: each key is checked with its provider's free request (list models)
 * when it joins a pool (so an invalid key is caught before anyone gets it), every
 * health.probeInterval, and sooner while it is Degraded or Invalid (to notice recovery). Results go through the provider's classification, like callers' reports.
 * Concurrency-limited, with the pool's probeTimeout. Runs only while `isActive()` (the leader).
 * When each key was last probed is kept per pool engine, and forgotten on every tick for keys
 * that left their pool (removed from the Secret: draining, never probed again) and for pools
 * that are gone or were replaced, so memory stays bounded by the keys pools hold now.
 */
import { Agent, type Dispatcher, fetch } from "undici";
import type { Logger } from "../log.ts";
import type { Clock } from "../pool/clock.ts";
import type { KeyPoolEngine } from "../pool/engine.ts";
import type { Outcome } from "../pool/outcome.ts";
import { classifyNetworkError, getProvider, providerUrl } from "./index.ts";
import { type PoolRef, type PoolRegistry, type PoolRuntime, refKey } from "../pool/registry.ts";

export interface ProberOptions {
  registry: PoolRegistry;
  logger: Logger;
  clock: Clock;
  isActive: () => boolean;
  /** Probes running at once; default PROBE_CONCURRENCY. */
  concurrency?: number;
  /** How often due probes are looked for; default TICK_MS. */
  tickMs?: number;
  /** Largest body read from a probe answer; default MAX_PROBE_BODY_BYTES. */
  maxBodyBytes?: number;
  dispatcher?: Dispatcher;
}

/**
 * The prober's own settings, not a pool's (those come from each pool's spec.health, through its
 * engine's config). The operator looks for due probes every second; `keypool serve` passes
 * --health-check-interval.
 */
const TICK_MS = 1_000;
/** Probes at once across all pools: enough to check a new pool's keys quickly, few enough not to
 * look like a burst to a provider. */
const PROBE_CONCURRENCY = 4;
/** Error bodies are small; a model list may not be, and only its start is needed to classify. */
const MAX_PROBE_BODY_BYTES = 256 * 1024;

/** Probed more often, to notice recovery. QuotaExhausted is not: it waits for its time (a
 * list-models probe succeeds without credit), and is probed again when that ends. */
const RECHECK_STATES = new Set(["Degraded", "Invalid"]);
const NEVER_PROBED_STATES = new Set(["RateLimited", "QuotaExhausted", "Disabled", "Draining"]);

export class Prober {
  readonly #o: ProberOptions;
  readonly #log: Logger;
  /** By pool (refKey): its engine then, and when each of its keys was last probed. */
  readonly #lastProbe = new Map<string, { engine: KeyPoolEngine; at: Map<string, number> }>();
  readonly #running = new Set<string>();
  readonly #dispatcher: Dispatcher;
  #timer: NodeJS.Timeout | undefined;
  #active = 0;
  readonly stats = { probes: 0, failures: 0 };

  constructor(options: ProberOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "prober" });
    this.#dispatcher = options.dispatcher ?? new Agent({ keepAliveTimeout: 30_000, connections: 16 });
  }

  /** Keys whose last probe time is kept (bounded by the keys in the registry's pools). */
  get trackedKeys(): number {
    let n = 0;
    for (const pool of this.#lastProbe.values()) n += pool.at.size;
    return n;
  }

  start(): void {
    if (this.#timer) return;
    const tick = () => {
      this.#timer = setTimeout(tick, this.#o.tickMs ?? TICK_MS);
      this.#forgetGone();
      if (this.#o.isActive()) this.#runDue();
    };
    this.#timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#active > 0) await new Promise((r) => setTimeout(r, 20));
  }

  /** Probes every key of a pool now (admin action); resolves with how many were probed. */
  async probePool(ref: PoolRef): Promise<number> {
    const runtime = this.#o.registry.get(ref);
    if (!runtime) return 0;
    const ids = runtime.engine
      .keys()
      .filter((k) => k.state !== "Draining" && k.state !== "Disabled")
      .map((k) => k.id);
    await Promise.all(ids.map((id) => this.#probe(runtime, id)));
    return ids.length;
  }

  #runDue() {
    const now = this.#o.clock.now();
    const limit = this.#o.concurrency ?? PROBE_CONCURRENCY;
    for (const runtime of this.#o.registry.values()) {
      const interval = runtime.engine.config.probeIntervalMs;
      const recheck = Math.min(interval, Math.max(10_000, Math.round(interval / 5)));
      for (const key of runtime.engine.keys()) {
        if (this.#active >= limit) return;
        if (NEVER_PROBED_STATES.has(key.state)) continue;
        const id = `${refKey(runtime.ref)}/${key.id}`;
        const last = this.#lastProbe.get(refKey(runtime.ref))?.at.get(key.id);
        const due = last === undefined || now - last >= (RECHECK_STATES.has(key.state) ? recheck : interval);
        if (due && !this.#running.has(id)) void this.#probe(runtime, key.id);
      }
    }
  }

  /** The probe times of a pool's engine; a new engine under the same name starts afresh. */
  #probedAt(runtime: PoolRuntime): Map<string, number> {
    const pool = this.#lastProbe.get(refKey(runtime.ref));
    if (pool?.engine === runtime.engine) return pool.at;
    const at = new Map<string, number>();
    this.#lastProbe.set(refKey(runtime.ref), { engine: runtime.engine, at });
    return at;
  }

  /** Drops the probe times of keys that left their pool, and of pools gone or replaced. */
  #forgetGone() {
    for (const [pool, { engine, at }] of this.#lastProbe) {
      const runtime = this.#o.registry.get(refFromKey(pool));
      if (runtime?.engine !== engine) {
        this.#lastProbe.delete(pool);
        continue;
      }
      // Draining keys are left out: they are never probed again.
      const present = new Set(engine.keyIds());
      for (const id of at.keys()) if (!present.has(id)) at.delete(id);
    }
  }

  async #probe(runtime: PoolRuntime, keyId: string): Promise<Outcome | undefined> {
    const id = `${refKey(runtime.ref)}/${keyId}`;
    const key = runtime.engine.keyMaterial(keyId);
    if (!key || this.#running.has(id)) return undefined;
    this.#running.add(id);
    this.#active++;
    this.#probedAt(runtime).set(keyId, this.#o.clock.now());
    const profile = getProvider(runtime.spec.provider);
    let outcome: Outcome;
    try {
      const base = runtime.spec.baseURL ?? profile.defaultBaseURL;
      const res = await fetch(providerUrl(base, profile.probe.path), {
        method: profile.probe.method,
        headers: { ...profile.probe.headers, ...profile.authHeaders(key) },
        signal: AbortSignal.timeout(runtime.engine.config.probeTimeoutMs),
        dispatcher: this.#dispatcher,
      });
      const body = await readLimited(res, this.#o.maxBodyBytes ?? MAX_PROBE_BODY_BYTES);
      outcome = profile.classify({ status: res.status, headers: res.headers, body }, this.#o.clock.now());
    } catch (err) {
      outcome = classifyNetworkError(err);
    } finally {
      this.#active--;
      this.#running.delete(id);
    }
    this.stats.probes++;
    if (outcome.kind !== "success") this.stats.failures++;
    const result = runtime.engine.report({ keyId }, outcome, "probe");
    this.#log.debug(
      {
        pool: refKey(runtime.ref),
        keyId,
        outcome: outcome.kind,
        reason: outcome.reason,
        state: result.ok ? result.state : undefined,
      },
      "probed key",
    );
    this.#o.registry.touched(runtime.ref);
    return outcome;
  }
}

/** Reads at most `limit` bytes of a body (a probe needs the error body, not a huge model list). */
async function readLimited(res: Awaited<ReturnType<typeof fetch>>, limit: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    const buf = Buffer.from(chunk as Uint8Array);
    chunks.push(buf);
    size += buf.length;
    if (size >= limit) break;
  }
  return Buffer.concat(chunks).toString("utf8").slice(0, limit);
}

/** The ref of a refKey ("namespace/name": neither part may hold a slash). */
function refFromKey(key: string): PoolRef {
  const slash = key.indexOf("/");
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
