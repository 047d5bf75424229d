/**
 * Helpers for the shared-state tests (several replicas on one Redis, test/integration/shared-*):
 * dispense, report and read a pool on any replica's base URL, read a metric from a probes port,
 * and a tiny OpenAI-shaped upstream that answers every chat completion with a fixed token usage
 * (the fakes in test/fakes count tokens from the text, which makes exact window sums awkward).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** What one GET /v1/pools/{ns}/{pool}/key answered. */
export interface Dispensed {
  status: number;
  /** error.code of a refusal. */
  code: string | undefined;
  /** The Retry-After header of a refusal. */
  retryAfter: string | null;
  keyId: string | undefined;
  leaseId: string | undefined;
  /** The whole body, for assertion messages. */
  body: Record<string, unknown>;
}

export async function dispenseAt(url: string, namespace: string, pool: string): Promise<Dispensed> {
  const res = await fetch(`${url}/v1/pools/${namespace}/${pool}/key`);
  const body = (await res.json()) as Record<string, unknown>;
  const error = body.error as { code?: string } | undefined;
  return {
    status: res.status,
    code: error?.code,
    retryAfter: res.headers.get("retry-after"),
    keyId: typeof body.keyId === "string" ? body.keyId : undefined,
    leaseId: typeof body.leaseId === "string" ? body.leaseId : undefined,
    body,
  };
}

export async function reportAt(
  url: string,
  namespace: string,
  pool: string,
  report: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/v1/pools/${namespace}/${pool}/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(report),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** One key of GET /v1/pools/{ns}/{pool}. */
export interface KeyView {
  id: string;
  state: string;
  until?: string;
  inFlight: number;
  requests: number;
}

export async function poolViewAt(url: string, namespace: string, pool: string): Promise<KeyView[]> {
  const res = await fetch(`${url}/v1/pools/${namespace}/${pool}`);
  if (!res.ok) throw new Error(`GET pool ${namespace}/${pool}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { keyStatuses: KeyView[] }).keyStatuses;
}

/** The value of an unlabelled metric on a /metrics page; undefined when it is not there. */
export async function metricValue(probesUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${probesUrl}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

export interface FixedUsageUpstream {
  /** http://127.0.0.1:<port>: a KeyPool's spec.baseURL. */
  url: string;
  /** Chat completions answered so far. */
  readonly calls: number;
  close(): Promise<void>;
}

/** POST /v1/chat/completions → 200 with `usage.total_tokens: totalTokens`; anything else 404. */
export async function startFixedUsageUpstream(totalTokens: number): Promise<FixedUsageUpstream> {
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method !== "POST" || !req.url?.startsWith("/v1/chat/completions")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "not found", type: "invalid_request_error" } }));
        return;
      }
      calls++;
      const body = JSON.stringify({
        id: `chatcmpl-${calls}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: "gpt-4o-mini",
        choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
        usage: { prompt_tokens: totalTokens - 1, completion_tokens: 1, total_tokens: totalTokens },
      });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close").catch(() => undefined);
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
