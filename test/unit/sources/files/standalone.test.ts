import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PoolRegistry } from "../../../../src/pool/registry.ts";
import { createLogger } from "../../../../src/log.ts";
import { ManualClock } from "../../../../src/pool/clock.ts";
import { keyId } from "../../../../src/pool/identity.ts";
import { type StandaloneOptions, StandaloneSource } from "../../../../src/sources/files/standalone.ts";

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);
const REF = { namespace: "default", name: "gpt" };
/** Key values not shaped like provider keys, so the logger's own scrubbing cannot hide a leak. */
const KEY_A = "plain-key-aaaa-0001";
const KEY_B = "plain-key-bbbb-0002";
const KEY_C = "plain-key-cccc-0003";

function secretYaml(entries: Record<string, string>, name = "openai-keys"): string {
  const lines = Object.entries(entries).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  return `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\nstringData:\n${lines.join("\n")}\n`;
}

function poolYaml(
  spec = "provider: openai\n  keys: [{secretRef: {name: openai-keys}}]",
  name = "gpt",
): string {
  return `apiVersion: keypool.dev/v1alpha1\nkind: KeyPool\nmetadata:\n  name: ${name}\nspec:\n  ${spec}\n`;
}

let root: string;
let manifests: string;
let stateFile: string;
let clock: ManualClock;
let running: StandaloneSource[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "keypool-standalone-"));
  manifests = join(root, "manifests");
  stateFile = join(root, "state", "state.json");
  await mkdir(manifests);
  clock = new ManualClock(T0);
  running = [];
});

afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await rm(root, { recursive: true, force: true });
});

const write = (file: string, text: string) => writeFile(join(manifests, file), text);

/** A started source on `manifests` and `stateFile`, with timers far enough out that only reload() rescans. */
async function start(options: Partial<StandaloneOptions> = {}) {
  const registry = new PoolRegistry();
  let leases = 0;
  const source = new StandaloneSource({
    manifestsDir: manifests,
    env: {},
    defaultNamespace: "default",
    stateFile,
    registry,
    logger: createLogger({ level: "silent" }),
    clock,
    newLeaseToken: () => ++leases,
    rescanIntervalMs: 3_600_000,
    stateSaveIntervalMs: 3_600_000,
    ...options,
  });
  running.push(source);
  await source.start();
  return { source, registry };
}

/** A log destination that keeps every line. */
function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, destination };
}

function keysOf(registry: PoolRegistry, ref = REF) {
  const runtime = registry.get(ref);
  if (!runtime) throw new Error(`no pool ${ref.namespace}/${ref.name}`);
  return runtime.engine
    .keys()
    .map((k) => ({ id: k.id, source: k.source, state: k.state, untilMs: k.untilMs }));
}

describe("loading pools from a manifest directory", () => {
  it("puts each KeyPool in the registry with the keys of its Secrets, named by source", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A, b: `${KEY_B},${KEY_C}` }));
    await write("pool.yml", poolYaml());
    const { source, registry } = await start();

    expect(source.problems()).toEqual([]);
    const runtime = registry.get(REF);
    expect(runtime).toMatchObject({
      ref: REF,
      uid: undefined,
      generation: undefined,
      spec: { provider: "openai", strategy: "LeastLoaded" },
      usesSelector: false,
    });
    expect([...(runtime?.secretNames ?? [])]).toEqual(["openai-keys"]);
    expect(keysOf(registry)).toEqual([
      { id: keyId(KEY_A), source: "secret/openai-keys#a", state: "Healthy", untilMs: undefined },
      { id: keyId(KEY_B), source: "secret/openai-keys#b[0]", state: "Healthy", untilMs: undefined },
      { id: keyId(KEY_C), source: "secret/openai-keys#b[1]", state: "Healthy", untilMs: undefined },
    ]);
  });

  it("finds Secrets by label for a secretSelector, in the pool's namespace only", async () => {
    const labelled = (name: string, ns: string, key: string) =>
      `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: ${ns}, labels: {team: search}}\nstringData: {k: ${key}}\n`;
    await write(
      "all.yaml",
      [
        labelled("one", "ai", KEY_A),
        labelled("two", "ai", KEY_B),
        labelled("other", "default", KEY_C),
        "apiVersion: keypool.dev/v1alpha1\nkind: KeyPool\nmetadata: {name: search, namespace: ai}\n" +
          "spec: {provider: google, secretSelector: {matchLabels: {team: search}}}\n",
      ].join("---\n"),
    );
    const { registry } = await start();
    const ref = { namespace: "ai", name: "search" };
    expect(keysOf(registry, ref).map((k) => k.source)).toEqual(["secret/one#k", "secret/two#k"]);
    expect(registry.get(ref)?.usesSelector).toBe(true);
  });

  it("reports a missing Secret and an empty pool, one line each, and still serves the pool", async () => {
    await write("pool.yaml", poolYaml());
    const { source, registry } = await start();
    expect(registry.get(REF)?.engine.size).toBe(0);
    expect(source.problems()).toEqual([
      { ...REF, message: expect.stringContaining("Secret default/openai-keys (spec.keys[0]) not found") },
      { ...REF, message: expect.stringContaining("KeyPool default/gpt has no keys") },
    ]);
  });

  it("reports unreadable YAML with the file and position, never its text", async () => {
    await write("broken.yaml", `stringData: {a: ${KEY_A}\n  b: [x: ${KEY_B}: y`);
    const { source } = await start();
    const problems = source.problems();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      namespace: "",
      name: "",
      message: expect.stringContaining("broken.yaml"),
    });
    expect(problems[0]?.message).toMatch(/not valid YAML \(line \d+, column \d+\)/);
    expect(JSON.stringify(problems)).not.toContain("plain-key");
  });

  it("does not read its own state file as a manifest when it lives in the directory", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const inside = join(manifests, "state.json");
    const first = await start({ stateFile: inside });
    first.source.addKey(REF, KEY_B);
    await first.source.stop();
    const { lines, destination } = capture();
    const { source } = await start({
      stateFile: inside,
      logger: createLogger({ level: "debug", destination }),
    });
    expect(source.problems()).toEqual([]);
    expect(lines.join("")).toContain("pools loaded");
    expect(lines.join("")).not.toContain("state.json");
  });
});

describe("pools from environment variables", () => {
  it("makes GPT_4_KEYS=a,b pool gpt-4 with two keys in the default namespace", async () => {
    const { source, registry } = await start({
      manifestsDir: undefined,
      env: { GPT_4_KEYS: `${KEY_A},${KEY_B}` },
    });
    expect(source.problems()).toEqual([]);
    const ref = { namespace: "default", name: "gpt-4" };
    expect(registry.get(ref)?.spec.provider).toBe("openai");
    expect(keysOf(registry, ref).map((k) => [k.id, k.source])).toEqual([
      [keyId(KEY_A), "env/GPT_4_KEYS[0]"],
      [keyId(KEY_B), "env/GPT_4_KEYS[1]"],
    ]);
  });

  it("takes the provider from NAME_PROVIDER", async () => {
    const { registry } = await start({ env: { GPT_4_KEYS: KEY_A, GPT_4_PROVIDER: "anthropic" } });
    expect(registry.get({ namespace: "default", name: "gpt-4" })?.spec.provider).toBe("anthropic");
  });

  it("reports an invalid provider and serves no pool for it", async () => {
    const { source, registry } = await start({ env: { GPT_4_KEYS: KEY_A, GPT_4_PROVIDER: "openia" } });
    expect(registry.size).toBe(0);
    expect(source.problems()).toEqual([
      {
        namespace: "default",
        name: "gpt-4",
        message: expect.stringContaining("GPT_4_PROVIDER: Invalid option"),
      },
    ]);
  });

  it("lets a manifest win over a variable naming the same pool, and says so", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { source, registry } = await start({ env: { GPT_KEYS: KEY_B } });
    expect(keysOf(registry).map((k) => k.id)).toEqual([keyId(KEY_A)]);
    expect(source.problems()).toEqual([
      { ...REF, message: expect.stringContaining("GPT_KEYS is ignored: KeyPool default/gpt is defined in") },
    ]);
  });
});

describe("following changes", () => {
  it("adds and removes keys when a Secret file changes, keeping the state of the others", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A, b: KEY_B }));
    await write("pool.yaml", poolYaml());
    const { registry, source } = await start();
    const engine = registry.get(REF)?.engine;
    engine?.report({ keyId: keyId(KEY_A) }, { kind: "invalidKey", statusCode: 401 });

    await write("secret.yaml", secretYaml({ a: KEY_A, c: KEY_C }));
    await source.reload();

    expect(registry.get(REF)?.engine).toBe(engine);
    expect(keysOf(registry).map((k) => [k.id, k.state])).toEqual([
      [keyId(KEY_A), "Invalid"],
      [keyId(KEY_B), "Draining"],
      [keyId(KEY_C), "Healthy"],
    ]);
  });

  it("applies a changed spec to the same engine", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { registry, source } = await start();
    const engine = registry.get(REF)?.engine;
    await write(
      "pool.yaml",
      poolYaml("provider: openai\n  strategy: RoundRobin\n  keys: [{secretRef: {name: openai-keys}}]"),
    );
    await source.reload();
    expect(registry.get(REF)?.engine).toBe(engine);
    expect(registry.get(REF)?.spec.strategy).toBe("RoundRobin");
    expect(engine?.config.strategy).toBe("RoundRobin");
  });

  it("keeps the last valid version serving when a manifest becomes invalid, and reports the field", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { registry, source } = await start();

    await write(
      "pool.yaml",
      poolYaml("provider: openai\n  strategy: Fastest\n  keys: [{secretRef: {name: openai-keys}}]"),
    );
    await source.reload();

    expect(registry.get(REF)?.spec.strategy).toBe("LeastLoaded");
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Healthy"]);
    expect(source.problems()).toEqual([
      {
        ...REF,
        message: expect.stringMatching(
          /pool\.yaml: KeyPool default\/gpt is invalid: spec\.strategy: .*still serving/,
        ),
      },
    ]);

    await write("pool.yaml", poolYaml());
    await source.reload();
    expect(source.problems()).toEqual([]);
  });

  it("does not serve a pool whose manifest was never valid", async () => {
    await write("pool.yaml", poolYaml("provider: openai"));
    const { registry, source } = await start();
    expect(registry.size).toBe(0);
    expect(source.problems()[0]?.message).toContain("set spec.keys or spec.secretSelector");
    expect(source.problems()[0]?.message).toContain("not served until it is fixed");
  });

  it("removes a pool from the registry when its manifest is deleted", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { registry, source } = await start();
    expect(registry.get(REF)).toBeDefined();
    await unlink(join(manifests, "pool.yaml"));
    await source.reload();
    expect(registry.get(REF)).toBeUndefined();
    expect(source.addKey(REF, KEY_B)).toEqual({ ok: false, reason: "pool_not_found" });
  });
});

describe("the state file", () => {
  it("resumes Invalid marks and cooldowns after a restart", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A, b: KEY_B, c: KEY_C }));
    await write("pool.yaml", poolYaml());
    const first = await start();
    const engine = first.registry.get(REF)?.engine;
    const until = T0 + 10 * 60_000;
    engine?.report({ keyId: keyId(KEY_A) }, { kind: "invalidKey", statusCode: 401 });
    engine?.report({ keyId: keyId(KEY_B) }, { kind: "rateLimited", statusCode: 429, untilMs: until });
    await first.source.stop();

    clock.advance(60_000);
    const second = await start();
    expect(second.registry.get(REF)?.engine).not.toBe(engine);
    expect(keysOf(second.registry)).toEqual([
      { id: keyId(KEY_A), source: "secret/openai-keys#a", state: "Invalid", untilMs: undefined },
      { id: keyId(KEY_B), source: "secret/openai-keys#b", state: "RateLimited", untilMs: until },
      { id: keyId(KEY_C), source: "secret/openai-keys#c", state: "Healthy", untilMs: undefined },
    ]);
    clock.set(until);
    expect(keysOf(second.registry)[1]?.state).toBe("Healthy");
  });

  it("keeps a saved Invalid mark through restarts while the key's Secret is missing", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const first = await start();
    first.registry.get(REF)?.engine.report({ keyId: keyId(KEY_A) }, { kind: "invalidKey" });
    await first.source.stop();

    await unlink(join(manifests, "secret.yaml"));
    const second = await start();
    expect(second.registry.get(REF)?.engine.size).toBe(0);
    await second.source.stop();

    await write("secret.yaml", secretYaml({ a: KEY_A }));
    const third = await start();
    expect(keysOf(third.registry).map((k) => k.state)).toEqual(["Invalid"]);
  });

  it("keeps the state of a pool whose manifest goes away, for when it comes back", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { source, registry } = await start();
    registry.get(REF)?.engine.report({ keyId: keyId(KEY_A) }, { kind: "invalidKey" });
    await rename(join(manifests, "pool.yaml"), join(manifests, "pool.yaml.off"));
    await source.reload();
    expect(registry.get(REF)).toBeUndefined();
    await rename(join(manifests, "pool.yaml.off"), join(manifests, "pool.yaml"));
    await source.reload();
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Invalid"]);
  });

  it("writes no key material but the keys added through the API", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    const { source } = await start();
    source.addKey(REF, KEY_B);
    await source.stop();
    const text = await readFile(stateFile, "utf8");
    expect(text).not.toContain(KEY_A);
    expect(JSON.parse(text)).toMatchObject({
      version: 1,
      pools: { "default/gpt": { version: 1, keys: [{ id: keyId(KEY_A) }, { id: keyId(KEY_B) }] } },
      addedKeys: { "default/gpt": [KEY_B] },
    });
  });

  it("ignores a corrupt state file, keeping a backup, and starts fresh", async () => {
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    await mkdir(join(root, "state"));
    await writeFile(stateFile, `{"version": 1, "pools": {${KEY_A}`);

    const { source, registry } = await start();
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Healthy"]);
    const backups = (await readdir(join(root, "state"))).filter((f) => f.startsWith("state.json.corrupt-"));
    expect(backups).toHaveLength(1);
    expect(await readFile(join(root, "state", backups[0] ?? ""), "utf8")).toContain("pools");

    await source.stop();
    expect(JSON.parse(await readFile(stateFile, "utf8"))).toMatchObject({ version: 1 });
  });

  it("ignores a state file of another shape the same way", async () => {
    await mkdir(join(root, "state"));
    await writeFile(stateFile, JSON.stringify({ version: 2, pools: [] }));
    const { registry } = await start({ env: { X_KEYS: KEY_A } });
    expect(registry.size).toBe(1);
    expect((await readdir(join(root, "state"))).some((f) => f.startsWith("state.json.corrupt-"))).toBe(true);
  });
});

describe("keys added and removed through the API", () => {
  it("keeps added keys across a restart in a file only its owner can read, and removes them again", async () => {
    const { source, registry } = await start({ env: { GPT_KEYS: KEY_A } });
    const added = source.addKey(REF, KEY_B);
    expect(added).toEqual({ ok: true, keyId: keyId(KEY_B) });
    expect(keysOf(registry).map((k) => [k.id, k.source])).toEqual([
      [keyId(KEY_A), "env/GPT_KEYS[0]"],
      [keyId(KEY_B), `api/${keyId(KEY_B)}`],
    ]);
    await source.stop();
    expect((await stat(stateFile)).mode & 0o777).toBe(0o600);

    const second = await start({ env: { GPT_KEYS: KEY_A } });
    expect(keysOf(second.registry).map((k) => k.id)).toEqual([keyId(KEY_A), keyId(KEY_B)]);
    expect(second.source.removeKey(REF, keyId(KEY_B))).toEqual({ ok: true });
    expect(keysOf(second.registry).map((k) => k.state)).toEqual(["Healthy", "Draining"]);
    await second.source.stop();

    const third = await start({ env: { GPT_KEYS: KEY_A } });
    expect(keysOf(third.registry).map((k) => k.id)).toEqual([keyId(KEY_A)]);
  });

  it("answers why an add or a remove did not happen", async () => {
    const { source } = await start({ env: { GPT_KEYS: KEY_A } });
    expect(source.addKey(REF, KEY_A)).toEqual({ ok: false, reason: "already_present" });
    expect(source.addKey({ namespace: "default", name: "nope" }, KEY_B)).toEqual({
      ok: false,
      reason: "pool_not_found",
    });
    expect(source.addKey(REF, "  ")).toEqual({ ok: false, reason: "invalid_key" });
    expect(source.addKey(REF, `${KEY_B},${KEY_C}`)).toEqual({ ok: false, reason: "invalid_key" });
    expect(source.addKey(REF, KEY_B)).toMatchObject({ ok: true });
    expect(source.addKey(REF, ` ${KEY_B} `)).toEqual({ ok: false, reason: "already_present" });

    expect(source.removeKey(REF, keyId(KEY_C))).toEqual({ ok: false, reason: "not_found" });
    expect(source.removeKey({ namespace: "default", name: "nope" }, keyId(KEY_B))).toEqual({
      ok: false,
      reason: "pool_not_found",
    });
  });
});

describe("removing keys that came from a source", () => {
  it("a *_KEYS key goes until restart, and an add brings it back at once", async () => {
    const { source, registry } = await start({ env: { GPT_KEYS: `${KEY_A},${KEY_B}` } });
    expect(source.removeKey(REF, keyId(KEY_A))).toEqual({ ok: true });
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Draining", "Healthy"]);
    expect(source.removeKey(REF, keyId(KEY_A))).toEqual({ ok: false, reason: "not_found" });
    // A rescan keeps it out: the variable did not change, the removal stands.
    await source.reload();
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Draining", "Healthy"]);
    expect(source.addKey(REF, KEY_A)).toEqual({ ok: true, keyId: keyId(KEY_A) });
    expect(keysOf(registry).map((k) => k.state)).toEqual(["Healthy", "Healthy"]);

    expect(source.removeKey(REF, keyId(KEY_B))).toEqual({ ok: true });
    await source.stop();
    const restarted = await start({ env: { GPT_KEYS: `${KEY_A},${KEY_B}` } });
    expect(keysOf(restarted.registry).map((k) => [k.id, k.state])).toEqual([
      [keyId(KEY_A), "Healthy"],
      [keyId(KEY_B), "Healthy"],
    ]);
  });

  it("a manifest's key cannot be removed through the API: its file is the source of truth", async () => {
    await write("pool.yaml", `${secretYaml({ a: KEY_A })}---\n${poolYaml()}`);
    const { source } = await start();
    expect(source.removeKey(REF, keyId(KEY_A))).toEqual({ ok: false, reason: "not_removable" });
  });
});

describe("logging", () => {
  it("never writes a key value, even at debug level", async () => {
    const { lines, destination } = capture();
    await write("secret.yaml", secretYaml({ a: KEY_A }));
    await write("pool.yaml", poolYaml());
    await write("broken.yaml", `a: [${KEY_B}: x\n  - ${KEY_B}`);
    await write("plain.yaml", `apiVersion: v1\nkind: Secret\nmetadata: {name: p}\ndata: {a: ${KEY_C}}\n`);
    const { source, registry } = await start({
      logger: createLogger({ level: "debug", destination }),
      env: { X_KEYS: KEY_C, X_STRATEGY: KEY_B },
    });
    source.addKey(REF, KEY_C);
    registry.get(REF)?.engine.report({ keyId: keyId(KEY_A) }, { kind: "invalidKey" });
    await source.stop();
    const text = lines.join("");
    expect(text).toContain("key state changed");
    expect(text).toContain("broken.yaml");
    for (const key of [KEY_A, KEY_B, KEY_C]) expect(text).not.toContain(key);
  });
});
