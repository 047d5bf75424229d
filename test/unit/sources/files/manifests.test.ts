import { describe, expect, it } from "vitest";
import { parseManifestFile } from "../../../../src/sources/files/manifests.ts";

const POOL = `apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: gpt}
spec:
  provider: openai
  keys: [{secretRef: {name: openai-keys}}]
`;
const SECRET = `apiVersion: v1
kind: Secret
metadata: {name: openai-keys, namespace: ai}
stringData: {a: sk-a-0123456789}
data: {b: ${Buffer.from("sk-b-0123456789").toString("base64")}}
`;

describe("parsing a manifest file", () => {
  it("reads every document, KeyPools and Secrets, with the default namespace where none is set", () => {
    const parsed = parseManifestFile("pools.yaml", `${SECRET}---\n${POOL}`, "default");
    expect(parsed.problems).toEqual([]);
    expect(parsed.pools).toHaveLength(1);
    expect(parsed.pools[0]).toMatchObject({
      ref: { namespace: "default", name: "gpt" },
      origin: "pools.yaml (document 2)",
      result: { ok: true },
    });
    expect(parsed.secrets).toMatchObject([
      {
        ref: { namespace: "ai", name: "openai-keys" },
        secret: { metadata: { name: "openai-keys", namespace: "ai" }, stringData: { a: "sk-a-0123456789" } },
      },
    ]);
  });

  it("reads JSON and the items of a List", () => {
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: [{ apiVersion: "v1", kind: "Secret", metadata: { name: "s" } }],
    };
    const parsed = parseManifestFile("list.json", JSON.stringify(list, null, "\t"), "default");
    expect(parsed.problems).toEqual([]);
    expect(parsed.secrets.map((s) => s.origin)).toEqual(["list.json items[0]"]);
  });

  it("ignores other kinds and empty documents", () => {
    const parsed = parseManifestFile(
      "misc.yaml",
      "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
      "default",
    );
    expect(parsed).toMatchObject({
      pools: [],
      secrets: [],
      problems: [],
      ignored: ["v1 ConfigMap default/c"],
    });
  });

  it.each<[string, string, string]>([
    [
      "an invalid KeyPool, by field path",
      POOL.replace("provider: openai", "provider: openai\n  strategy: Random"),
      "spec.strategy: Invalid option",
    ],
    [
      "a KeyPool without a name",
      "apiVersion: keypool.dev/v1alpha1\nkind: KeyPool\nspec: {}\n",
      "metadata.name: required",
    ],
    [
      "a KeyPool of a version that is not served",
      POOL.replace("v1alpha1", "v1"),
      "apiVersion: keypool.dev/v1 is not served",
    ],
    [
      "a plain key under Secret data",
      "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: sk-not-base64}\n",
      "data.a: must be base64",
    ],
    [
      "a Secret value that is not a string",
      "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: [1]}\n",
      "stringData.a",
    ],
    [
      "broken YAML, by line and column",
      "a: 1\nb: [\n  c: sk-a-0123456789: x\n",
      "not valid YAML (line 3, column 6): block in flow",
    ],
    ["a document that is not an object", "- a\n- b\n", "not a Kubernetes object"],
  ])("reports %s", (_name, text, message) => {
    const parsed = parseManifestFile("f.yaml", text, "default");
    const problems = [
      ...parsed.problems.map((p) => p.message),
      ...parsed.pools.flatMap((p) => (p.result.ok ? [] : [p.result.message])),
    ];
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
    expect(problems[0]).not.toContain("sk-");
  });
});
