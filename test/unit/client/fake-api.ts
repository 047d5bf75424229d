/**
 * A tiny stand-in for the dispensing API on 127.0.0.1:0, for the client's unit tests: keys handed
 * out in turn (minus `?exclude=`), reports recorded, bearer tokens checked when `tokens` is set,
 * and any answer replaceable per test with `answer`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

export interface FakeKey {
  key: string;
  keyId: string;
  /** No key is usable (no_usable_key) while this is true. */
  resting?: boolean;
}

export interface FakeApi {
  url: string;
  requests: Recorded[];
  keys: FakeKey[];
  /** Accepted bearer tokens; undefined: no auth. */
  tokens: Set<string> | undefined;
  /** Retry-After of no_usable_key, in seconds. */
  retryAfterSeconds: number;
  /** Answers the next requests instead of the fake's logic, first come first used. */
  answer: Array<(req: Recorded, res: ServerResponse) => void>;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

export async function startFakeApi(keys: FakeKey[]): Promise<FakeApi> {
  let turn = 0;
  let lease = 0;
  const api: Omit<FakeApi, "url" | "close"> = {
    requests: [],
    keys,
    tokens: undefined,
    retryAfterSeconds: 7,
    answer: [],
  };
  const handle = (req: Recorded, res: ServerResponse) => {
    const scripted = api.answer.shift();
    if (scripted) return scripted(req, res);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (api.tokens && (!token || !api.tokens.has(token)))
      return json(res, 401, { error: { code: "unauthenticated", message: "Send a valid bearer token" } });
    const url = new URL(req.url, "http://x");
    const match = /^\/v1\/pools\/([^/]+)\/([^/]+)\/(key|report)$/.exec(url.pathname);
    if (!match) return json(res, 404, { error: { code: "not_found", message: "No endpoint" } });
    const pool = { namespace: decodeURIComponent(match[1] ?? ""), name: decodeURIComponent(match[2] ?? "") };
    if (pool.name === "missing")
      return json(res, 404, { error: { code: "pool_not_found", message: "KeyPool not found" } });
    if (match[3] === "report") {
      const body = req.body as { keyId?: string; leaseId?: string };
      const keyId = body.keyId ?? /^lease-\d+-(.+)$/.exec(body.leaseId ?? "")?.[1] ?? "";
      return json(res, 200, { keyId, state: "Healthy" });
    }
    const exclude = new Set((url.searchParams.get("exclude") ?? "").split(",").filter(Boolean));
    const usable = api.keys.filter((k) => !k.resting && !exclude.has(k.keyId));
    const picked = usable[turn++ % Math.max(1, usable.length)];
    if (!picked)
      return json(
        res,
        503,
        {
          error: {
            code: "no_usable_key",
            message: `No usable key in ${pool.namespace}/${pool.name}`,
            retryAfterSeconds: api.retryAfterSeconds,
          },
        },
        { "retry-after": String(api.retryAfterSeconds) },
      );
    return json(res, 200, {
      key: picked.key,
      keyId: picked.keyId,
      leaseId: `lease-${++lease}-${picked.keyId}`,
      pool,
      strategy: "RoundRobin",
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
  };
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (chunk: Buffer) => (raw += chunk.toString()));
    req.on("end", () => {
      const recorded: Recorded = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
      };
      api.requests.push(recorded);
      handle(recorded, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(api, {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
