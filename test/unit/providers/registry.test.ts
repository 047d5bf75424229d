import { describe, expect, it } from "vitest";
import { getProvider, PROVIDER_NAMES, PROVIDERS, type ProviderName } from "../../../src/providers/index.ts";

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const KEY = "sk-test-0123456789abcdefSECRETKEY";

describe("how each provider is called with a key", () => {
  const json = { accept: "application/json" };
  it.each<[ProviderName, Record<string, string>, { method: string; path: string; headers: object }]>([
    ["openai", { authorization: `Bearer ${KEY}` }, { method: "GET", path: "/v1/models", headers: json }],
    ["mistral", { authorization: `Bearer ${KEY}` }, { method: "GET", path: "/v1/models", headers: json }],
    [
      "openai-compatible",
      { authorization: `Bearer ${KEY}` },
      { method: "GET", path: "/v1/models", headers: json },
    ],
    [
      "anthropic",
      { "x-api-key": KEY, "anthropic-version": "2023-06-01" },
      { method: "GET", path: "/v1/models", headers: { ...json, "anthropic-version": "2023-06-01" } },
    ],
    // Gemini: the key in a header, never in the URL (?key= would end up in access logs).
    ["google", { "x-goog-api-key": KEY }, { method: "GET", path: "/v1beta/models", headers: json }],
  ])("%s: sends %j, probes with %j (lists models: spends no tokens)", (name, headers, probe) => {
    const profile = getProvider(name);
    expect(profile.authHeaders(KEY)).toEqual(headers);
    expect(profile.probe).toEqual(probe);
  });
});

describe.each(PROVIDER_NAMES.map((name) => [name]))("the %s profile", (name: ProviderName) => {
  const profile = getProvider(name);

  it("is registered under its own name", () => {
    expect(profile.name).toBe(name);
    expect(PROVIDERS[name]).toBe(profile);
  });

  it("lists, in lower case, exactly the headers authHeaders sets", () => {
    const headers = profile.authHeaders(KEY);
    expect(Object.keys(headers).sort()).toEqual([...profile.authHeaderNames].sort());
    for (const header of profile.authHeaderNames) expect(header).toBe(header.toLowerCase());
    expect(Object.values(headers).some((value) => value.includes(KEY))).toBe(true);
  });

  it("probes with a GET that spends no tokens and carries no key", () => {
    expect(profile.probe.method).toBe("GET");
    expect(profile.probe.path).toMatch(/^\/v1(beta)?\/models$/);
    expect(JSON.stringify(profile.probe)).not.toContain(KEY);
  });

  it("has an https default base URL, or none at all for openai-compatible", () => {
    if (name === "openai-compatible") expect(profile.defaultBaseURL).toBe("");
    else expect(profile.defaultBaseURL).toMatch(/^https:\/\/[a-z.]+$/);
  });

  it("calls a 2xx a success and leaves token counting for later", () => {
    for (const status of [200, 201, 204]) {
      const outcome = profile.classify({ status, body: '{"id":"x"}' }, NOW);
      expect(outcome).toEqual({ kind: "success", retryable: false, statusCode: status });
      expect(outcome.tokens).toBeUndefined();
    }
  });

  it.each([
    ["JSON text", '{"error":{"message":"bad key","type":"authentication_error","code":"invalid_api_key"}}'],
    ["parsed JSON", { error: { message: "bad key", type: "authentication_error", code: "invalid_api_key" } }],
    ["bytes", new TextEncoder().encode('{"error":{"message":"bad key"}}')],
    ["an HTML page", "<html><body><h1>401 Authorization Required</h1></body></html>"],
    ["plain text", "Unauthorized"],
    ["truncated JSON", '{"error":{"message":"bad'],
    ["an empty string", ""],
    ["no body", undefined],
    ["null", null],
    ["a JSON number", 42],
    ["a JSON array of strings", ["unauthorized"]],
  ])("reads a 401 answer whose body is %s", (_form, body) => {
    expect(profile.classify({ status: 401, body }, NOW)).toMatchObject({
      kind: "invalidKey",
      retryable: true,
      statusCode: 401,
    });
  });

  it.each([[400], [404], [422]])("says a %i about the request says nothing about the key", (status) => {
    expect(profile.classify({ status, body: undefined }, NOW)).toMatchObject({
      kind: "requestError",
      retryable: false,
    });
  });

  it.each([[500], [502], [503], [504], [520]])("calls a bare %i a retryable server error", (status) => {
    expect(profile.classify({ status, body: "<html>error</html>" }, NOW)).toMatchObject({
      kind: "serverError",
      retryable: true,
    });
  });

  it("calls a 408 a retryable network error", () => {
    expect(profile.classify({ status: 408 }, NOW)).toMatchObject({ kind: "networkError", retryable: true });
  });

  it("never puts the key or an Authorization value into what it produces", () => {
    const leakyBodies = [
      { error: { message: `Incorrect API key provided: ${KEY}`, type: KEY, code: KEY, param: KEY } },
      {
        type: "error",
        error: { type: KEY, message: `invalid x-api-key ${KEY}`, details: { error_code: KEY } },
      },
      { object: "error", message: KEY, type: KEY, code: KEY },
      {
        error: {
          code: 403,
          status: KEY,
          message: `Permission denied: Consumer 'api_key:${KEY}' has been suspended.`,
          details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: KEY }],
        },
      },
      `Bearer ${KEY}`,
    ];
    const headers = {
      authorization: `Bearer ${KEY}`,
      "x-api-key": KEY,
      "x-goog-api-key": KEY,
      "retry-after": KEY,
    };
    for (const status of [400, 401, 402, 403, 404, 429, 500, 503, 529]) {
      for (const body of leakyBodies) {
        const outcome = JSON.stringify(profile.classify({ status, headers, body }, NOW));
        expect(outcome).not.toContain(KEY);
        expect(outcome).not.toContain("Bearer");
      }
    }
  });
});

describe("looking up a provider", () => {
  it("has a profile for every provider name the API accepts", () => {
    expect(Object.keys(PROVIDERS).sort()).toEqual([...PROVIDER_NAMES].sort());
  });

  it.each([["nope"], ["constructor"], ["__proto__"]])("refuses the unknown name %j", (name) => {
    expect(() => getProvider(name as ProviderName)).toThrow(/unknown provider/);
  });
});
