/**
 * Signing webhook deliveries, and checking a signature as a receiver does. The scheme is
 * Stripe's and Slack's: HMAC-SHA256 with the shared signing key over `${timestamp}.${body}`,
 * the timestamp sent beside it, so a receiver can refuse a replayed (old) delivery.
 *
 *   X-KeyPool-Timestamp: 1767225600
 *   X-KeyPool-Signature: sha256=<64 hex digits>
 *
 * Each attempt is signed afresh (a retry carries the time it was sent, not the first attempt's).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { NotificationType } from "./event.ts";

/** The headers of a delivery, lower case as Node's http server presents them. */
export const HEADERS = {
  /** Unix seconds when this attempt was sent; part of what is signed. */
  timestamp: "x-keypool-timestamp",
  /** `sha256=<hex>`: present when the target has a signing key. */
  signature: "x-keypool-signature",
  /** The event's type, e.g. KeyInvalid. */
  event: "x-keypool-event",
  /** The event's id: the same on every attempt, so receivers can drop a repeat. */
  delivery: "x-keypool-delivery",
  /** 1 on the first attempt, 2 on the first retry, and so on. */
  attempt: "x-keypool-attempt",
} as const;

/** How long after its timestamp verifySignature accepts a delivery, by default (and how far ahead). */
export const DEFAULT_MAX_AGE_SECONDS = 300;

const SIGNATURE_PREFIX = "sha256=";

/** `sha256=<hex of HMAC-SHA256(signingKey, `${timestamp}.${body}`)>`. */
export function sign(signingKey: string, timestamp: string, body: string | Uint8Array): string {
  const hmac = createHmac("sha256", signingKey);
  hmac.update(`${timestamp}.`);
  hmac.update(body);
  return `${SIGNATURE_PREFIX}${hmac.digest("hex")}`;
}

export interface DeliveryHeaderInput {
  body: string;
  eventId: string;
  type: NotificationType;
  attempt: number;
  /** When the target has none, the delivery is sent unsigned (no X-KeyPool-Signature). */
  signingKey?: string | undefined;
  nowMs: number;
}

/** Every header of one attempt, content type and user agent included. */
export function deliveryHeaders(input: DeliveryHeaderInput): Record<string, string> {
  const timestamp = String(Math.floor(input.nowMs / 1000));
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "keypool-operator",
    [HEADERS.timestamp]: timestamp,
    [HEADERS.event]: input.type,
    [HEADERS.delivery]: input.eventId,
    [HEADERS.attempt]: String(input.attempt),
  };
  if (input.signingKey) headers[HEADERS.signature] = sign(input.signingKey, timestamp, input.body);
  return headers;
}

/** Why verifySignature refused a delivery. */
export const VERIFY_FAILURES = {
  /** The timestamp or signature header is absent. */
  missing: "missing_header",
  /** A header is there but not of the form the scheme sends. */
  malformed: "malformed_header",
  /** The timestamp is further from now than the maximum age (a replay, or a clock far off). */
  stale: "stale_timestamp",
  /** The signature is not the body's with this key (another key, or a changed body). */
  mismatch: "signature_mismatch",
} as const;

export type VerifyFailure = (typeof VERIFY_FAILURES)[keyof typeof VERIFY_FAILURES];
export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };

export interface VerifyInput {
  /** The raw body as received, before any JSON parsing. */
  body: string | Uint8Array;
  signingKey: string;
  /** The X-KeyPool-Timestamp header. */
  timestamp: string | null | undefined;
  /** The X-KeyPool-Signature header. */
  signature: string | null | undefined;
  /** The receiver's time, epoch milliseconds. */
  nowMs: number;
  maxAgeSeconds?: number;
}

/** Whether a delivery is signed with `signingKey` and recent; compares in constant time. */
export function verifySignature(input: VerifyInput): VerifyResult {
  const { timestamp, signature } = input;
  if (!timestamp || !signature) return { ok: false, reason: VERIFY_FAILURES.missing };
  if (!/^\d{1,15}$/.test(timestamp) || !/^sha256=[0-9a-f]{64}$/.test(signature)) {
    return { ok: false, reason: VERIFY_FAILURES.malformed };
  }
  const maxAge = input.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
  if (Math.abs(input.nowMs / 1000 - Number(timestamp)) > maxAge) {
    return { ok: false, reason: VERIFY_FAILURES.stale };
  }
  const expected = Buffer.from(sign(input.signingKey, timestamp, input.body));
  const given = Buffer.from(signature);
  // Both are "sha256=" and 64 hex digits here, so the lengths match and the compare is constant-time.
  return expected.length === given.length && timingSafeEqual(expected, given)
    ? { ok: true }
    : { ok: false, reason: VERIFY_FAILURES.mismatch };
}
