/**
 * The standalone source following a real directory: fs.watch timing and the periodic rescan,
 * with no reload() calls. Needs no cluster.
 */
import { mkdir, mkdtemp, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PoolRegistry } from "../../src/pool/registry.ts";
import { createLogger } from "../../src/log.ts";
import { ManualClock } from "../../src/pool/clock.ts";
import { keyId } from "../../src/pool/identity.ts";
import { type StandaloneOptions, StandaloneSource } from "../../src/sources/files/standalone.ts";
import { eventually } from "../support/eventually.ts";

const REF = { namespace: "default", name: "gpt" };
const POOL = `apiVersion: keypool.dev/v1alpha1
kind: KeyPool
metadata: {name: gpt}
spec: {provider: openai, keys: [{secretRef: {name: openai-keys}}]}
`;
const secret = (...keys: string[]) =>
  `apiVersion: v1\nkind: Secret\nmetadata: {name: openai-keys}\nstringData: {k: "${keys.join(",")}"}\n`;

let dir: string;
let running: StandaloneSource[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "keypool-standalone-it-"));
  running = [];
});

afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await rm(dir, { recursive: true, force: true });
});

async function start(options: Partial<StandaloneOptions>) {
  const registry = new PoolRegistry();
  let n = 0;
  const source = new StandaloneSource({
    manifestsDir: dir,
    env: {},
    defaultNamespace: "default",
    stateFile: undefined,
    registry,
    logger: createLogger({ level: "silent" }),
    clock: new ManualClock(),
    newLeaseToken: () => ++n,
    ...options,
  });
  running.push(source);
  await source.start();
  return { source, registry };
}

const usableIds = (registry: PoolRegistry) => registry.get(REF)?.engine.usableKeyIds().sort().join(",");

describe("following a manifest directory", () => {
  it("picks up an edited Secret through fs.watch, long before the next rescan", async () => {
    await writeFile(join(dir, "secret.yaml"), secret("key-one-0001"));
    await writeFile(join(dir, "pool.yaml"), POOL);
    const { registry } = await start({ rescanIntervalMs: 3_600_000 });
    expect(usableIds(registry)).toBe(keyId("key-one-0001"));

    await writeFile(join(dir, "secret.yaml"), secret("key-one-0001", "key-two-0002"));
    const want = [keyId("key-one-0001"), keyId("key-two-0002")].sort().join(",");
    await eventually(async () => usableIds(registry) === want, 5_000, 20);
  });

  it("picks up a file replaced by rename (how editors and Kubernetes volumes write)", async () => {
    await writeFile(join(dir, "secret.yaml"), secret("key-one-0001"));
    const { registry } = await start({ rescanIntervalMs: 3_600_000 });
    expect(registry.size).toBe(0);

    await writeFile(join(dir, ".pool.yaml.tmp"), POOL);
    await rename(join(dir, ".pool.yaml.tmp"), join(dir, "pool.yaml"));
    await eventually(async () => registry.get(REF) !== undefined, 5_000, 20);

    await unlink(join(dir, "pool.yaml"));
    await eventually(async () => registry.get(REF) === undefined, 5_000, 20);
  });

  it("rescans when there is nothing to watch yet: a directory that appears later", async () => {
    const later = join(dir, "later");
    const { source, registry } = await start({ manifestsDir: later, rescanIntervalMs: 100 });
    expect(source.problems().map((p) => p.message)).toEqual([
      expect.stringContaining(`cannot read manifest directory ${later} (ENOENT)`),
    ]);
    await mkdir(later);
    await writeFile(join(later, "all.yaml"), `${secret("key-one-0001")}---\n${POOL}`);
    await eventually(async () => usableIds(registry) === keyId("key-one-0001"), 5_000, 20);
    expect(source.problems()).toEqual([]);

    // Once the directory exists it is watched too (and rescanned).
    await writeFile(join(later, "all.yaml"), `${secret("key-two-0002")}---\n${POOL}`);
    await eventually(async () => usableIds(registry) === keyId("key-two-0002"), 5_000, 20);
  });

  it("saves the state file on its own, without a stop", async () => {
    const stateFile = join(dir, "state", "state.json");
    await writeFile(join(dir, "secret.yaml"), secret("key-one-0001"));
    await writeFile(join(dir, "pool.yaml"), POOL);
    const { registry } = await start({ stateFile, stateSaveIntervalMs: 50 });
    registry.get(REF)?.engine.report({ keyId: keyId("key-one-0001") }, { kind: "invalidKey" });
    await eventually(async () => (await readFile(stateFile, "utf8")).includes('"Invalid"'), 5_000, 20);
  });
});
