import { describe, expect, it } from "vitest";
import { poolNameOf, readEnvPools } from "../../../../src/sources/files/env.ts";

describe("naming env pools", () => {
  it.each([
    ["GPT_4", "gpt-4"],
    ["CLAUDE_3_OPUS", "claude-3-opus"],
    ["MISTRAL", "mistral"],
  ])("%s_KEYS is pool %s", (prefix, name) => {
    expect(poolNameOf(prefix)).toBe(name);
  });
});

describe("reading pools from environment variables", () => {
  it("splits NAME_KEYS like a Secret entry, names each key's source by variable and index, and rotates in turn", () => {
    const { pools, problems } = readEnvPools({ GPT_4_KEYS: "sk-a, sk-b\nsk-c,", PATH: "/usr/bin" });
    expect(problems).toEqual([]);
    expect(pools).toHaveLength(1);
    expect(pools[0]).toMatchObject({
      name: "gpt-4",
      variable: "GPT_4_KEYS",
      spec: { provider: "openai", strategy: "RoundRobin" },
      entries: [
        { key: "sk-a", source: "env/GPT_4_KEYS[0]" },
        { key: "sk-b", source: "env/GPT_4_KEYS[1]" },
        { key: "sk-c", source: "env/GPT_4_KEYS[2]" },
      ],
      emptyValues: 1,
    });
  });

  it("takes provider, base URL and strategy from the companion variables", () => {
    const { pools, problems } = readEnvPools({
      CLAUDE_KEYS: "sk-ant-a",
      CLAUDE_PROVIDER: "Anthropic",
      CLAUDE_BASE_URL: "http://127.0.0.1:9999/v1",
      CLAUDE_STRATEGY: "round-robin",
    });
    expect(problems).toEqual([]);
    expect(pools[0]?.spec).toMatchObject({
      provider: "anthropic",
      baseURL: "http://127.0.0.1:9999/v1",
      strategy: "RoundRobin",
    });
  });

  it.each<[string, Record<string, string>, string]>([
    ["an unknown provider, naming the variable", { X_KEYS: "k", X_PROVIDER: "openia" }, "X_PROVIDER: "],
    ["an unknown strategy", { X_KEYS: "k", X_STRATEGY: "Random" }, "X_STRATEGY: "],
    [
      "a base URL that is not http(s)",
      { X_KEYS: "k", X_BASE_URL: "ftp://host" },
      "X_BASE_URL: must be an http",
    ],
    [
      "openai-compatible without a base URL",
      { X_KEYS: "k", X_PROVIDER: "openai-compatible" },
      "X_BASE_URL: provider openai-compatible needs spec.baseURL",
    ],
    ["a name that is not a valid pool name", { X__KEYS: "k" }, 'X__KEYS: "x-" is not a valid pool name'],
  ])("reports %s and makes no pool", (_name, env, message) => {
    const { pools, problems } = readEnvPools(env);
    expect(pools).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).toContain(message);
  });

  it("never puts a key value into a problem", () => {
    const { problems } = readEnvPools({
      X_KEYS: "sk-secret-value-123456",
      X_PROVIDER: "sk-secret-value-123456",
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).not.toContain("sk-secret");
  });

  it("ignores variables that only look alike (lower-case, no prefix, companions alone)", () => {
    expect(readEnvPools({ gpt_keys: "a", KEYS: "b", _KEYS: "c", GPT_PROVIDER: "anthropic" }).pools).toEqual(
      [],
    );
  });

  it("makes an empty pool of an empty variable (keys may be added through the API)", () => {
    const { pools } = readEnvPools({ X_KEYS: "" });
    expect(pools).toMatchObject([{ name: "x", entries: [], emptyValues: 1 }]);
  });
});
