/**
 * `describeError`: one line saying why a call failed, for logs, conditions and Events. A
 * Kubernetes API error is named by its code and the API server's Status (reason, message); any
 * other error by its message and its cause's. Anything shaped like a key or token is scrubbed,
 * so the line is safe to log and to show (a TokenReview's Status may echo the token).
 *
 * May import: src/log and @kubernetes/client-node.
 */
import { ApiException } from "@kubernetes/client-node";
import { scrubSecrets } from "./log.ts";

/** Reasons for codes whose answer carried no Status. */
const STATUS_TEXT: Readonly<Record<number, string>> = {
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
};

/** One line saying why a request failed, from the API server's Status when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    let status: { reason?: unknown; message?: unknown } | undefined;
    try {
      const body: unknown = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
      if (body && typeof body === "object") status = body;
    } catch {
      // not a Status: the code says enough
    }
    const reason = typeof status?.reason === "string" ? status.reason : STATUS_TEXT[err.code];
    const message = typeof status?.message === "string" ? `: ${status.message}` : "";
    return scrubSecrets(`HTTP ${err.code}${reason ? ` ${reason}` : ""}${message}`);
  }
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return scrubSecrets(`${err.message}${cause}`);
  }
  return scrubSecrets(String(err));
}
