/**
 * The pino logger, with key material redacted at the logger: structured fields that may hold
 * secrets are censored by path, and every line is scrubbed for strings shaped like provider
 * keys or bearer tokens before it is written, in case one slipped into a message.
 *
 * Create one in main.ts and pass it down; modules take a `Logger` and make child loggers.
 */
import { type DestinationStream, type Level, type Logger, pino } from "pino";

export type { Logger };

type SonicBoom = ReturnType<typeof pino.destination>;

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field paths that may carry secrets in any log call. */
const REDACT_PATHS = [
  "key",
  "apiKey",
  "token",
  "password",
  "authorization",
  "data",
  "stringData",
  "headers.authorization",
  "headers.cookie",
  'headers["x-api-key"]',
  'headers["x-goog-api-key"]',
  "req.headers.authorization",
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  "secret.data",
  "secret.stringData",
];
// No wildcard paths: they cost every log call (the dispenser writes an audit line per request),
// and the line scrubber below catches key-shaped strings wherever they are.

/**
 * Shapes of provider keys and credentials: OpenAI/Anthropic/DeepSeek `sk-...`, Gemini `AIza...`,
 * JWTs (ServiceAccount tokens), and `Bearer <token>` values.
 */
const SECRET_SHAPES =
  /\b(sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})|(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/g;

/** Replaces anything shaped like a key or token with a marker. */
export function scrubSecrets(text: string): string {
  return text.replace(SECRET_SHAPES, (_m, _key: string | undefined, bearer: string | undefined) =>
    bearer ? `${bearer}[REDACTED]` : "[REDACTED]",
  );
}

/**
 * pino's ISO timestamp, formatted once per millisecond: the dispenser writes an audit line per
 * request and `toISOString` was a quarter of each line's cost (bench/dispense).
 */
export function isoTimeCached(now: () => number = Date.now): () => string {
  let lastMs = Number.NaN;
  let lastText = "";
  return () => {
    const ms = now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastText = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return lastText;
  };
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (tests pass a stream to capture them); stdout by default. */
  destination?: DestinationStream;
  /** Fixed fields on every line. */
  base?: Record<string, unknown>;
}

/** A batch's size before it is handed over (see BatchedDestination for how it was measured). */
const BATCH_CHARS = 64 * 1024;
/** Longest a line waits in a batch: late enough to batch a burst, soon enough to read live. */
const BATCH_FLUSH_MS = 250;

/**
 * Batches log lines in front of a SonicBoom: pino hands over one line per call, and SonicBoom
 * measures its whole pending buffer on each write (Buffer.byteLength of the accumulated string),
 * which made logging a third of a dispense's cost at 20k lines/s (bench/dispense). Here a line is
 * an array push; a batch goes to SonicBoom (which does the async writes, EAGAIN retries and the
 * synchronous flush at exit) when it reaches `batchChars` or `flushMs` after its first line.
 *
 * 64 KiB by default: each hand-over is an fs.write through libuv's thread pool, and at 16 KiB those
 * were a tenth of the operator's CPU under bench/dispense (about 190 us each on this 2-vCPU VM,
 * in the CPU profile); at 64 KiB the operator's CPU per dispensed key fell from 52-62 us to 46-49
 * us at 9,000 requests/s.
 */
export class BatchedDestination implements DestinationStream {
  readonly #sink: SonicBoom;
  readonly #batchChars: number;
  readonly #flushMs: number;
  #lines: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(sink: SonicBoom, options: { batchChars?: number; flushMs?: number } = {}) {
    this.#sink = sink;
    this.#batchChars = options.batchChars ?? BATCH_CHARS;
    this.#flushMs = options.flushMs ?? BATCH_FLUSH_MS;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= this.#batchChars) this.#handOver();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.#handOver(), this.#flushMs);
      this.#timer.unref();
    }
  }

  #handOver(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const batch = this.#lines.join("");
    this.#lines = [];
    this.#chars = 0;
    this.#sink.write(batch);
  }

  /** Hands pending lines over and lets SonicBoom write them (logger.flush()). */
  flush(cb?: (err?: Error) => void): void {
    this.#handOver();
    this.#sink.flush(cb);
  }

  /** Writes everything now, synchronously: for process exit. */
  flushSync(): void {
    this.#handOver();
    this.#sink.flushSync();
  }
}

/** Stdout destinations to write out synchronously when the process exits (one exit listener). */
const pendingAtExit = new Set<BatchedDestination>();
function flushAtExit(destination: BatchedDestination): void {
  if (pendingAtExit.size === 0) {
    process.once("exit", () => {
      for (const d of pendingAtExit) {
        try {
          d.flushSync();
        } catch {
          // stdout closed (EPIPE): nothing left to write to.
        }
      }
    });
  }
  pendingAtExit.add(destination);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  // stdout in batches: one write per 64 KiB of lines instead of one per line (every dispense
  // writes an audit line), at most 250 ms late, flushed on shutdown (logger.flush) and at exit.
  let stdout: BatchedDestination | undefined;
  if (!options.destination) {
    const batched = new BatchedDestination(pino.destination({ dest: 1, sync: false }));
    flushAtExit(batched);
    stdout = batched;
  }
  const logger = pino(
    {
      level: (options.level ?? "info") as Level,
      base: options.base ?? { app: "keypool-operator" },
      timestamp: isoTimeCached(),
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: scrubSecrets },
    },
    options.destination ?? stdout,
  );
  return logger;
}
