/**
 * Pool references taken from request paths: each segment percent-decoded and checked as a
 * Kubernetes name, so odd segments get a clear 400 instead of reaching a lookup. Shared by the
 * dispensing API, the key-pool-manager routes and the proxy.
 */
import { KUBE_NAME_RE } from "../api/keypool.ts";
import { KeyPoolError } from "./errors.ts";

/** `value` when it is a valid Kubernetes name, else an invalid_request naming `what`. */
export function kubeName(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length > 253 || !KUBE_NAME_RE.test(value)) {
    throw new KeyPoolError("invalid_request", `"${String(value).slice(0, 64)}" is not a valid ${what} name`);
  }
  return value;
}

/** A raw path segment, percent-decoded (left as it is when the encoding is broken), then checked. */
export function nameSegment(segment: string | undefined, what: string): string {
  return kubeName(decodeSegment(segment), what);
}

function decodeSegment(segment: string | undefined): string {
  if (segment === undefined || !segment.includes("%")) return segment ?? "";
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
