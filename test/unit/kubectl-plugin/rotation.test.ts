/**
 * rotate-check: the Secrets' keys against the pool's status, by key id, resolved as the operator
 * resolves them, and never a key in the output.
 */
import { describe, expect, it } from "vitest";
import type { KeyStatus } from "../../../src/api/status.ts";
import type { KeyPoolObject } from "../../../src/kubectl-plugin/cluster.ts";
import { compareKeys, renderRotation, rotateCheck } from "../../../src/kubectl-plugin/rotation.ts";
import { keyId } from "../../../src/pool/identity.ts";
import { FakeCluster } from "./fake-cluster.ts";

const KEPT = "sk-proj-kept-0123456789abcdef";
const ADDED = "sk-proj-added-0123456789abcdef";
const GONE = "sk-proj-gone-0123456789abcdef";
const LEFT = "sk-proj-left-earlier-0123456789";
const HELD = "sk-proj-held-out-0123456789abc";

function key(
  value: string,
  source: string,
  state: KeyStatus["state"],
  extra: Partial<KeyStatus> = {},
): KeyStatus {
  return {
    id: keyId(value),
    masked: "sk-...",
    source,
    state,
    healthScore: 100,
    requests: 0,
    errors: 0,
    ...extra,
  };
}

function pool(spec: Partial<KeyPoolObject["spec"]> = {}): KeyPoolObject {
  return {
    metadata: { name: "openai-prod", namespace: "ai" },
    spec: { provider: "openai", keys: [{ secretRef: { name: "openai-keys" } }], ...spec },
    status: {
      keyStatuses: [
        key(KEPT, "secret/openai-keys#a", "Healthy"),
        key(GONE, "secret/openai-keys#b", "RateLimited", { until: "2026-11-22T10:15:00Z" }),
        key(LEFT, "secret/openai-keys#c", "Draining", { until: "2026-11-22T10:20:00Z" }),
      ],
    },
  };
}

describe("comparing the Secrets' keys with the status", () => {
  it("sorts every key into new, removed, unchanged, drained or leaving", () => {
    const result = compareKeys(pool({ drainedKeys: [keyId(HELD)] }), [
      { id: keyId(KEPT), source: "secret/openai-keys#a" },
      { id: keyId(ADDED), source: "secret/openai-keys#d" },
      { id: keyId(HELD), source: "secret/openai-keys#e" },
    ]);
    expect(result).toEqual({
      namespace: "ai",
      name: "openai-prod",
      new: [{ id: keyId(ADDED), source: "secret/openai-keys#d" }],
      removed: [
        {
          id: keyId(GONE),
          source: "secret/openai-keys#b",
          state: "RateLimited",
          until: "2026-11-22T10:15:00Z",
        },
      ],
      unchanged: [{ id: keyId(KEPT), source: "secret/openai-keys#a", state: "Healthy" }],
      drained: [{ id: keyId(HELD), source: "secret/openai-keys#e" }],
      leaving: [
        { id: keyId(LEFT), source: "secret/openai-keys#c", state: "Draining", until: "2026-11-22T10:20:00Z" },
      ],
    });
  });

  it("counts a key back in its Secret while it is still Draining as new", () => {
    const result = compareKeys(pool(), [{ id: keyId(LEFT), source: "secret/openai-keys#c" }]);
    expect(result.new.map((k) => k.id)).toEqual([keyId(LEFT)]);
  });
});

describe("rotate-check against the Secrets", () => {
  it("reads the Secrets as the operator does (commas, newlines) and prints ids and entries only", async () => {
    const cluster = new FakeCluster();
    cluster.addSecret("ai", "openai-keys", { a: KEPT, d: `${ADDED},\n` });
    const rotation = await rotateCheck(cluster, pool());
    expect(rotation.new).toEqual([{ id: keyId(ADDED), source: "secret/openai-keys#d" }]);
    expect(rotation.unchanged.map((k) => k.id)).toEqual([keyId(KEPT)]);
    expect(rotation.removed.map((k) => k.id)).toEqual([keyId(GONE)]);
    const text = renderRotation(rotation);
    expect(text).toContain("KeyPool ai/openai-prod: 1 new, 1 removed, 1 unchanged, 1 leaving");
    expect(text).toMatch(/new\s+[0-9a-f]{12}\s+secret\/openai-keys#d/);
    for (const secret of [KEPT, ADDED, GONE, LEFT]) {
      expect(text).not.toContain(secret);
      expect(JSON.stringify(rotation)).not.toContain(secret);
    }
  });

  it("names what the operator would not see: a missing Secret, an unlabelled one", async () => {
    const cluster = new FakeCluster();
    cluster.addSecret("ai", "unlabelled", { a: ADDED }, false);
    const rotation = await rotateCheck(
      cluster,
      pool({ keys: [{ secretRef: { name: "missing" } }, { secretRef: { name: "unlabelled" } }] }),
    );
    expect(rotation.problems.map((p) => p.reason)).toEqual(["SecretNotFound", "SecretNotLabelled"]);
    expect(rotation.new).toEqual([]);
    expect(renderRotation(rotation)).toContain(
      "kubectl label secret -n ai unlabelled keypool.dev/secret=true",
    );
  });

  it("follows a secretSelector over the labelled Secrets of the namespace", async () => {
    const cluster = new FakeCluster();
    cluster.addSecret("ai", "team-a", { k: KEPT });
    cluster.addSecret("ai", "not-for-the-operator", { k: ADDED }, false);
    const rotation = await rotateCheck(
      cluster,
      pool({ keys: undefined, secretSelector: { matchLabels: {} } }),
    );
    expect(rotation.unchanged.map((k) => k.source)).toEqual(["secret/team-a#k"]);
    expect(rotation.new).toEqual([]);
  });
});
