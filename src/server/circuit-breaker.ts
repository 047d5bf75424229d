/**
 * A circuit breaker for the auth reviews (TokenReview, SubjectAccessReview), so that callers do
 * not each wait out a timeout while the API server is down or hung:
 *
 * - closed: requests go out;
 * - open: after `failureThreshold` failures in a row, or at once after a timeout (a hung API
 *   server is what makes callers wait), no request goes out for `openMs`;
 * - half-open: then one request goes out as a probe; its success closes the breaker, its
 *   failure opens it again.
 *
 * A failure of a request that started before the last success says nothing new (it was sent to
 * the server the success came from) and is not counted. Time comes from the injected clock.
 */
import type { Clock } from "../pool/clock.ts";

export type BreakerState = "closed" | "open" | "half-open";

/** What `admit` allows: a request, the half-open probe, or nothing. */
export type Admission = "request" | "probe" | "refuse";

export interface CircuitBreakerOptions {
  /** Failures in a row that open the breaker. */
  failureThreshold: number;
  /** How long it stays open before a probe may go out. */
  openMs: number;
  clock: Clock;
}

export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openMs: number;
  readonly #clock: Clock;
  #failures = 0;
  #openedAt: number | undefined;
  #probing = false;
  #lastSuccessAt = -Infinity;

  constructor(options: CircuitBreakerOptions) {
    if (!(options.failureThreshold >= 1)) throw new Error("failureThreshold must be at least 1");
    this.#threshold = options.failureThreshold;
    this.#openMs = options.openMs;
    this.#clock = options.clock;
  }

  get state(): BreakerState {
    if (this.#openedAt === undefined) return "closed";
    return this.#clock.now() - this.#openedAt < this.#openMs ? "open" : "half-open";
  }

  /**
   * May a request go out now? In half-open, the first caller gets "probe" and the others
   * "refuse" until it settles (success or failure).
   */
  admit(): Admission {
    const state = this.state;
    if (state === "closed") return "request";
    if (state === "open" || this.#probing) return "refuse";
    this.#probing = true;
    return "probe";
  }

  /** Milliseconds until a request may go out again (0 when closed or half-open). */
  retryAfterMs(): number {
    if (this.#openedAt === undefined) return 0;
    return Math.max(0, this.#openedAt + this.#openMs - this.#clock.now());
  }

  /** The request started at `startedAt` was answered. True when this closed the breaker. */
  success(startedAt: number): boolean {
    this.#lastSuccessAt = Math.max(this.#lastSuccessAt, startedAt);
    this.#failures = 0;
    this.#probing = false;
    const wasOpen = this.#openedAt !== undefined;
    this.#openedAt = undefined;
    return wasOpen;
  }

  /**
   * The request started at `startedAt` failed (network, timeout, 5xx); `timedOut` opens the
   * breaker at once. Says whether the failure was ignored (sent before the last success),
   * counted, or opened the breaker (from closed or half-open).
   */
  failure(startedAt: number, timedOut: boolean): "ignored" | "counted" | "opened" {
    if (startedAt < this.#lastSuccessAt) return "ignored";
    this.#failures++;
    this.#probing = false;
    const state = this.state;
    if (state === "open") return "counted";
    if (state === "half-open" || timedOut || this.#failures >= this.#threshold) {
      this.#openedAt = this.#clock.now();
      return "opened";
    }
    return "counted";
  }
}
