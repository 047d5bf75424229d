/**
 * src/client — a TypeScript client for the dispensing API (`keypool-operator/client`): take a key,
 * report how the call went, or let `withKey` run the call with failover to another key.
 * Ships standalone (package.json `exports` points at the compiled dist/client/), so it may import
 * nothing but Node built-ins and its own files: no other src/ folder, no dependency.
 * May import: Node built-ins and src/client only.
 *
 * Files: client.ts (KeyPoolClient), transport.ts (one HTTP call: token, timeout, errors),
 * outcome.ts (a provider answer or thrown error as a report and a retry decision), errors.ts (codes).
 */
export {
  type Attempt,
  CLIENT_DEFAULTS,
  type GetKeyOptions,
  KeyPoolClient,
  type KeyPoolClientOptions,
  type Lease,
  type LeaseRef,
  type PoolInput,
  type PoolRef,
  PROJECTED_TOKEN_FILE,
  type ReportExtra,
  type ReportResult,
  type WithKeyOptions,
} from "./client.ts";
export {
  CLIENT_ERROR_CODES,
  type ClientErrorCode,
  KeyPoolClientError,
  type KeyPoolClientErrorCode,
  SERVER_ERROR_CODES,
  type ServerErrorCode,
} from "./errors.ts";
export {
  type CallUsage,
  type HeadersLike,
  type HttpResult,
  isNetworkError,
  isRetryableStatus,
  type Outcome,
  type ResponseLike,
} from "./outcome.ts";
