import { describe, expect, it } from "vitest";
import { providerUrl } from "../../../src/providers/url.ts";

describe("joining a base URL and a provider path", () => {
  it.each([
    ["https://api.openai.com", "/v1/models", "https://api.openai.com/v1/models"],
    ["http://vllm.ai.svc:8000/v1", "/v1/models", "http://vllm.ai.svc:8000/v1/models"],
    ["http://vllm.ai.svc:8000/v1/", "/v1/chat/completions", "http://vllm.ai.svc:8000/v1/chat/completions"],
    ["https://gw.example/openai", "/v1/models", "https://gw.example/openai/v1/models"],
    ["http://127.0.0.1:9999", "/v1beta/models?pageSize=1", "http://127.0.0.1:9999/v1beta/models?pageSize=1"],
  ])("%s + %s = %s", (base, path, expected) => {
    expect(providerUrl(base, path).toString()).toBe(expected);
  });
});
