/**
 * The proxy stays inside its pool's base URL: a caller who may use one deployment behind a
 * gateway must not reach another with the pool's key. `keypool serve` proxies to a fake OpenAI
 * served under a path prefix (as behind a gateway or an Azure-style base URL); requests are sent
 * with raw paths (node:http sends them as written; fetch and curl would normalise them first).
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { freePort } from "../support/control-plane/control-plane.ts";
import { type ServeProcess, spawnServe } from "../support/serve-process.ts";

const KEY = "sk-test-proxy-path-aaaaaaaaaaaa";
let fake: FakeProvider;
let server: ServeProcess;

/** A request with `path` exactly as written. */
function raw(
  path: string,
  method = "POST",
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path, method, headers: { "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("error", reject);
    req.end(
      method === "POST"
        ? JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
        : undefined,
    );
  });
}

beforeAll(async () => {
  fake = await startFakeProvider("openai", { [KEY]: { kind: "valid" } }, { basePath: "/gw/team-a" });
  const port = await freePort();
  server = await spawnServe(
    ["--port", String(port)],
    { OA_KEYS: KEY, OA_PROVIDER: "openai", OA_BASE_URL: fake.url },
    port,
  );
});

afterAll(async () => {
  await server?.stop();
  await fake?.close();
});

describe("proxy path confinement", () => {
  it("a normal path under a prefixed base URL reaches the provider below that prefix", async () => {
    const answer = await raw("/proxy/default/oa/v1/chat/completions");
    expect(answer.status).toBe(200);
    expect(fake.requests.map((r) => r.path)).toEqual(["/gw/team-a/v1/chat/completions"]);
    expect(fake.requests[0]?.key).toBe(KEY);
    fake.reset();
  });

  it.each([
    ["dot-dot segments", "/proxy/default/oa/v1/../../admin/x"],
    ["dot-dot up to the prefix's sibling", "/proxy/default/oa/../team-b/v1/chat/completions"],
    ["a trailing dot-dot", "/proxy/default/oa/v1/chat/completions/.."],
    ["a dot segment", "/proxy/default/oa/v1/./chat/completions"],
    ["percent-encoded dots", "/proxy/default/oa/v1/%2e%2e/%2e%2e/admin/x"],
    ["upper-case percent-encoded dots", "/proxy/default/oa/v1/%2E%2E/admin"],
    ["half-encoded dots", "/proxy/default/oa/v1/.%2e/admin"],
    ["an encoded slash", "/proxy/default/oa/v1/..%2f..%2fadmin"],
    ["an encoded slash inside a segment", "/proxy/default/oa/v1%2F..%2F..%2Fadmin"],
    ["a backslash", "/proxy/default/oa/v1/..\\..\\admin"],
    ["an encoded backslash", "/proxy/default/oa/v1/%5c..%5cadmin"],
    ["a broken percent-encoding", "/proxy/default/oa/v1/%e0%2e/x"],
  ])("%s: 400 invalid_path, and the provider sees no call", async (_name, path) => {
    const answer = await raw(path);
    expect(answer.status).toBe(400);
    expect(answer.headers["x-keypool-error"]).toBe("invalid_path");
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "invalid_path" } });
    expect(answer.body).not.toContain(KEY);
    expect(fake.requests).toEqual([]);
  });

  it("the next normal call still works", async () => {
    expect((await raw("/proxy/default/oa/v1/chat/completions")).status).toBe(200);
    expect(fake.requests.map((r) => r.path)).toEqual(["/gw/team-a/v1/chat/completions"]);
    expect(server.output()).not.toContain(KEY);
  });
});
