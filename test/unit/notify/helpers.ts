/** Sample events, hand-driven timers, a scripted fetch and a metrics reader for the notify tests. */
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import type { Registry } from "prom-client";
import type { NotificationEvent } from "../../../src/notify/event.ts";
import type { Timers } from "../../../src/notify/notifier.ts";

/** A key as a Secret would hold it: it must never appear in a body or a log line. */
export const RAW_KEY = "sk-proj-Zq8vN3xT5yW2kL9mR4pB7cD1fH6jQ0sA2uE8iO3aabcd";

export function sampleEvent(overrides: Partial<NotificationEvent> = {}): NotificationEvent {
  return {
    id: "kp-3f9ac2e1b0d4-invalid-1767225600",
    type: "KeyInvalid",
    pool: { namespace: "default", name: "openai-prod" },
    key: { id: "3f9ac2e1b0d4", masked: "sk-...abcd" },
    reason: "invalid_api_key",
    message: "The key was rejected by OpenAI (401 invalid_api_key) and left rotation.",
    at: "2026-01-01T00:00:00Z",
    ...overrides,
  };
}

/** Timers that fire only when the test says, at a time of their own. */
export class ManualTimers implements Timers {
  now = 0;
  /** The delay of every timer set, in order. */
  readonly delays: number[] = [];
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.now + ms, callback });
    this.delays.push(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get size(): number {
    return this.#timers.size;
  }

  /** Moves time to the earliest timer and fires it; false when none is set. */
  fireNext(): boolean {
    let next: [number, { at: number; callback: () => void }] | undefined;
    for (const entry of this.#timers) if (!next || entry[1].at < next[1].at) next = entry;
    if (!next) return false;
    this.#timers.delete(next[0]);
    this.now = Math.max(this.now, next[1].at);
    next[1].callback();
    return true;
  }
}

/** Lets promises, streams and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Settles, then fires timers one by one until nothing is pending (or `limit` timers fired). */
export async function runUntilIdle(
  timers: ManualTimers,
  notifier: { pending: number },
  limit = 1_000,
): Promise<void> {
  for (let fired = 0; fired < limit; fired++) {
    await settle();
    if (notifier.pending === 0) return;
    if (!timers.fireNext()) throw new Error(`${notifier.pending} deliveries pending and no timer set`);
  }
  throw new Error(`still ${notifier.pending} deliveries pending after ${limit} timers`);
}

export interface SentRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** An answer of the scripted fetch: a status (with headers), a network error, or no answer at all. */
export type Answer =
  number | { status: number; headers?: Record<string, string>; body?: string } | "refused" | "hang";

/**
 * A fetch that answers from a script per URL (the last answer repeats) and records each request.
 * "hang" answers only by failing when the request is aborted.
 */
export function scriptedFetch(script: Record<string, Answer[]>) {
  const requests: SentRequest[] = [];
  const served = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    requests.push({
      url,
      headers: { ...(init?.headers as Record<string, string>) },
      body: String(init?.body),
    });
    const answers = script[url] ?? [200];
    const n = served.get(url) ?? 0;
    served.set(url, n + 1);
    const answer = answers[Math.min(n, answers.length - 1)] ?? 200;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (answer === "refused") {
        throw new TypeError("fetch failed", {
          cause: Object.assign(new Error(`connect ECONNREFUSED ${url}`), { code: "ECONNREFUSED" }),
        });
      }
      if (answer === "hang") {
        return await new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason), { once: true });
        });
      }
      const { status, headers, body } = typeof answer === "number" ? { status: answer } : answer;
      return new Response(body ?? (status < 300 ? "ok" : "error"), { status, headers: headers ?? {} });
    } finally {
      inFlight--;
    }
  };
  return {
    fetch: fetch as typeof globalThis.fetch,
    requests,
    /** The most requests in flight at once. */
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

/** keypool_notifications_total as "webhook type outcome" → value. */
export async function notificationCounts(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric("keypool_notifications_total")?.get();
  const counts: Record<string, number> = {};
  for (const { labels, value } of metric?.values ?? []) {
    counts[`${labels["webhook"]} ${labels["type"]} ${labels["outcome"]}`] = value;
  }
  return counts;
}

/** A debug-level pino logger whose lines the test reads (no redaction: what the notifier writes). */
export function capturedLogger(): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString("utf8"));
      callback();
    },
  });
  const logger = pino({ level: "debug" }, stream);
  const text = () => chunks.join("");
  return {
    logger,
    text,
    lines: () =>
      text()
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}
