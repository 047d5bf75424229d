/**
 * The kstatus test tool (test/support/kstatus.ts) against hand-written objects: each of kstatus's
 * generic rules for custom resources, with what the real library prints. These are the rules
 * the KeyPool conditions table is checked against; if a cli-utils upgrade changes one, this file
 * says which. In the integration project because it builds Go (once, into the cache).
 */
import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { cliUtilsVersion, ensureKstatus, type KstatusResult, kstatusOf } from "../support/kstatus.ts";

interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
}

/** A KeyPool as the API server returns it: generation 2 unless told, and the given status. */
function keyPool(
  status: { observedGeneration?: number; conditions?: Condition[] } | undefined,
  metadata: Record<string, unknown> = {},
) {
  return {
    apiVersion: "keypool.dev/v1alpha1",
    kind: "KeyPool",
    metadata: { name: "openai-prod", namespace: "ai", generation: 2, ...metadata },
    spec: { provider: "openai" },
    ...(status && { status }),
  };
}

const ready: Condition = {
  type: "Ready",
  status: "True",
  reason: "KeysUsable",
  message: "5 of 5 keys usable",
};
const notReady: Condition = {
  type: "Ready",
  status: "False",
  reason: "NoUsableKeys",
  message: "no key is usable",
};
const reconciling: Condition = {
  type: "Reconciling",
  status: "True",
  reason: "Progressing",
  message: "reading Secrets",
};
const stalled: Condition = {
  type: "Stalled",
  status: "True",
  reason: "SecretNotFound",
  message: 'Secret "openai-keys" not found',
};

const cases: Array<{ name: string; object: object; expected: KstatusResult }> = [
  {
    name: "observedGeneration behind generation is InProgress, even with Ready=True",
    object: keyPool({ observedGeneration: 1, conditions: [ready] }),
    expected: {
      status: "InProgress",
      message: "KeyPool generation is 2, but latest observed generation is 1",
    },
  },
  {
    name: "observedGeneration ahead of generation is InProgress too (kstatus checks for equality)",
    object: keyPool({ observedGeneration: 3, conditions: [ready] }),
    expected: {
      status: "InProgress",
      message: "KeyPool generation is 2, but latest observed generation is 3",
    },
  },
  {
    name: "without status.observedGeneration there is no generation check",
    object: keyPool({ conditions: [ready] }),
    expected: { status: "Current", message: "Resource is Ready" },
  },
  {
    name: "Reconciling=True is InProgress with its message",
    object: keyPool({ observedGeneration: 2, conditions: [ready, reconciling] }),
    expected: { status: "InProgress", message: "reading Secrets" },
  },
  {
    name: "Stalled=True is Failed with its message",
    object: keyPool({ observedGeneration: 2, conditions: [notReady, stalled] }),
    expected: { status: "Failed", message: 'Secret "openai-keys" not found' },
  },
  {
    name: "with Reconciling=True and Stalled=True, the one listed first decides (Stalled first)",
    object: keyPool({ observedGeneration: 2, conditions: [stalled, reconciling] }),
    expected: { status: "Failed", message: 'Secret "openai-keys" not found' },
  },
  {
    name: "with Reconciling=True and Stalled=True, the one listed first decides (Reconciling first)",
    object: keyPool({ observedGeneration: 2, conditions: [reconciling, stalled] }),
    expected: { status: "InProgress", message: "reading Secrets" },
  },
  {
    name: "Ready=False without Reconciling or Stalled is InProgress with Ready's message, not Failed",
    object: keyPool({ observedGeneration: 2, conditions: [notReady] }),
    expected: { status: "InProgress", message: "no key is usable" },
  },
  {
    name: "Ready=Unknown is InProgress",
    object: keyPool({
      observedGeneration: 2,
      conditions: [{ type: "Ready", status: "Unknown", reason: "Starting", message: "not reconciled yet" }],
    }),
    expected: { status: "InProgress", message: "not reconciled yet" },
  },
  {
    name: "Reconciling=False and Stalled=False count for nothing: Ready=False still decides",
    object: keyPool({
      observedGeneration: 2,
      conditions: [{ ...reconciling, status: "False" }, { ...stalled, status: "False" }, notReady],
    }),
    expected: { status: "InProgress", message: "no key is usable" },
  },
  {
    name: "all fine (generation observed, Ready=True, Stalled and Reconciling False) is Current",
    object: keyPool({
      observedGeneration: 2,
      conditions: [ready, { ...reconciling, status: "False" }, { ...stalled, status: "False" }],
    }),
    expected: { status: "Current", message: "Resource is Ready" },
  },
  {
    name: "Degraded=True is ignored: with Ready=True the pool is Current",
    object: keyPool({
      observedGeneration: 2,
      conditions: [
        ready,
        { type: "Degraded", status: "True", reason: "KeysUnhealthy", message: "2 of 5 keys" },
      ],
    }),
    expected: { status: "Current", message: "Resource is Ready" },
  },
  {
    name: "no conditions at all is Current",
    object: keyPool({ observedGeneration: 2 }),
    expected: { status: "Current", message: "Resource is current" },
  },
  {
    name: "no status at all is Current",
    object: keyPool(undefined),
    expected: { status: "Current", message: "Resource is current" },
  },
  {
    name: "a deletionTimestamp is Terminating, before any other rule",
    object: keyPool(
      { observedGeneration: 1, conditions: [stalled] },
      { deletionTimestamp: "2026-01-01T00:00:00Z" },
    ),
    expected: { status: "Terminating", message: "Resource scheduled for deletion" },
  },
];

// The first build compiles for up to a couple of minutes with a cold Go build cache (98 s on 2
// cores); later runs find the binary in the cache.
beforeAll(() => ensureKstatus(), 600_000);

describe("kstatus (sigs.k8s.io/cli-utils status.Compute) on KeyPool-shaped objects", () => {
  it.each(cases)("$name", async ({ object, expected }) => {
    expect(await kstatusOf([object])).toEqual([expected]);
  });

  it("answers a batch in order, one result per object", async () => {
    expect(await kstatusOf(cases.map((c) => c.object))).toEqual(cases.map((c) => c.expected));
  });
});

describe("the kstatus tool", () => {
  it(`is built from sigs.k8s.io/cli-utils, reused from the cache on later calls`, async () => {
    expect(await cliUtilsVersion()).toMatch(/^v0\.\d+\.\d+$/);
    const first = await ensureKstatus();
    expect(first).toMatch(new RegExp(`/tools/kstatus-${await cliUtilsVersion()}/kstatus$`));
    const lines: string[] = [];
    const started = Date.now();
    expect(await ensureKstatus({ log: (line) => lines.push(line) })).toBe(first);
    expect(lines).toEqual([]); // no build, no waiting for a lock
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("reads a JSON array as well as one object per line", async () => {
    const binary = await ensureKstatus();
    const objects = [
      keyPool({ observedGeneration: 2, conditions: [ready] }),
      keyPool({ observedGeneration: 1 }),
    ];
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(binary, [], { stdio: ["pipe", "pipe", "inherit"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      child.stdin.end(JSON.stringify(objects, null, 2));
    });
    expect(
      output
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as KstatusResult),
    ).toEqual([
      { status: "Current", message: "Resource is Ready" },
      { status: "InProgress", message: "KeyPool generation is 2, but latest observed generation is 1" },
    ]);
  });

  it("refuses an object kstatus cannot read, naming which", async () => {
    const good = keyPool({ observedGeneration: 2 });
    const bad = keyPool({ observedGeneration: 2 }, { generation: "two" });
    await expect(kstatusOf([good, bad])).rejects.toThrow(
      /kstatus exited with 1: .*object 1: .*metadata\.generation/,
    );
  });
});
