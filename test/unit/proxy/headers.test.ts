import type { IncomingHttpHeaders } from "node:http";
import { describe, expect, it } from "vitest";
import {
  callerCredential,
  downstreamHeaders,
  resetDuration,
  upstreamHeaders,
} from "../../../src/proxy/headers.ts";

const CALLER_TOKEN = "eyJhbGciOiJSUzI1NiJ9.caller-service-account-token.sig";
const PROVIDER_KEY = "sk-test-provider-0123456789abcdef";

const noQuery = new URLSearchParams();

describe("callerCredential", () => {
  it("reads an OpenAI SDK's Authorization: Bearer token", () => {
    expect(callerCredential({ authorization: `Bearer ${CALLER_TOKEN}` }, noQuery)).toEqual({
      token: CALLER_TOKEN,
      from: "authorization",
    });
  });

  it("accepts any case of the Bearer scheme and surrounding blanks", () => {
    expect(callerCredential({ authorization: `  bearer   ${CALLER_TOKEN}  ` }, noQuery)).toEqual({
      token: CALLER_TOKEN,
      from: "authorization",
    });
  });

  it("reads an Anthropic SDK's x-api-key, trimmed", () => {
    expect(callerCredential({ "x-api-key": `  ${CALLER_TOKEN} ` }, noQuery)).toEqual({
      token: CALLER_TOKEN,
      from: "x-api-key",
    });
  });

  it("reads a Google SDK's x-goog-api-key, trimmed", () => {
    expect(callerCredential({ "x-goog-api-key": `${CALLER_TOKEN}\t` }, noQuery)).toEqual({
      token: CALLER_TOKEN,
      from: "x-goog-api-key",
    });
  });

  it("reads ?key= when no header carries a credential", () => {
    expect(callerCredential({}, new URLSearchParams({ key: CALLER_TOKEN, alt: "sse" }))).toEqual({
      token: CALLER_TOKEN,
      from: "query",
    });
  });

  it("takes the first value of a repeated header", () => {
    const headers = { "x-api-key": [CALLER_TOKEN, "other-token"] } as unknown as IncomingHttpHeaders;
    expect(callerCredential(headers, noQuery)).toEqual({ token: CALLER_TOKEN, from: "x-api-key" });
  });

  describe("order: Authorization, x-api-key, x-goog-api-key, ?key=", () => {
    const query = new URLSearchParams({ key: "from-query" });
    it.each<[string, IncomingHttpHeaders, string, string]>([
      [
        "Authorization beats all",
        { authorization: "Bearer from-auth", "x-api-key": "from-x-api-key", "x-goog-api-key": "from-goog" },
        "from-auth",
        "authorization",
      ],
      [
        "x-api-key beats x-goog-api-key and ?key=",
        { "x-api-key": "from-x-api-key", "x-goog-api-key": "from-goog" },
        "from-x-api-key",
        "x-api-key",
      ],
      ["x-goog-api-key beats ?key=", { "x-goog-api-key": "from-goog" }, "from-goog", "x-goog-api-key"],
      ["?key= comes last", {}, "from-query", "query"],
    ])("%s", (_name, headers, token, from) => {
      expect(callerCredential(headers, query)).toEqual({ token, from });
    });
  });

  it("an empty x-api-key or x-goog-api-key is passed over", () => {
    expect(
      callerCredential({ "x-api-key": "", "x-goog-api-key": "" }, new URLSearchParams({ key: "q" })),
    ).toEqual({ token: "q", from: "query" });
  });

  it("an Authorization header that is not Bearer gives no token, and other places are not tried", () => {
    expect(
      callerCredential(
        { authorization: "Basic dXNlcjpwYXNz", "x-api-key": CALLER_TOKEN },
        new URLSearchParams({ key: CALLER_TOKEN }),
      ),
    ).toEqual({ token: undefined, from: "authorization" });
  });

  it("says none when nothing was sent", () => {
    expect(callerCredential({ "content-type": "application/json" }, noQuery)).toEqual({
      token: undefined,
      from: undefined,
    });
    expect(callerCredential({}, new URLSearchParams({ key: "" }))).toEqual({
      token: undefined,
      from: undefined,
    });
  });
});

describe("upstreamHeaders", () => {
  const openaiAuth = { authorization: `Bearer ${PROVIDER_KEY}` };

  it("passes ordinary request headers through unchanged", () => {
    const out = upstreamHeaders(
      {
        "content-type": "application/json",
        "user-agent": "OpenAI/JS 6.0.0",
        "openai-organization": "org-123",
        "x-stainless-lang": "js",
        accept: "text/event-stream",
      },
      openaiAuth,
      undefined,
    );
    expect(out).toMatchObject({
      "content-type": "application/json",
      "user-agent": "OpenAI/JS 6.0.0",
      "openai-organization": "org-123",
      "x-stainless-lang": "js",
      accept: "text/event-stream",
    });
  });

  it("keeps repeated header values as arrays", () => {
    const out = upstreamHeaders(
      { "x-custom-multi": ["one", "two"] } as unknown as IncomingHttpHeaders,
      openaiAuth,
      undefined,
    );
    expect(out["x-custom-multi"]).toEqual(["one", "two"]);
  });

  it("drops hop-by-hop headers", () => {
    const out = upstreamHeaders(
      {
        connection: "keep-alive",
        "keep-alive": "timeout=5",
        "proxy-authenticate": "Basic",
        "proxy-authorization": "Basic abc",
        "proxy-connection": "keep-alive",
        te: "trailers",
        trailer: "x-checksum",
        "transfer-encoding": "chunked",
        upgrade: "websocket",
        "content-type": "application/json",
      },
      openaiAuth,
      undefined,
    );
    for (const name of [
      "connection",
      "keep-alive",
      "proxy-authenticate",
      "proxy-authorization",
      "proxy-connection",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
    ]) {
      expect(out, name).not.toHaveProperty(name);
    }
    expect(out["content-type"]).toBe("application/json");
  });

  it("drops headers the Connection header lists (any case, any spacing)", () => {
    const out = upstreamHeaders(
      {
        connection: "keep-alive,  X-Hop-One ,x-hop-two",
        "x-hop-one": "1",
        "x-hop-two": "2",
        "x-end-to-end": "3",
      },
      openaiAuth,
      undefined,
    );
    expect(out).not.toHaveProperty("x-hop-one");
    expect(out).not.toHaveProperty("x-hop-two");
    expect(out["x-end-to-end"]).toBe("3");
  });

  it("never forwards the caller's credential, wherever the SDK put it", () => {
    const out = upstreamHeaders(
      {
        authorization: `Bearer ${CALLER_TOKEN}`,
        "x-api-key": CALLER_TOKEN,
        "x-goog-api-key": CALLER_TOKEN,
        "api-key": CALLER_TOKEN,
      },
      {},
      undefined,
    );
    expect(out).not.toHaveProperty("authorization");
    expect(out).not.toHaveProperty("x-api-key");
    expect(out).not.toHaveProperty("x-goog-api-key");
    expect(out).not.toHaveProperty("api-key");
    expect(JSON.stringify(out)).not.toContain(CALLER_TOKEN);
  });

  it("drops host, content-length, expect and the caller's accept-encoding", () => {
    const out = upstreamHeaders(
      {
        host: "keypool.keypool-system.svc:8080",
        "content-length": "999",
        expect: "100-continue",
        "accept-encoding": "gzip, br",
      },
      openaiAuth,
      undefined,
    );
    expect(out).not.toHaveProperty("host");
    expect(out).not.toHaveProperty("content-length");
    expect(out).not.toHaveProperty("expect");
    expect(out["accept-encoding"]).toBe("identity");
  });

  it("drops keypool's own x-keypool-* headers", () => {
    const out = upstreamHeaders(
      { "x-keypool-session": "abc", "x-keypool-max-wait": "10s", "x-keypoolish": "kept" },
      openaiAuth,
      undefined,
    );
    expect(out).not.toHaveProperty("x-keypool-session");
    expect(out).not.toHaveProperty("x-keypool-max-wait");
    expect(out["x-keypoolish"]).toBe("kept");
  });

  it("sets the key's auth headers in place of the caller's credential", () => {
    expect(
      upstreamHeaders({ authorization: `Bearer ${CALLER_TOKEN}` }, openaiAuth, undefined).authorization,
    ).toBe(`Bearer ${PROVIDER_KEY}`);
    expect(
      upstreamHeaders({ "x-api-key": CALLER_TOKEN }, { "x-api-key": PROVIDER_KEY }, undefined)["x-api-key"],
    ).toBe(PROVIDER_KEY);
    expect(
      upstreamHeaders({ "x-goog-api-key": CALLER_TOKEN }, { "x-goog-api-key": PROVIDER_KEY }, undefined)[
        "x-goog-api-key"
      ],
    ).toBe(PROVIDER_KEY);
    expect(
      upstreamHeaders({ "api-key": CALLER_TOKEN }, { "api-key": PROVIDER_KEY }, undefined)["api-key"],
    ).toBe(PROVIDER_KEY);
  });

  it("a caller's credential in another header than the key's is dropped, not kept beside it", () => {
    const out = upstreamHeaders(
      { authorization: `Bearer ${CALLER_TOKEN}` },
      { "x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01" },
      undefined,
    );
    expect(out).not.toHaveProperty("authorization");
    expect(out["x-api-key"]).toBe(PROVIDER_KEY);
  });

  it("a non-credential header the key's auth also sets (anthropic-version) keeps the caller's value", () => {
    const auth = { "x-api-key": PROVIDER_KEY, "anthropic-version": "2023-06-01" };
    expect(upstreamHeaders({ "anthropic-version": "2024-10-22" }, auth, undefined)["anthropic-version"]).toBe(
      "2024-10-22",
    );
    expect(upstreamHeaders({}, auth, undefined)["anthropic-version"]).toBe("2023-06-01");
  });

  it("always asks for an uncompressed answer", () => {
    expect(upstreamHeaders({}, openaiAuth, undefined)["accept-encoding"]).toBe("identity");
    expect(upstreamHeaders({ "accept-encoding": "gzip" }, openaiAuth, 10)["accept-encoding"]).toBe(
      "identity",
    );
  });

  it("sets content-length from the body length it is given, not from the caller", () => {
    expect(upstreamHeaders({ "content-length": "5" }, openaiAuth, 42)["content-length"]).toBe("42");
    expect(upstreamHeaders({}, openaiAuth, 0)["content-length"]).toBe("0");
    expect(upstreamHeaders({ "content-length": "5" }, openaiAuth, undefined)).not.toHaveProperty(
      "content-length",
    );
  });

  it("does not change the caller's headers object", () => {
    const incoming: IncomingHttpHeaders = { authorization: `Bearer ${CALLER_TOKEN}`, host: "h" };
    const before = { ...incoming };
    upstreamHeaders(incoming, openaiAuth, 1);
    expect(incoming).toEqual(before);
  });
});

describe("downstreamHeaders", () => {
  it("passes the provider's ordinary headers through", () => {
    const out = downstreamHeaders({
      "content-type": "text/event-stream",
      "x-request-id": "req_123",
      "retry-after": "20",
      "openai-processing-ms": "200",
      "set-cookie": ["a=1", "b=2"],
    });
    expect(out).toEqual({
      "content-type": "text/event-stream",
      "x-request-id": "req_123",
      "retry-after": "20",
      "openai-processing-ms": "200",
      "set-cookie": ["a=1", "b=2"],
    });
  });

  it("drops hop-by-hop headers and those the Connection header lists", () => {
    const out = downstreamHeaders({
      connection: "keep-alive, X-Upstream-Hop",
      "keep-alive": "timeout=5",
      "transfer-encoding": "chunked",
      trailer: "x-checksum",
      upgrade: "h2c",
      "x-upstream-hop": "1",
      "content-type": "application/json",
    });
    expect(out).toEqual({ "content-type": "application/json" });
  });

  it("drops the provider's per-key x-ratelimit-* headers", () => {
    const out = downstreamHeaders({
      "x-ratelimit-limit-requests": "500",
      "x-ratelimit-remaining-requests": "499",
      "x-ratelimit-reset-requests": "120ms",
      "x-ratelimit-limit-tokens": "30000",
      "x-ratelimit-remaining-tokens": "29000",
      "x-ratelimit-reset-tokens": "2s",
      "anthropic-ratelimit-requests-remaining": "10",
      "content-type": "application/json",
    });
    expect(out).toEqual({
      "anthropic-ratelimit-requests-remaining": "10",
      "content-type": "application/json",
    });
  });
});

describe("resetDuration", () => {
  it.each<[number, string]>([
    [0, "0s"],
    [-500, "0s"],
    [0.2, "1ms"],
    [20, "20ms"],
    [999, "999ms"],
    [1000, "1s"],
    [1001, "2s"],
    [59_000, "59s"],
    [60_000, "1m0s"],
    [360_000, "6m0s"],
    [61_500, "1m2s"],
    [3_600_000, "1h0m0s"],
    [3_723_000, "1h2m3s"],
    [90_000_000, "25h0m0s"],
  ])("%d ms is %s", (ms, text) => {
    expect(resetDuration(ms)).toBe(text);
  });
});
