/**
 * ResourceWatcher against a real kube-apiserver + etcd: the shared control plane for the normal
 * paths, and one of its own for an API server restart. Secrets carry the keypool.dev/secret label;
 * every test works in a namespace of its own.
 */
import { CoreV1Api, KubeConfig, type V1Secret, Watch } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ResourceWatcher, type WatcherOptions, type WatchEventType } from "../../src/controller/watcher.ts";
import { createLogger, type LogLevel } from "../../src/log.ts";
import { ensureBinaries } from "../support/control-plane/build.ts";
import { ControlPlane } from "../support/control-plane/control-plane.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";

const LABEL = "keypool.dev/secret";
const logger = createLogger({ level: (process.env.TEST_LOG_LEVEL as LogLevel | undefined) ?? "silent" });
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);

interface Seen {
  type: WatchEventType;
  name: string;
  resourceVersion: string;
  oldResourceVersion: string | undefined;
  /** stats.lists when the event was emitted: tells a relist's diff from a watch event. */
  lists: number;
  at: number;
}

function labelled(name: string, value = "v1", label = true): V1Secret {
  return {
    metadata: { name, labels: label ? { [LABEL]: "true" } : { other: "x" } },
    stringData: { k: value },
  };
}

const watchers: ResourceWatcher<V1Secret>[] = [];
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.stop()));
});

/** Starts a watcher of a namespace's labelled Secrets that records what it emits. */
function watch(
  { namespace, ...options }: Partial<WatcherOptions<V1Secret>> & { namespace: string },
  Class: typeof ResourceWatcher<V1Secret> = ResourceWatcher,
) {
  const seen: Seen[] = [];
  const watcher: ResourceWatcher<V1Secret> = new Class({
    kc,
    path: `/api/v1/namespaces/${namespace}/secrets`,
    labelSelector: LABEL,
    logger,
    clock: { now: () => Date.now() },
    watchdogMs: 20_000,
    backoff: { initialMs: 200, maxMs: 2_000 },
    ...options,
    onEvent: (type, object, old) => {
      seen.push({
        type,
        name: object.metadata?.name ?? "",
        resourceVersion: object.metadata?.resourceVersion ?? "",
        oldResourceVersion: old?.metadata?.resourceVersion,
        lists: watcher.stats.lists,
        at: Date.now(),
      });
    },
  });
  watchers.push(watcher);
  const saw = (type: WatchEventType, name: string) => seen.find((s) => s.type === type && s.name === name);
  return { watcher, seen, saw };
}

/** Names and resourceVersions of a namespace's labelled Secrets, as the API server has them. */
async function serverState(api: CoreV1Api, namespace: string): Promise<Record<string, string>> {
  const list = await api.listNamespacedSecret({ namespace, labelSelector: LABEL });
  return Object.fromEntries(
    list.items.map((s) => [s.metadata?.name ?? "", s.metadata?.resourceVersion ?? ""]),
  );
}

function cacheState(watcher: ResourceWatcher<V1Secret>): Record<string, string> {
  return Object.fromEntries(
    watcher.list().map((s) => [s.metadata?.name ?? "", s.metadata?.resourceVersion ?? ""]),
  );
}

/** The Status code of the first event of a watch from `resourceVersion`, if it is an ERROR. */
async function firstWatchEvent(
  config: KubeConfig,
  path: string,
  resourceVersion: string,
): Promise<{ type: string; code?: number } | undefined> {
  let settle!: (event: { type: string; code?: number } | undefined) => void;
  const first = new Promise<{ type: string; code?: number } | undefined>((resolve) => {
    settle = resolve;
  });
  const timer = setTimeout(() => settle(undefined), 3_000);
  const controller = await new Watch(config).watch(
    path,
    { resourceVersion, labelSelector: LABEL },
    (type, object: { code?: number }) => settle({ type, code: object.code }),
    () => settle(undefined),
  );
  try {
    return await first;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

describe("ResourceWatcher on the shared control plane", () => {
  it("caches labelled Secrets only and delivers creates, updates and deletes", async () => {
    const namespace = await createTestNamespace(kc, "watch-basic");
    for (const name of ["a", "b", "c", "d", "e"])
      await core.createNamespacedSecret({ namespace, body: labelled(name) });
    await core.createNamespacedSecret({ namespace, body: labelled("plain", "v1", false) });

    // pageSize 2: the first list takes three pages.
    const { watcher, seen, saw } = watch({ namespace, pageSize: 2 });
    await watcher.start();
    expect(watcher.synced).toBe(true);
    expect(watcher.size).toBe(5);
    expect(watcher.get(namespace, "plain")).toBeUndefined();
    expect(seen.map((s) => `${s.type} ${s.name}`).sort()).toEqual(
      ["a", "b", "c", "d", "e"].map((n) => `ADDED ${n}`),
    );
    const a = watcher.get(namespace, "a");
    expect(a?.kind).toBe("Secret");
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype);
    expect(watcher.list(namespace)).toHaveLength(5);
    expect(watcher.list("elsewhere")).toHaveLength(0);
    await eventually(async () => watcher.connected, 10_000);

    await core.createNamespacedSecret({ namespace, body: labelled("f") });
    await eventually(async () => saw("ADDED", "f"), 10_000);

    const before = watcher.get(namespace, "b")?.metadata?.resourceVersion;
    await core.replaceNamespacedSecret({ namespace, name: "b", body: labelled("b", "v2") });
    const modified = await eventually(async () => saw("MODIFIED", "b"), 10_000);
    expect(modified.oldResourceVersion).toBe(before);
    expect(watcher.get(namespace, "b")?.data?.k).toBe(Buffer.from("v2").toString("base64"));

    await core.deleteNamespacedSecret({ namespace, name: "c" });
    await eventually(async () => saw("DELETED", "c"), 10_000);
    expect(watcher.get(namespace, "c")).toBeUndefined();

    // An unlabelled Secret stays out until it gets the label, and leaves when it loses it.
    await core.replaceNamespacedSecret({ namespace, name: "plain", body: labelled("plain", "v2", false) });
    await core.replaceNamespacedSecret({ namespace, name: "plain", body: labelled("plain", "v3") });
    await eventually(async () => saw("ADDED", "plain"), 10_000);
    await core.replaceNamespacedSecret({ namespace, name: "plain", body: labelled("plain", "v4", false) });
    await eventually(async () => saw("DELETED", "plain"), 10_000);

    expect(cacheState(watcher)).toEqual(await serverState(core, namespace));
    expect(seen.filter((s) => s.name === "plain").map((s) => s.type)).toEqual(["ADDED", "DELETED"]);
    expect(watcher.stats).toMatchObject({ lists: 1, errors: 0, relists410: 0, watchdogAborts: 0 });
    expect(watcher.staleForMs()).toBeLessThan(10_000);

    await watcher.stop();
    await watcher.stop();
    expect(watcher.connected).toBe(false);
    await expect(watcher.relist()).rejects.toMatchObject({ code: "watcher_stopped" });
  });

  it("aborts a watch that stays silent past the watchdog, relists, and still delivers", async () => {
    const namespace = await createTestNamespace(kc, "watch-dog");
    await core.createNamespacedSecret({ namespace, body: labelled("a") });
    const { watcher, saw } = watch({ namespace, watchdogMs: 1_500 });
    const started = Date.now();
    await watcher.start();
    // Each abort is followed by a relist.
    await eventually(async () => watcher.stats.watchdogAborts >= 2 && watcher.stats.lists >= 3, 20_000);
    const elapsed = Date.now() - started;
    expect(watcher.stats.errors).toBe(0);
    // Two aborts need at least two silent periods.
    expect(elapsed).toBeGreaterThanOrEqual(3_000);

    await core.createNamespacedSecret({ namespace, body: labelled("b") });
    await eventually(async () => saw("ADDED", "b"), 10_000);
    expect(cacheState(watcher)).toEqual(await serverState(core, namespace));
    expect(watcher.staleForMs()).toBeLessThan(10_000);
  });

  it("repairs a missed event with the periodic relist", async () => {
    const namespace = await createTestNamespace(kc, "watch-relist");
    for (const name of ["victim", "bystander", "gone"])
      await core.createNamespacedSecret({ namespace, body: labelled(name) });

    /** Loses the first watch event about "victim" and the first about "gone", as a flaky network might. */
    class Lossy extends ResourceWatcher<V1Secret> {
      dropped: string[] = [];
      droppedAtLists = 0;
      protected override acceptWatchEvent(type: WatchEventType, object: V1Secret): boolean {
        const name = object.metadata?.name ?? "";
        if ((name === "victim" || name === "gone") && !this.dropped.some((d) => d.endsWith(` ${name}`))) {
          this.dropped.push(`${type} ${name}`);
          this.droppedAtLists = this.stats.lists;
          return false;
        }
        return true;
      }
    }
    const { watcher, seen, saw } = watch({ namespace, relistIntervalMs: 3_000 }, Lossy);
    const lossy = watcher as Lossy;
    await watcher.start();
    await eventually(async () => watcher.connected, 10_000);
    const victimBefore = watcher.get(namespace, "victim")?.metadata?.resourceVersion;

    await core.replaceNamespacedSecret({ namespace, name: "victim", body: labelled("victim", "v2") });
    await core.deleteNamespacedSecret({ namespace, name: "gone" });
    await eventually(async () => lossy.dropped.length === 2, 10_000);
    expect(lossy.dropped).toEqual(["MODIFIED victim", "DELETED gone"]);

    const modified = await eventually(async () => saw("MODIFIED", "victim"), 20_000);
    const deleted = await eventually(async () => saw("DELETED", "gone"), 20_000);
    // Emitted by a relist that came after the loss.
    expect(modified.lists).toBeGreaterThan(lossy.droppedAtLists);
    expect(deleted.lists).toBeGreaterThan(lossy.droppedAtLists);
    expect(modified.oldResourceVersion).toBe(victimBefore);
    expect(watcher.get(namespace, "victim")?.data?.k).toBe(Buffer.from("v2").toString("base64"));
    expect(watcher.get(namespace, "gone")).toBeUndefined();
    expect(cacheState(watcher)).toEqual(await serverState(core, namespace));
    // The bystander was listed again and again without an event.
    expect(seen.filter((s) => s.name === "bystander").map((s) => s.type)).toEqual(["ADDED"]);
  });
});

describe("ResourceWatcher and 410 Gone", () => {
  // Watches of Secrets go straight to etcd (no watch cache), and etcd is compacted every 2 s: a
  // watch from an old resourceVersion gets the real "410 Expired" ERROR event. (With the watch
  // cache on, kube-apiserver 1.34 serves an old resourceVersion instead of refusing it.)
  let plane: ControlPlane | undefined;
  let planeKc: KubeConfig;
  let api: CoreV1Api;

  beforeAll(async () => {
    plane = await ControlPlane.start({
      binaries: await ensureBinaries(),
      extraApiServerFlags: ["--watch-cache-sizes=secrets#0", "--etcd-compaction-interval=2s"],
    });
    planeKc = new KubeConfig();
    planeKc.loadFromFile(plane.kubeconfigPath);
    api = planeKc.makeApiClient(CoreV1Api);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(watchers.splice(0).map((w) => w.stop()));
    await plane?.stop();
  }, 60_000);

  it("relists after a watch answers 410 Gone and keeps the cache right", async () => {
    const namespace = await createTestNamespace(planeKc, "watch-gone");
    for (const name of ["a", "b", "c"]) await api.createNamespacedSecret({ namespace, body: labelled(name) });
    // Let the compactor pass over those writes.
    await eventually(
      async () =>
        (await firstWatchEvent(planeKc, `/api/v1/namespaces/${namespace}/secrets`, "1"))?.code === 410,
      20_000,
      500,
    );

    /** Starts its first watch from resourceVersion 1, compacted away by now. */
    class StaleResume extends ResourceWatcher<V1Secret> {
      tampered = 0;
      protected override watchResourceVersion(resourceVersion: string): string {
        if (this.tampered > 0) return resourceVersion;
        this.tampered++;
        return "1";
      }
    }
    const { watcher, seen, saw } = watch({ namespace, kc: planeKc }, StaleResume);
    await watcher.start();
    await eventually(async () => watcher.stats.relists410 > 0 && watcher.connected, 20_000);
    expect(watcher.stats.lists).toBe(2);
    expect(watcher.stats.errors).toBe(0);
    // The relist found nothing new: no event twice.
    expect(seen.map((s) => `${s.type} ${s.name}`).sort()).toEqual(["ADDED a", "ADDED b", "ADDED c"]);

    await api.createNamespacedSecret({ namespace, body: labelled("d") });
    await api.deleteNamespacedSecret({ namespace, name: "a" });
    await api.replaceNamespacedSecret({ namespace, name: "b", body: labelled("b", "v2") });
    await eventually(async () => saw("ADDED", "d") && saw("DELETED", "a") && saw("MODIFIED", "b"), 10_000);
    expect(cacheState(watcher)).toEqual(await serverState(api, namespace));
    expect(watcher.stats.relists410).toBe(1);
  });
});

describe("ResourceWatcher across an API server restart", () => {
  let plane: ControlPlane | undefined;
  let planeKc: KubeConfig;
  let api: CoreV1Api;

  beforeAll(async () => {
    plane = await ControlPlane.start({ binaries: await ensureBinaries() });
    planeKc = new KubeConfig();
    planeKc.loadFromFile(plane.kubeconfigPath);
    api = planeKc.makeApiClient(CoreV1Api);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(watchers.splice(0).map((w) => w.stop()));
    await plane?.stop();
  }, 60_000);

  it("reconnects by itself and sees every change made after the restart", async () => {
    if (!plane) throw new Error("no control plane");
    const namespace = await createTestNamespace(planeKc, "watch-restart");
    for (const name of ["a", "b"]) await api.createNamespacedSecret({ namespace, body: labelled(name) });
    const { watcher, saw } = watch({ namespace, kc: planeKc });
    await watcher.start();
    await eventually(async () => watcher.connected, 10_000);

    // Note when the watch stream goes and comes back, at a 10 ms grain.
    const t0 = Date.now();
    let lostAt: number | undefined;
    let backAt: number | undefined;
    const poll = setInterval(() => {
      if (!watcher.connected) lostAt ??= Date.now();
      else if (lostAt !== undefined) backAt ??= Date.now();
    }, 10);
    try {
      await plane.stopApiServer();
      const stopped = Date.now();
      await eventually(async () => !watcher.connected && watcher.stats.errors > 0, 15_000);
      // Down for a moment: the watcher keeps retrying with backoff.
      await new Promise((r) => setTimeout(r, 2_000));
      const errorsWhileDown = watcher.stats.errors;
      expect(errorsWhileDown).toBeGreaterThan(0);

      const restarting = Date.now();
      await plane.startApiServer();
      const ready = Date.now();
      // Made the moment the API server is back, before anyone could tell the watcher: it must find them.
      await api.createNamespacedSecret({ namespace, body: labelled("made-at-restart") });
      await api.deleteNamespacedSecret({ namespace, name: "b" });
      const added = await eventually(async () => saw("ADDED", "made-at-restart"), 30_000);
      const deleted = await eventually(async () => saw("DELETED", "b"), 30_000);
      await eventually(async () => backAt !== undefined, 30_000);

      const created = Date.now();
      await api.createNamespacedSecret({ namespace, body: labelled("made-after") });
      const late = await eventually(async () => saw("ADDED", "made-after"), 10_000);

      expect(cacheState(watcher)).toEqual(await serverState(api, namespace));
      expect(watcher.stats.errors).toBeGreaterThanOrEqual(errorsWhileDown);
      const ms = (t: number | undefined) => (t === undefined ? "?" : `${t} ms`);
      console.log(
        `[watcher restart] stream lost ${ms((lostAt ?? t0) - t0)} after stop began; stopApiServer took ${stopped - t0} ms; ` +
          `down (no process) ${restarting - stopped} ms; startApiServer took ${ready - restarting} ms; ` +
          `errors while down ${errorsWhileDown}; stream back ${ms((backAt ?? 0) - restarting)} after the restart began ` +
          `(${ms((backAt ?? 0) - ready)} relative to /readyz); made-at-restart seen ${added.at - ready} ms and its ` +
          `delete ${deleted.at - ready} ms after /readyz (via ${added.lists > 1 ? "relist or watch after relist" : "watch"}); ` +
          `a later create delivered in ${late.at - created} ms; stats ${JSON.stringify(watcher.stats)}`,
      );
    } finally {
      clearInterval(poll);
    }
  });
});
