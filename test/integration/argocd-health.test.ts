/**
 * The Argo CD customizations in deploy/gitops/, run by a real Lua 5.1 interpreter (Argo CD runs
 * gopher-lua, Lua 5.1) on real KeyPools: a running operator (and a fake OpenAI for its probes)
 * makes pools Ready, Ready with unusable keys, Stalled and not Ready; stopping it leaves a changed
 * spec unobserved and a new pool without status. The health check must call them Healthy,
 * Degraded and Progressing. The "probe" action must set keypool.dev/probe-requested-at, and the
 * operator must act on what it sets. argocd-cm-patch.yaml must patch a real argocd-cm.
 *
 * Needs `lua5.1` on PATH (Debian/Ubuntu: apt-get install -y lua5.1); without it these tests fail.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PROBE_REQUEST_ANNOTATION } from "../../src/api/keypool.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd, keyPoolRef } from "../support/crd.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, kubectl } from "../support/kube.ts";
import { type OperatorProcess, startOperator } from "../support/operator-process.ts";

const GITOPS = fileURLToPath(new URL("../../deploy/gitops/", import.meta.url));
const LUA = "lua5.1";

const kc = adminKubeConfig();
const api = poolApi(kc);
const objects = kc.makeApiClient(CustomObjectsApi);
const core = kc.makeApiClient(CoreV1Api);
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

const K = {
  a: "sk-test-argocd-health-a-00001",
  b: "sk-test-argocd-health-b-00002",
  c: "sk-test-argocd-health-c-00003",
  bad: "sk-test-argocd-never-valid-004",
  bad2: "sk-test-argocd-never-valid-005",
};

let ns: string;
let fake: FakeProvider;
let operator: OperatorProcess;

// ---- Lua: a JSON value as a Lua table constructor, and the interpreter ----

/** A Lua string literal holding exactly the UTF-8 bytes of `text` (decimal escapes, 3 digits). */
function luaString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, "utf8")) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += "\\\\";
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${String(byte).padStart(3, "0")}`;
  }
  return `${out}"`;
}

/** A JSON value as a Lua expression: objects and arrays become tables (arrays 1-based), null nil. */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`not a JSON number: ${value}`);
    return String(value);
  }
  if (typeof value === "string") return luaString(value);
  if (Array.isArray(value)) return `{${value.map(toLua).join(", ")}}`;
  if (typeof value === "object") {
    const fields = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `[${luaString(k)}] = ${toLua(v)}`);
    return `{${fields.join(", ")}}`;
  }
  throw new Error(`not a JSON value: ${typeof value}`);
}

/** Lua 5.1 that prints a table back as JSON (arrays: tables with keys 1..n only). */
const LUA_JSON_ENCODER = `
local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return string.format("%.17g", v) end
  if t == "string" then
    local escaped = string.gsub(v, '[%c"\\\\]', function(c) return string.format("\\\\u%04x", string.byte(c)) end)
    return '"' .. escaped .. '"'
  end
  if t ~= "table" then error("cannot encode a " .. t) end
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  local parts = {}
  if n > 0 and count == n then
    for i = 1, n do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, item in pairs(v) do
    table.insert(parts, encode(tostring(k)) .. ":" .. encode(item))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
`;

const luaMissing = () =>
  new Error(
    `${LUA} is not on PATH. The Argo CD Lua scripts in deploy/gitops/ are tested with a real Lua 5.1 ` +
      `interpreter (Argo CD runs Lua 5.1): install it (Debian/Ubuntu: apt-get install -y lua5.1) and run ` +
      `the tests again.`,
  );

/** Runs a Lua 5.1 program given on stdin; resolves with its stdout, rejects with its stderr. */
function runLua(program: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(LUA, ["-"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err: NodeJS.ErrnoException) => reject(err.code === "ENOENT" ? luaMissing() : err));
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${LUA} exited with ${code}: ${stderr.trim()}`));
    });
    child.stdin.on("error", () => {}); // the interpreter is missing: reported by "error" above
    child.stdin.end(program);
  });
}

/** Runs a deploy/gitops script the way Argo CD does: one chunk, with the global `obj` set. */
function chunk(script: string, file: string, object: unknown, after: string): string {
  return [
    LUA_JSON_ENCODER,
    `obj = ${toLua(object)}`,
    `local script = assert(loadstring(${luaString(script)}, ${luaString(`=${file}`)}))`,
    after,
  ].join("\n");
}

const gitopsFile = (name: string) => readFile(`${GITOPS}${name}`, "utf8");

interface Health {
  status: string;
  message: string;
}

async function health(object: unknown): Promise<Health> {
  const script = await gitopsFile("keypool-health.lua");
  const out = await runLua(
    chunk(
      script,
      "keypool-health.lua",
      object,
      `local hs = script()\nio.write(encode({status = hs.status, message = hs.message}))`,
    ),
  );
  return JSON.parse(out) as Health;
}

async function runAction(object: unknown): Promise<Record<string, unknown>> {
  const script = await gitopsFile("keypool-probe-action.lua");
  const out = await runLua(chunk(script, "keypool-probe-action.lua", object, "io.write(encode(script()))"));
  return JSON.parse(out) as Record<string, unknown>;
}

async function discover(object: unknown): Promise<Record<string, Record<string, unknown>>> {
  const script = await gitopsFile("keypool-probe-discovery.lua");
  const out = await runLua(
    chunk(script, "keypool-probe-discovery.lua", object, "io.write(encode(script()))"),
  );
  return JSON.parse(out) as Record<string, Record<string, unknown>>;
}

/** The whole object as Argo CD sees it (metadata with generation, managedFields, spec, status). */
async function live(name: string): Promise<Record<string, unknown>> {
  return (await objects.getNamespacedCustomObject({ ...keyPoolRef(ns), name })) as Record<string, unknown>;
}

const start = () => startOperator(["--kubeconfig", inject("kubeconfig"), "--namespaces", ns]);

beforeAll(async () => {
  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "argocd-health");
  fake = await startFakeProvider("openai", {
    [K.a]: { kind: "valid" },
    [K.b]: { kind: "valid" },
    [K.c]: { kind: "valid" },
  });
  const pool = (secret: string) => ({
    provider: "openai",
    baseURL: fake.url,
    keys: [{ secretRef: { name: secret } }],
  });
  await api.putSecret(ns, "good", { a: K.a, b: K.b });
  await api.putSecret(ns, "mixed", { good: K.c, bad: K.bad });
  await api.putSecret(ns, "all-bad", { bad: K.bad2 });
  await api.createPool(ns, "healthy", pool("good"));
  await api.createPool(ns, "some-unusable", pool("mixed"));
  // The CRD accepts a reference to any Secret name; the operator marks the pool Stalled.
  await api.createPool(ns, "stalled", pool("no-such-secret"));
  await api.createPool(ns, "none-usable", pool("all-bad"));
  operator = start();
  await api.waitForPool(ns, "healthy", (p) => condition(p, "Ready")?.status === "True");
  await api.waitForPool(ns, "some-unusable", (p) => condition(p, "Degraded")?.status === "True");
  await api.waitForPool(ns, "stalled", (p) => condition(p, "Stalled")?.status === "True");
  await api.waitForPool(ns, "none-usable", (p) => condition(p, "Ready")?.reason === "NoUsableKeys");
});

afterAll(async () => {
  await operator?.stop();
  await fake?.close();
});

describe(`${LUA}`, () => {
  it("is installed (Argo CD's scripts are checked with a real Lua 5.1)", async () => {
    expect(await runLua("io.write(_VERSION)")).toBe("Lua 5.1");
  });
});

describe("keypool-health.lua on real KeyPools", () => {
  it("calls a Ready pool Healthy, with the Ready message", async () => {
    expect(await health(await live("healthy"))).toEqual({ status: "Healthy", message: "2 of 2 keys usable" });
  });

  it("calls a Ready pool with unusable keys Healthy, and says it is Degraded", async () => {
    const object = await live("some-unusable");
    const result = await health(object);
    expect(result.status).toBe("Healthy");
    expect(result.message).toBe("1 of 2 keys usable; Degraded: 1 of 2 keys unusable: 1 Healthy, 1 Invalid");
  });

  it("calls a Stalled pool Degraded, with the Stalled message", async () => {
    const object = await live("stalled");
    const stalled = condition(object as never, "Stalled");
    expect(stalled).toMatchObject({ status: "True", reason: "SecretNotFound" });
    const result = await health(object);
    expect(result).toEqual({ status: "Degraded", message: stalled?.message });
    expect(result.message).toContain(`Secret ${ns}/no-such-secret`);
  });

  it("calls a pool without a usable key (nothing for the user to fix) Progressing", async () => {
    const result = await health(await live("none-usable"));
    expect(result.status).toBe("Progressing");
    expect(result.message).toMatch(/^Ready=False \(NoUsableKeys\): No usable key: 1 Invalid/);
  });

  it("calls a pool whose spec changed while the operator was stopped Progressing", async () => {
    expect(await operator.stop()).toBe(0);
    const patched = (await objects.patchNamespacedCustomObject(
      { ...keyPoolRef(ns), name: "healthy", body: { spec: { strategy: "RoundRobin" } } },
      mergePatch,
    )) as { metadata: { generation: number }; status: { observedGeneration: number } };
    expect(patched.status.observedGeneration).toBeLessThan(patched.metadata.generation);
    const object = await live("healthy");
    expect(condition(object as never, "Ready")?.status).toBe("True"); // true, but for the old spec
    expect(await health(object)).toEqual({
      status: "Progressing",
      message: `waiting for the operator to observe generation ${patched.metadata.generation}`,
    });
  });

  it("calls a pool the operator has not seen yet (no status) Progressing", async () => {
    await api.createPool(ns, "fresh", {
      provider: "openai",
      baseURL: fake.url,
      keys: [{ secretRef: { name: "good" } }],
    });
    const object = await live("fresh");
    expect(object.status).toBeUndefined();
    expect(await health(object)).toEqual({
      status: "Progressing",
      message: "waiting for the operator to report a status",
    });
  });

  it("calls both Healthy once the operator is back", async () => {
    operator = start();
    for (const name of ["healthy", "fresh"]) {
      await api.waitForPool(
        ns,
        name,
        (p) =>
          p.status?.observedGeneration === p.metadata.generation && condition(p, "Ready")?.status === "True",
      );
      expect(await health(await live(name))).toEqual({ status: "Healthy", message: "2 of 2 keys usable" });
    }
  });
});

describe("the probe action", () => {
  const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

  it("is offered on a KeyPool", async () => {
    expect(await discover(await live("healthy"))).toEqual({
      probe: { disabled: false, iconClass: "fa fa-fw fa-stethoscope" },
    });
  });

  it("returns the object with keypool.dev/probe-requested-at set to the current time", async () => {
    const object = await live("healthy");
    const metadata = object.metadata as { annotations?: Record<string, string> };
    expect(metadata.annotations?.[PROBE_REQUEST_ANNOTATION]).toBeUndefined();
    const before = Math.floor(Date.now() / 1000) * 1000;
    const result = await runAction(object);
    const after = Date.now();
    const annotations = (result.metadata as { annotations: Record<string, string> }).annotations;
    const at = annotations[PROBE_REQUEST_ANNOTATION] ?? "";
    expect(at).toMatch(RFC3339_UTC);
    expect(Date.parse(at)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(at)).toBeLessThanOrEqual(after);
    // Nothing else changes.
    const { [PROBE_REQUEST_ANNOTATION]: _, ...rest } = annotations;
    expect(rest).toEqual(metadata.annotations ?? {});
    expect({ ...result, metadata: { ...(result.metadata as object), annotations: undefined } }).toEqual({
      ...object,
      metadata: { ...metadata, annotations: undefined },
    });
  });

  it("keeps other annotations and replaces an earlier request", async () => {
    const object = {
      apiVersion: "keypool.dev/v1alpha1",
      kind: "KeyPool",
      metadata: {
        name: "p",
        namespace: ns,
        annotations: { "example.com/owner": "team-a", [PROBE_REQUEST_ANNOTATION]: "2020-01-01T00:00:00Z" },
      },
      spec: { provider: "openai", keys: [{ secretRef: { name: "s" } }] },
    };
    const result = (await runAction(object)) as typeof object;
    expect(result.metadata.annotations["example.com/owner"]).toBe("team-a");
    expect(result.metadata.annotations[PROBE_REQUEST_ANNOTATION]).toMatch(RFC3339_UTC);
    expect(result.metadata.annotations[PROBE_REQUEST_ANNOTATION]).not.toBe("2020-01-01T00:00:00Z");
    expect(result.spec).toEqual(object.spec);
  });

  it("makes the operator probe every key, once applied as Argo CD would (a merge patch)", async () => {
    const result = await runAction(await live("healthy"));
    const requested = (result.metadata as { annotations: Record<string, string> }).annotations[
      PROBE_REQUEST_ANNOTATION
    ];
    const mark = fake.requests.length;
    await objects.patchNamespacedCustomObject(
      {
        ...keyPoolRef(ns),
        name: "healthy",
        body: { metadata: { annotations: { [PROBE_REQUEST_ANNOTATION]: requested } } },
      },
      mergePatch,
    );
    await api.waitForPool(ns, "healthy", (p) => p.status?.lastProbeRequest === requested);
    const probed = fake.requests
      .slice(mark)
      .filter((r) => r.path === "/v1/models")
      .map((r) => r.key);
    expect(probed).toEqual(expect.arrayContaining([K.a, K.b]));
  });
});

describe("argocd-cm-patch.yaml", () => {
  it("merges into a real argocd-cm ConfigMap, keeping what was there", async () => {
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "argocd-cm" }, data: { url: "https://argocd.example.com" } },
    });
    const patch = await kubectl([
      "-n",
      ns,
      "patch",
      "configmap",
      "argocd-cm",
      "--type",
      "merge",
      "--patch-file",
      `${GITOPS}argocd-cm-patch.yaml`,
    ]);
    expect(patch.stderr).toBe("");
    expect(patch.code).toBe(0);
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: "argocd-cm" });
    expect(cm.data?.url).toBe("https://argocd.example.com");
    expect(cm.data?.["resource.customizations.health.keypool.dev_KeyPool"]).toBe(
      await gitopsFile("keypool-health.lua"),
    );
    expect(cm.data?.["resource.customizations.actions.keypool.dev_KeyPool"]).toContain("action.lua");
  });
});
