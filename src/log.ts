/**
 * The pino logger, with key material redacted at the logger: structured fields that may hold
 * secrets are censored by path, and every line is scrubbed for strings shaped like provider
 * keys or bearer tokens before it is written, in case one slipped into a message.
 *
 * Create one in main.ts and pass it down; modules take a `Logger` and make child loggers.
 */
import { type DestinationStream, type Level, type Logger, pino } from "pino";

export type { Logger };

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

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (tests pass a stream to capture them); stdout by default. */
  destination?: DestinationStream;
  /** Fixed fields on every line. */
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  // Buffered stdout: one write per 4 KiB instead of one per line (every dispense writes an audit
  // line), flushed at least every 250 ms so a quiet process's lines are not held back, on
  // shutdown (logger.flush) and by pino on exit.
  const stdout = options.destination
    ? undefined
    : pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const logger = pino(
    {
      level: (options.level ?? "info") as Level,
      base: options.base ?? { app: "keypool-operator" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: scrubSecrets },
    },
    options.destination ?? stdout,
  );
  if (stdout) setInterval(() => stdout.flush(), 250).unref();
  return logger;
}
