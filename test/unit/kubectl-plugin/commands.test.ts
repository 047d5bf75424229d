/**
 * The commands against a cluster in memory: what `status` prints for a pool with a RateLimited
 * key, how probe waits for the operator, how disable/enable/drain edit the spec's lists (and
 * never lose a concurrent edit), and that -o json|yaml carry the same facts.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { beforeEach, describe, expect, it } from "vitest";
import type { KeyPoolObject } from "../../../src/kubectl-plugin/cluster.ts";
import { runPlugin } from "../../../src/kubectl-plugin/cli.ts";
import { listsAfter, statusShows } from "../../../src/kubectl-plugin/commands.ts";
import { FakeCluster } from "./fake-cluster.ts";

const NOW = Date.parse("2026-11-22T10:14:18Z");
const HEALTHY = "0a1b2c3d4e5f";
const LIMITED = "3f9a0c21b7d4";
const OFF = "9e8d7c6b5a41";

function kubeconfig(namespace = "ai"): string {
  const dir = mkdtempSync(join(tmpdir(), "kubectl-keypool-"));
  const path = join(dir, "config");
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443" } }],
      users: [{ name: "alice", user: { token: "t" } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "alice", namespace } }],
      "current-context": "ctx",
    }),
  );
  return path;
}

function samplePool(): KeyPoolObject {
  return {
    metadata: { name: "openai-prod", namespace: "ai", generation: 3 },
    spec: { provider: "openai", keys: [{ secretRef: { name: "openai-keys" } }], disabledKeys: [OFF] },
    status: {
      observedGeneration: 3,
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KeysAvailable",
          message: "1 of 3 keys usable",
          lastTransitionTime: "2026-11-22T10:00:00Z",
        },
        {
          type: "Degraded",
          status: "True",
          reason: "KeysUnusable",
          message: "2 of 3 keys unusable: 1 Healthy, 1 RateLimited, 1 Disabled",
          lastTransitionTime: "2026-11-22T10:00:00Z",
        },
      ],
      keys: { total: 3, usable: 1, byState: { Healthy: 1, RateLimited: 1, Disabled: 1, Invalid: 0 } },
      keyStatuses: [
        {
          id: HEALTHY,
          masked: "sk-...aaaa",
          source: "secret/openai-keys#key-1",
          state: "Healthy",
          healthScore: 100,
          requests: 1523,
          errors: 0,
        },
        {
          id: LIMITED,
          masked: "sk-...bbbb",
          source: "secret/openai-keys#key-2",
          state: "RateLimited",
          until: "2026-11-22T10:15:00Z",
          healthScore: 87,
          requests: 311,
          errors: 12,
          lastError: { code: 429, reason: "rate_limit_exceeded", at: "2026-11-22T10:14:00Z" },
        },
        {
          id: OFF,
          masked: "sk-...cccc",
          source: "secret/openai-keys#key-3",
          state: "Disabled",
          disabledBySpec: true,
          healthScore: 100,
          requests: 0,
          errors: 0,
        },
      ],
    },
  };
}

let cluster: FakeCluster;
let clock: number;

beforeEach(() => {
  cluster = new FakeCluster();
  cluster.addPool(samplePool());
  clock = NOW;
});

async function run(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runPlugin(
    ["--kubeconfig", kubeconfig(), ...argv],
    {},
    {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      now: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
      cluster: () => cluster,
    },
  );
  return { code, stdout, stderr };
}

describe("kubectl keypool status", () => {
  it("shows each key of a pool: state, when usable again, until, use and last error", async () => {
    const { code, stdout } = await run(["status", "openai-prod"]);
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        "KeyPool ai/openai-prod: Ready True (KeysAvailable), 1 of 3 keys usable",
        "  Degraded: 2 of 3 keys unusable: 1 Healthy, 1 RateLimited, 1 Disabled",
        "",
        "KEY ID         STATE             USABLE AGAIN   UNTIL                  REQUESTS   ERRORS   LAST ERROR                        SOURCE",
        "0a1b2c3d4e5f   Healthy           now            -                      1523       0        -                                 secret/openai-keys#key-1",
        "3f9a0c21b7d4   RateLimited       in 42s         2026-11-22T10:15:00Z   311        12       429 rate_limit_exceeded 18s ago   secret/openai-keys#key-2",
        "9e8d7c6b5a41   Disabled (spec)   when enabled   -                      0          0        -                                 secret/openai-keys#key-3",
        "",
      ].join("\n"),
    );
  });

  it("gives the same facts as JSON, with the seconds until usable as a number", async () => {
    const { stdout } = await run(["status", "openai-prod", "-o", "json"]);
    const value = JSON.parse(stdout);
    expect(value).toMatchObject({ namespace: "ai", name: "openai-prod", ready: "True", usable: 1, total: 3 });
    expect(value.keys[1]).toEqual({
      id: LIMITED,
      state: "RateLimited",
      usable: false,
      usableInSeconds: 42,
      until: "2026-11-22T10:15:00Z",
      requests: 311,
      errors: 12,
      lastError: { code: 429, reason: "rate_limit_exceeded", at: "2026-11-22T10:14:00Z" },
      source: "secret/openai-keys#key-2",
    });
    expect(value.keys[2]).toMatchObject({ id: OFF, disabledBySpec: true });
    expect(stdout).not.toContain("sk-");
  });

  it("lists the pools of the context's namespace, one line each, and as YAML", async () => {
    cluster.addPool({ metadata: { name: "anthropic", namespace: "ai" }, spec: { provider: "anthropic" } });
    cluster.addPool({ metadata: { name: "elsewhere", namespace: "other" }, spec: { provider: "openai" } });
    const { stdout } = await run(["status"]);
    expect(stdout).toBe(
      [
        "NAME          READY     USABLE   NOT USABLE                  REASON",
        "anthropic     Unknown   -        -                           NoStatusYet",
        "openai-prod   True      1/3      1 RateLimited, 1 Disabled   KeysUnusable",
        "",
      ].join("\n"),
    );
    const yaml = parse((await run(["status", "-A", "-o", "yaml"])).stdout);
    expect(yaml.items.map((p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`)).toEqual([
      "ai/anthropic",
      "ai/openai-prod",
      "other/elsewhere",
    ]);
  });

  it("says so when a namespace has no pools", async () => {
    const { code, stdout } = await run(["status", "-n", "empty"]);
    expect(code).toBe(0);
    expect(stdout).toBe("No KeyPools in namespace empty.\n");
  });
});

describe("kubectl keypool probe", () => {
  it("sets the probe annotation and waits until the status says the operator handled it", async () => {
    let reads = 0;
    cluster.onGet = (pool) => {
      // The operator handles the request on the third look.
      if (++reads === 3) {
        const requested = pool.metadata.annotations?.["keypool.dev/probe-requested-at"];
        if (pool.status && requested) pool.status.lastProbeRequest = requested;
      }
    };
    const { code, stdout, stderr } = await run(["probe", "openai-prod"]);
    expect(code).toBe(0);
    expect(cluster.patches).toEqual([
      { metadata: { annotations: { "keypool.dev/probe-requested-at": "2026-11-22T10:14:18.000Z" } } },
    ]);
    expect(stderr).toContain("asked the operator to probe every key of KeyPool ai/openai-prod");
    expect(stdout).toContain("Probed every key at 2026-11-22T10:14:18.000Z.");
    expect(stdout).toContain("3f9a0c21b7d4   RateLimited");
  });

  it("gives up after --timeout and says the operator may not be running", async () => {
    const { code, stderr } = await run(["probe", "openai-prod", "--timeout", "2s"]);
    expect(code).toBe(1);
    expect(stderr).toContain("the operator did not probe the keys within 2s: is it running");
    expect(clock - NOW).toBe(2000);
  });
});

describe("kubectl keypool disable, enable, drain", () => {
  it.each<[string, "disable" | "enable" | "drain", string[], string[], string[], string[], boolean]>([
    ["disable adds the id", "disable", [], [], [LIMITED], [], true],
    ["disable twice changes nothing", "disable", [LIMITED], [], [LIMITED], [], false],
    ["drain adds to drainedKeys only", "drain", [OFF], [], [OFF], [LIMITED], true],
    ["enable takes the id off both lists", "enable", [LIMITED, OFF], [LIMITED], [OFF], [], true],
    ["enable of a key on neither list changes nothing", "enable", [OFF], [], [OFF], [], false],
  ])("%s", (_name, action, disabled, drained, wantDisabled, wantDrained, changed) => {
    expect(listsAfter(action, LIMITED, { disabledKeys: disabled, drainedKeys: drained })).toEqual({
      disabledKeys: wantDisabled,
      drainedKeys: wantDrained,
      changed,
    });
  });

  it("disable patches spec.disabledKeys, conditional on the version it read", async () => {
    const { code, stdout } = await run(["disable", "openai-prod", LIMITED]);
    expect(code).toBe(0);
    expect(cluster.patches).toEqual([
      { metadata: { resourceVersion: "1" }, spec: { disabledKeys: [OFF, LIMITED], drainedKeys: null } },
    ]);
    expect(stdout).toBe(
      `key ${LIMITED} of KeyPool ai/openai-prod: disabled: listed in spec.disabledKeys; the operator hands it out no more\n`,
    );
  });

  it("enable removes the last id, leaving no empty list behind", async () => {
    await run(["enable", "openai-prod", OFF]);
    expect(cluster.patches).toEqual([
      { metadata: { resourceVersion: "1" }, spec: { disabledKeys: null, drainedKeys: null } },
    ]);
    expect((await cluster.getPool("ai", "openai-prod")).spec.disabledKeys).toBeUndefined();
  });

  it("keeps a list change someone made between its read and its patch", async () => {
    let first = true;
    cluster.onGet = () => {
      if (!first) return;
      first = false;
      cluster.touch("ai", "openai-prod", (pool) => (pool.spec.disabledKeys = [OFF, HEALTHY]));
    };
    expect((await run(["disable", "openai-prod", LIMITED])).code).toBe(0);
    expect((await cluster.getPool("ai", "openai-prod")).spec.disabledKeys).toEqual([OFF, HEALTHY, LIMITED]);
  });

  it("refuses a key the pool does not have", async () => {
    const { code, stderr } = await run(["drain", "openai-prod", "aaaaaaaaaaaa"]);
    expect(code).toBe(1);
    expect(stderr).toContain("the pool's status shows no such key");
    expect(cluster.patches).toEqual([]);
  });

  it("warns when the key is the last usable one", async () => {
    const { code, stderr } = await run(["drain", "openai-prod", HEALTHY]);
    expect(code).toBe(0);
    expect(stderr).toContain(`warning: ${HEALTHY} is the last usable key of KeyPool ai/openai-prod`);
  });

  it("points to the admin API for a key that was disabled there", async () => {
    cluster.touch("ai", "openai-prod", (pool) => {
      const key = pool.status?.keyStatuses?.[0];
      if (key) key.state = "Disabled";
    });
    const { code, stderr } = await run(["enable", "openai-prod", HEALTHY]);
    expect(code).toBe(1);
    expect(stderr).toContain(`POST /v1/pools/ai/openai-prod/keys/${HEALTHY}/enable`);
  });

  it("--wait waits for the status of the new generation to show the change", async () => {
    let reads = 0;
    cluster.onGet = (pool) => {
      if (++reads < 4 || !pool.status) return;
      pool.status.observedGeneration = pool.metadata.generation;
      const key = pool.status.keyStatuses?.find((k) => k.id === LIMITED);
      if (key) Object.assign(key, { state: "Disabled", disabledBySpec: true });
    };
    const { code, stdout } = await run(["disable", "openai-prod", LIMITED, "--wait", "-o", "json"]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({
      keyId: LIMITED,
      action: "disable",
      changed: true,
      state: "Disabled",
    });
  });

  it.each<[string, "disable" | "enable" | "drain", Partial<KeyPoolObject["status"]>, boolean]>([
    ["an older generation's status shows nothing yet", "disable", { observedGeneration: 1 }, false],
  ])("statusShows: %s", (_name, action, status, shows) => {
    const pool = { ...samplePool(), status: { ...samplePool().status, ...status } };
    pool.metadata.generation = 2;
    expect(statusShows(action, OFF, pool)).toBe(shows);
  });
});
