import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  deliveryHeaders,
  HEADERS,
  sign,
  type VerifyInput,
  verifySignature,
} from "../../../src/notify/signature.ts";

const KEY = "whsec-test-signing-key";
const BODY = '{"text":"hello","version":1}';
const NOW_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const TIMESTAMP = "1767225600";

describe("signing a delivery", () => {
  it("is sha256= and the hex HMAC-SHA256 of `${timestamp}.${body}`", () => {
    const hex = createHmac("sha256", KEY).update(`${TIMESTAMP}.${BODY}`).digest("hex");
    expect(sign(KEY, TIMESTAMP, BODY)).toBe(`sha256=${hex}`);
  });

  it("signs bytes as it signs the same text", () => {
    expect(sign(KEY, TIMESTAMP, Buffer.from(BODY))).toBe(sign(KEY, TIMESTAMP, BODY));
  });

  it("sends every header, signed with the time of the attempt", () => {
    const headers = deliveryHeaders({
      body: BODY,
      eventId: "ev-1",
      type: "PoolUnavailable",
      attempt: 2,
      signingKey: KEY,
      nowMs: NOW_MS + 999,
    });
    expect(headers).toEqual({
      "content-type": "application/json",
      "user-agent": "keypool-operator",
      "x-keypool-timestamp": TIMESTAMP,
      "x-keypool-event": "PoolUnavailable",
      "x-keypool-delivery": "ev-1",
      "x-keypool-attempt": "2",
      "x-keypool-signature": sign(KEY, TIMESTAMP, BODY),
    });
  });

  it("sends no signature without a signing key", () => {
    const headers = deliveryHeaders({
      body: BODY,
      eventId: "ev-1",
      type: "KeyAlert",
      attempt: 1,
      nowMs: NOW_MS,
    });
    expect(headers).not.toHaveProperty(HEADERS.signature);
    expect(headers[HEADERS.timestamp]).toBe(TIMESTAMP);
  });
});

describe("verifying a signature", () => {
  const good: VerifyInput = {
    body: BODY,
    signingKey: KEY,
    timestamp: TIMESTAMP,
    signature: sign(KEY, TIMESTAMP, BODY),
    nowMs: NOW_MS,
  };

  it.each<{ name: string; change: Partial<VerifyInput>; result: ReturnType<typeof verifySignature> }>([
    { name: "accepts the signed body", change: {}, result: { ok: true } },
    { name: "accepts the body as bytes", change: { body: Buffer.from(BODY) }, result: { ok: true } },
    { name: "accepts it 300 s later", change: { nowMs: NOW_MS + 300_000 }, result: { ok: true } },
    {
      name: "refuses it 301 s later",
      change: { nowMs: NOW_MS + 301_000 },
      result: { ok: false, reason: "stale_timestamp" },
    },
    {
      name: "refuses a timestamp far ahead of the receiver's clock",
      change: { nowMs: NOW_MS - 301_000 },
      result: { ok: false, reason: "stale_timestamp" },
    },
    {
      name: "takes a maximum age of its own",
      change: { nowMs: NOW_MS + 3_600_000, maxAgeSeconds: 7_200 },
      result: { ok: true },
    },
    {
      name: "refuses another key",
      change: { signingKey: "another-key" },
      result: { ok: false, reason: "signature_mismatch" },
    },
    {
      name: "refuses a changed body",
      change: { body: BODY.replace("hello", "hellO") },
      result: { ok: false, reason: "signature_mismatch" },
    },
    {
      name: "refuses a signature moved to another timestamp",
      change: { timestamp: "1767225601" },
      result: { ok: false, reason: "signature_mismatch" },
    },
    {
      name: "refuses a missing signature",
      change: { signature: null },
      result: { ok: false, reason: "missing_header" },
    },
    {
      name: "refuses a missing timestamp",
      change: { timestamp: undefined },
      result: { ok: false, reason: "missing_header" },
    },
    {
      name: "refuses a signature of another form",
      change: { signature: "v1=abc" },
      result: { ok: false, reason: "malformed_header" },
    },
    {
      name: "refuses a truncated signature",
      change: { signature: sign(KEY, TIMESTAMP, BODY).slice(0, -2) },
      result: { ok: false, reason: "malformed_header" },
    },
    {
      name: "refuses a timestamp that is not unix seconds",
      change: { timestamp: "2026-01-01T00:00:00Z" },
      result: { ok: false, reason: "malformed_header" },
    },
  ])("$name", ({ change, result }) => {
    expect(verifySignature({ ...good, ...change })).toEqual(result);
  });
});

describe("README's worked example", () => {
  it("is the signature of its example body, so receivers can check their code against it", async () => {
    const { readFile } = await import("node:fs/promises");
    const readme = await readFile(new URL("../../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("### The body"));
    const json = /```json\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    const compact = JSON.stringify(JSON.parse(json));
    const header = /`(sha256=[0-9a-f]{64})`/.exec(section)?.[1];
    expect(sign("example-signing-key", "1767225600", compact)).toBe(header);
  });
});
