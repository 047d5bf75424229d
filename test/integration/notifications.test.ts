/**
 * Webhook notifications end to end: `keypool serve` with a pool naming a webhook (its URL and
 * signing key in a Secret of the manifests), proxied calls to the fake OpenAI that find its keys
 * revoked one after the other, and a real HTTP receiver that answers 500 to its first two
 * deliveries. The receiver gets exactly one signed message per transition (each key's Invalid,
 * the pool running dry), retried after the failures; calls that find nothing new add nothing.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifySignature } from "../../src/notify/signature.ts";
import { keyId } from "../../src/pool/identity.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { freePort } from "../support/control-plane/control-plane.ts";
import { eventually } from "../support/eventually.ts";
import { type ServeProcess, serveLayout, startServe } from "../support/serve-process.ts";

const ADMIN = "admin-token-notifications-0123";
const SIGNING_KEY = "whsec-notifications-e2e-key";
const K = { a: "sk-test-notify-e2e-a-00000001", b: "sk-test-notify-e2e-b-00000002" };

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  answer: number;
}

let dir: string;
let fake: FakeProvider;
let serve: ServeProcess;
let probesPort: number;
const received: Received[] = [];
let receiver: ReturnType<typeof createServer>;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const answer = received.length < 2 ? 500 : 204;
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), answer });
      res.writeHead(answer).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/keypool?token=secret-path`;

  fake = await startFakeProvider("openai", { [K.a]: { kind: "valid" }, [K.b]: { kind: "valid" } });
  dir = await serveLayout(
    "notifications",
    ADMIN,
    `apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: ${K.a}, b: ${K.b}}
---
apiVersion: v1
kind: Secret
metadata: {name: hooks}
stringData: {url: "${hook}", signing: ${SIGNING_KEY}}
---
apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: chat}
spec:
  provider: openai
  baseURL: "${fake.url}"
  strategy: RoundRobin
  keys: [{secretRef: {name: keys}}]
  notifications:
    webhooks:
      - name: ops
        urlSecretRef: {name: hooks, key: url}
        signingKeySecretRef: {name: hooks, key: signing}
`,
  );
  probesPort = await freePort();
  serve = await startServe(dir, { KEYPOOL_PROBES_PORT: String(probesPort) });
}, 60_000);

afterAll(async () => {
  if (serve) expect(await serve.stop()).toBe(0);
  await fake?.close();
  receiver?.closeAllConnections();
  receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

async function chat(): Promise<number> {
  const res = await fetch(`${serve.url}/proxy/default/chat/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

const accepted = () => received.filter((r) => r.answer === 204);
const events = () =>
  accepted().map((r) => JSON.parse(r.body) as { text: string; event: Record<string, unknown> });

describe("webhook notifications from keypool serve", () => {
  it("sends one signed message per transition, retried after the receiver's failures", async () => {
    expect(await chat()).toBe(200);
    fake.setKey(K.a, { kind: "invalid" });
    // a is revoked: the call fails over to b. Then a stays Invalid and more calls add nothing.
    for (let i = 0; i < 4; i++) expect(await chat()).toBe(200);
    await eventually(async () => accepted().length === 1, 20_000, 50);
    fake.setKey(K.b, { kind: "invalid" });
    expect(await chat()).toBe(401); // b revoked too: the pool has no usable key
    expect(await chat()).toBe(503);
    await eventually(async () => accepted().length === 3, 20_000, 50);
    await new Promise((r) => setTimeout(r, 500)); // nothing more comes

    expect(
      events().map((e) => [e.event["type"], (e.event["key"] as { id?: string } | undefined)?.id]),
    ).toEqual([
      ["KeyInvalid", keyId(K.a)],
      ["KeyInvalid", keyId(K.b)],
      ["PoolUnavailable", undefined],
    ]);
    // The first message was refused twice, then delivered: the same delivery id three times.
    const first = received.filter(
      (r) => r.headers["x-keypool-delivery"] === received[0]?.headers["x-keypool-delivery"],
    );
    expect(first.map((r) => [r.answer, r.headers["x-keypool-attempt"]])).toEqual([
      [500, "1"],
      [500, "2"],
      [204, "3"],
    ]);
    expect(received).toHaveLength(5);
    for (const r of received) {
      const verdict = verifySignature({
        body: r.body,
        signingKey: SIGNING_KEY,
        timestamp: r.headers["x-keypool-timestamp"] as string,
        signature: r.headers["x-keypool-signature"] as string,
        nowMs: Date.now(),
      });
      expect(verdict).toEqual({ ok: true });
      expect(r.body).not.toContain(K.a);
      expect(r.body).not.toContain(K.b);
    }
    expect(events()[0]?.text).toContain("KeyInvalid");
    const metrics = await (await fetch(`http://127.0.0.1:${probesPort}/metrics`)).text();
    expect(metrics).toMatch(
      /keypool_notifications_total\{[^}]*type="KeyInvalid"[^}]*outcome="delivered"[^}]*\} 2/,
    );
    expect(metrics).toMatch(
      /keypool_notifications_total\{[^}]*type="KeyInvalid"[^}]*outcome="retried"[^}]*\} 2/,
    );
    expect(serve.output()).not.toContain("secret-path");
  });
});
