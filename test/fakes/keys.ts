/**
 * Per-key behaviour: what the next request with a key gets, and the fixed one-minute usage windows
 * that success answers report in their rate-limit headers.
 */
import type { KeyBehaviour } from "./types.ts";

/** What the fake decided for one request: answer normally (maybe late), or fail in a provider's way. */
export type Decision =
  | { kind: "valid"; delayMs: number; chunkGapMs?: number }
  | { kind: "invalid" }
  | { kind: "rateLimited"; remainingMs: number }
  | { kind: "quotaExhausted" }
  | { kind: "serverError"; status: number }
  | { kind: "overloaded" };

/** The failing decisions, which each provider turns into its own error answer. */
export type Failure = Exclude<Decision, { kind: "valid" }>;

interface Entry {
  behaviour: KeyBehaviour;
  setAtMs: number;
  /** Requests decided since the behaviour was set (for "flaky"). */
  count: number;
}

/** Usage of one key within the current window. */
export interface Usage {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  /** Time left until the window restarts. */
  resetInMs: number;
  /** Multiplier of the provider's tier limits in rate-limit headers (benchmarks raise them). */
  limitScale: number;
}

const WINDOW_MS = 60_000;

export class KeyBook {
  readonly #entries = new Map<string, Entry>();
  readonly #windows = new Map<string, { startMs: number; requests: number; input: number; output: number }>();
  readonly #now: () => number;
  readonly #limitScale: number;

  constructor(now: () => number, limitScale = 1) {
    this.#now = now;
    this.#limitScale = limitScale;
  }

  set(key: string, behaviour: KeyBehaviour): void {
    this.#entries.set(key, { behaviour, setAtMs: this.#now(), count: 0 });
  }

  /** Decides how to answer one request made with `key`. */
  decide(key: string): Decision {
    const entry = this.#entries.get(key);
    if (!entry) return { kind: "invalid" };
    const { behaviour } = entry;
    entry.count += 1;
    switch (behaviour.kind) {
      case "valid":
        return { kind: "valid", delayMs: 0 };
      case "slow":
        return behaviour.chunkGapMs === undefined
          ? { kind: "valid", delayMs: behaviour.delayMs }
          : { kind: "valid", delayMs: behaviour.delayMs, chunkGapMs: behaviour.chunkGapMs };
      case "flaky":
        return behaviour.failEvery > 0 && entry.count % behaviour.failEvery === 0
          ? { kind: "serverError", status: 500 }
          : { kind: "valid", delayMs: 0 };
      case "rateLimited": {
        const remainingMs = entry.setAtMs + behaviour.retryAfterSeconds * 1000 - this.#now();
        return remainingMs > 0 ? { kind: "rateLimited", remainingMs } : { kind: "valid", delayMs: 0 };
      }
      case "serverError":
        return { kind: "serverError", status: behaviour.status ?? 500 };
      case "invalid":
      case "quotaExhausted":
      case "overloaded":
        return { kind: behaviour.kind };
    }
  }

  /** Counts one answered request and its tokens against the key's window; returns the usage after it. */
  consume(key: string, inputTokens: number, outputTokens: number): Usage {
    const now = this.#now();
    let window = this.#windows.get(key);
    if (!window || now - window.startMs >= WINDOW_MS) {
      window = { startMs: now, requests: 0, input: 0, output: 0 };
      this.#windows.set(key, window);
    }
    window.requests += 1;
    window.input += inputTokens;
    window.output += outputTokens;
    return {
      requests: window.requests,
      inputTokens: window.input,
      outputTokens: window.output,
      resetInMs: window.startMs + WINDOW_MS - now,
      limitScale: this.#limitScale,
    };
  }
}
