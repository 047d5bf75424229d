import { describe, expect, it } from "vitest";
import type { ProxyBody } from "../../../src/proxy/body.ts";
import {
  MAX_MODEL_LENGTH,
  ModelScanner,
  modelOfJson,
  modelOfPath,
  requestModel,
} from "../../../src/proxy/model.ts";

const json = (text: string) => modelOfJson(Buffer.from(text, "utf8"));

/** The model a scanner finds in `text` fed in pieces of `size` bytes. */
function scanned(text: string, size: number): string | undefined {
  const bytes = Buffer.from(text, "utf8");
  const scanner = new ModelScanner();
  for (let i = 0; i < bytes.length; i += size) scanner.push(bytes.subarray(i, i + size));
  return scanner.model;
}

const buffered = (value: unknown): ProxyBody => ({
  kind: "buffered",
  bytes: Buffer.from(typeof value === "string" ? value : JSON.stringify(value)),
});

/** Bodies as the SDKs send them: openai-node puts model first, openai-python and anthropic-python after messages. */
const OPENAI_NODE = JSON.stringify({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: 'Say "hello" \\ then {"model": "gpt-4o"}' }],
  stream: true,
  stream_options: { include_usage: true },
});
const OPENAI_PYTHON = JSON.stringify({
  messages: [
    { role: "system", content: 'You are terse.\nAnswer in JSON like {"model":"x"}.' },
    { role: "user", content: "Hi ✓ 日本" },
  ],
  model: "gpt-4.1-mini",
  tools: [
    {
      type: "function",
      function: {
        name: "pick",
        parameters: { type: "object", properties: { model: { type: "string", enum: ["a", "b"] } } },
      },
    },
  ],
  metadata: { model: "not-this-one" },
});
const ANTHROPIC_PYTHON = JSON.stringify({
  max_tokens: 1024,
  messages: [
    {
      role: "user",
      content: [{ type: "text", text: "model: claude", cache_control: { type: "ephemeral" } }],
    },
  ],
  model: "claude-sonnet-4-5",
  system: [{ type: "text", text: "Be brief." }],
});

describe("modelOfJson: a request body's top-level model", () => {
  it.each<[string, string, string | undefined]>([
    ["openai-node: model first", OPENAI_NODE, "gpt-4o-mini"],
    ["openai-python: model after messages, nested `model`s ignored", OPENAI_PYTHON, "gpt-4.1-mini"],
    ["anthropic-python: model after content blocks", ANTHROPIC_PYTHON, "claude-sonnet-4-5"],
    [
      "Mistral",
      '{"model":"mistral-large-latest","messages":[{"role":"user","content":"hi"}]}',
      "mistral-large-latest",
    ],
    ["whitespace everywhere", ' \r\n\t{ "model" :\n "gpt-4o" , "n" : 1 }\n', "gpt-4o"],
    ["an escaped key and value", '{"mod\\u0065l":"gpt\\u002d4o"}', "gpt-4o"],
    ["a model name with an escaped quote", '{"model":"we\\"ird"}', 'we"ird'],
    [
      "the last of duplicate keys, as the providers' parsers take it",
      '{"model":"cheap","model":"dear"}',
      "dear",
    ],
    ["no model", '{"messages":[{"role":"user","content":"hi"}]}', undefined],
    ["model only nested", '{"request":{"model":"gpt-4o"}}', undefined],
    ["model only inside a string", '{"input":"{\\"model\\":\\"gpt-4o\\"}"}', undefined],
    ["model only as a value", '{"name":"model","other":"x"}', undefined],
    ["model not a string", '{"model":42}', undefined],
    ["model null", '{"model":null}', undefined],
    ["model an object", '{"model":{"id":"gpt-4o"}}', undefined],
    ["model an array", '{"model":["gpt-4o"]}', undefined],
    ["an empty model", '{"model":""}', undefined],
    ["a last invalid model after a valid one", '{"model":"gpt-4o","model":7}', undefined],
    ["a too long model", `{"model":"${"m".repeat(MAX_MODEL_LENGTH + 1)}"}`, undefined],
    [
      "a model of the longest length",
      `{"model":"${"m".repeat(MAX_MODEL_LENGTH)}"}`,
      "m".repeat(MAX_MODEL_LENGTH),
    ],
    ["a broken escape", '{"model":"gpt\\x"}', undefined],
    ["a JSON array", '[{"model":"gpt-4o"}]', undefined],
    ["text", "model=gpt-4o", undefined],
    ["form data", "model=gpt-4o&prompt=hi", undefined],
    ["empty", "", undefined],
    ["keys after the object ends are not read", '{"a":1} {"model":"gpt-4o"}', undefined],
    ["a backslash run before a quote ends the string when even", '{"a":"x\\\\","model":"gpt-4o"}', "gpt-4o"],
  ])("%s", (_name, body, model) => {
    expect(json(body)).toBe(model);
  });

  it.each([
    OPENAI_NODE,
    OPENAI_PYTHON,
    ANTHROPIC_PYTHON,
    '{"mod\\u0065l":"gpt\\u002d4o"}',
    '{"a":"x\\\\\\"y","model":"m"}',
  ])("finds the same model however the body is cut into chunks: %s", (body) => {
    const whole = json(body);
    expect(whole).toBeDefined();
    for (const size of [1, 2, 3, 5, 7, 16, 64]) expect(scanned(body, size), `chunks of ${size}`).toBe(whole);
  });

  it("reads a body far larger than any held part without keeping it", () => {
    const big = JSON.stringify({
      messages: Array.from({ length: 2000 }, (_, i) => ({ role: "user", content: `"${i}" \\ `.repeat(50) })),
      model: "gpt-4o",
    });
    expect(big.length).toBeGreaterThan(1024 * 1024);
    expect(scanned(big, 64 * 1024)).toBe("gpt-4o");
  });

  it("drops a key or model name cut by chunks when it runs over the limit", () => {
    expect(scanned(`{"model":"${"m".repeat(5000)}"}`, 100)).toBeUndefined();
    expect(scanned(`{"${"k".repeat(5000)}":1,"model":"ok"}`, 100)).toBe("ok");
  });
});

describe("modelOfPath: Gemini's model in the path", () => {
  it.each<[string, string | undefined]>([
    ["/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash"],
    ["/v1beta/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro"],
    ["/v1/models/gemini-2.0-flash-001:generateContent", "gemini-2.0-flash-001"],
    ["/v1beta/models/text-embedding-004:embedContent", "text-embedding-004"],
    [
      "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
      "gemini-2.5-flash",
    ],
    ["/v1beta/models", undefined],
    ["/v1beta/models/gemini-2.5-flash", undefined],
    ["/v1beta/openai/chat/completions", undefined],
    ["/v1/chat/completions", undefined],
  ])("%s: %s", (path, model) => {
    expect(modelOfPath(path)).toBe(model);
  });
});

describe("requestModel: where each provider names the model", () => {
  it("reads the body for OpenAI, Anthropic, Mistral and OpenAI-compatible APIs", () => {
    for (const provider of ["openai", "anthropic", "mistral", "openai-compatible"] as const)
      expect(requestModel(provider, "/v1/chat/completions", buffered({ model: "m-1" })), provider).toBe(
        "m-1",
      );
  });

  it("reads Gemini's path first, its body for the OpenAI-compatible endpoint", () => {
    const path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    expect(requestModel("google", path, buffered({ contents: [] }))).toBe("gemini-2.5-flash");
    expect(requestModel("google", path, { kind: "none" })).toBe("gemini-2.5-flash");
    expect(
      requestModel("google", "/v1beta/openai/chat/completions", buffered({ model: "gemini-2.5-pro" })),
    ).toBe("gemini-2.5-pro");
  });

  it("does not take a model from an OpenAI path", () => {
    expect(
      requestModel("openai", "/v1beta/models/gemini-2.5-flash:generateContent", { kind: "none" }),
    ).toBeUndefined();
  });

  it("gives no model for no body, and leaves a streamed body to a scanner", () => {
    expect(requestModel("openai", "/v1/chat/completions", { kind: "none" })).toBeUndefined();
    const streamed: ProxyBody = {
      kind: "streamed",
      length: undefined,
      take: () => {
        throw new Error("not read here");
      },
    };
    expect(requestModel("openai", "/v1/chat/completions", streamed)).toBeUndefined();
  });
});
