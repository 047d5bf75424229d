import type { V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { KeyPoolSpec } from "../../../src/api/keypool.ts";
import { resolvePoolKeys, splitKeys } from "../../../src/sources/kubernetes/secrets.ts";
import { matchesSelector } from "../../../src/sources/kubernetes/selector.ts";

describe("splitting a Secret entry into keys", () => {
  it.each<[string, string, string[], number]>([
    ["one key", "sk-a", ["sk-a"], 0],
    ["one key with the trailing newline of a file", "sk-a\n", ["sk-a"], 0],
    ["comma-separated keys (migrating from *_KEYS=a,b,c)", "sk-a,sk-b,sk-c", ["sk-a", "sk-b", "sk-c"], 0],
    ["newline-separated keys with spaces and CRLF", " sk-a \r\nsk-b\n", ["sk-a", "sk-b"], 0],
    ["empty parts between separators, counted", "sk-a,,sk-b, ,", ["sk-a", "sk-b"], 3],
    ["a whitespace-only value, counted once", "   ", [], 1],
    ["an empty value", "", [], 1],
  ])("%s", (_name, value, keys, empty) => {
    expect(splitKeys(value)).toEqual({ keys, empty });
  });
});

const b64 = (s: string) => Buffer.from(s).toString("base64");
function secret(name: string, data: Record<string, string>, labels: Record<string, string> = {}): V1Secret {
  return {
    metadata: { name, namespace: "ai", labels: { "keypool.dev/secret": "true", ...labels } },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

function cacheOf(...secrets: V1Secret[]) {
  return {
    get: (_ns: string, name: string) => secrets.find((s) => s.metadata?.name === name),
    list: () => secrets,
  };
}

describe("resolving a pool's keys", () => {
  it("refuses a value with whitespace inside a key and names it by Secret and entry, never by value", async () => {
    const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "pasted" } }] });
    const cache = cacheOf(secret("pasted", { good: "sk-good", bad: "sk-bad one", list: "sk-l1, sk-l 2" }));
    const resolved = await resolvePoolKeys("ai", spec, cache, async () => "missing");
    expect(resolved.entries.map((e) => e.source)).toEqual(["secret/pasted#good", "secret/pasted#list[0]"]);
    expect(resolved.problems.map((p) => [p.reason, p.entry])).toEqual([
      ["KeyHasWhitespace", "bad"],
      ["KeyHasWhitespace", "list"],
    ]);
    expect(resolved.problems[0]?.message).toContain("secret/pasted#bad has whitespace inside a key");
    expect(resolved.problems[1]?.message).toContain("secret/pasted#list[1]");
    expect(JSON.stringify(resolved.problems)).not.toMatch(/sk-bad|sk-l 2/);
  });

  it("uses a key two entries hold once, and names both sources", async () => {
    const spec = KeyPoolSpec.parse({
      provider: "openai",
      keys: [{ secretRef: { name: "one" } }, { secretRef: { name: "two" } }],
    });
    const cache = cacheOf(secret("one", { a: "sk-same", b: "sk-other" }), secret("two", { c: "sk-same" }));
    const resolved = await resolvePoolKeys("ai", spec, cache, async () => "missing");
    expect(resolved.entries.map((e) => e.source)).toEqual(["secret/one#a", "secret/one#b"]);
    expect(resolved.problems).toEqual([
      {
        reason: "DuplicateKeys",
        secret: "two",
        entry: "c",
        message: "secret/two#c holds the same key as secret/one#a: it is used once",
      },
    ]);
  });

  it("takes every entry of a Secret, one entry, and Secrets matching a selector, with per-source settings", async () => {
    const spec = KeyPoolSpec.parse({
      provider: "openai",
      keys: [
        { secretRef: { name: "all" } },
        {
          secretRef: { name: "batch", key: "k1" },
          weight: 5,
          limits: { requestsPerMinute: 60 },
          quotaGroup: "org-b",
        },
      ],
      secretSelector: { matchLabels: { team: "search" } },
    });
    const cache = cacheOf(
      secret("all", { x: "sk-x", y: "sk-y1,sk-y2" }),
      secret("batch", { k1: "sk-k1", k2: "sk-k2" }),
      secret("team", { t: "sk-t" }, { team: "search" }),
    );
    const resolved = await resolvePoolKeys("ai", spec, cache, async () => "missing");
    expect(resolved.problems).toEqual([]);
    expect(resolved.entries).toEqual([
      { key: "sk-x", source: "secret/all#x" },
      { key: "sk-y1", source: "secret/all#y[0]" },
      { key: "sk-y2", source: "secret/all#y[1]" },
      {
        key: "sk-k1",
        source: "secret/batch#k1",
        weight: 5,
        limits: { requestsPerMinute: 60 },
        quotaGroup: "org-b",
      },
      { key: "sk-t", source: "secret/team#t" },
    ]);
    expect([...resolved.secretNames].sort()).toEqual(["all", "batch", "team"]);
  });

  it.each([
    ["missing", "SecretNotFound", "not found"],
    ["unlabelled", "SecretNotLabelled", "kubectl label secret -n ai gone keypool.dev/secret=true"],
  ] as const)("reports a %s Secret with a message that says what to do", async (why, reason, text) => {
    const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "gone" } }] });
    const resolved = await resolvePoolKeys("ai", spec, cacheOf(), async () => why);
    expect(resolved.problems).toHaveLength(1);
    expect(resolved.problems[0]?.reason).toBe(reason);
    expect(resolved.problems[0]?.message).toContain(text);
  });

  it("reports a named entry the Secret lacks", async () => {
    const spec = KeyPoolSpec.parse({ provider: "openai", keys: [{ secretRef: { name: "s", key: "nope" } }] });
    const resolved = await resolvePoolKeys(
      "ai",
      spec,
      cacheOf(secret("s", { k: "sk-k" })),
      async () => "missing",
    );
    expect(resolved.problems[0]).toMatchObject({ reason: "SecretEntryMissing", entry: "nope" });
  });
});

describe("label selectors", () => {
  it.each<[string, Record<string, string>, Parameters<typeof matchesSelector>[1], boolean]>([
    ["matchLabels all present", { a: "1", b: "2" }, { matchLabels: { a: "1" } }, true],
    ["matchLabels value differs", { a: "2" }, { matchLabels: { a: "1" } }, false],
    [
      "In",
      { env: "prod" },
      { matchExpressions: [{ key: "env", operator: "In", values: ["prod", "stage"] }] },
      true,
    ],
    [
      "NotIn",
      { env: "prod" },
      { matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] },
      false,
    ],
    ["Exists", { env: "" }, { matchExpressions: [{ key: "env", operator: "Exists" }] }, true],
    ["DoesNotExist", { env: "x" }, { matchExpressions: [{ key: "env", operator: "DoesNotExist" }] }, false],
  ])("%s", (_name, labels, selector, expected) => {
    expect(matchesSelector(labels, selector)).toBe(expected);
  });
});
