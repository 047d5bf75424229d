/**
 * The watch cache's namespace index (src/controller/watch/cache.ts): a namespace's list holds
 * exactly that namespace's objects through watch events, swaps and whole relists.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ObjectCache } from "../../../src/controller/watch/cache.ts";

const object = (namespace: string | undefined, name: string, resourceVersion = "1"): KubernetesObject => ({
  metadata: { ...(namespace ? { namespace } : {}), name, resourceVersion },
});
const names = (objects: KubernetesObject[]) => objects.map((o) => o.metadata?.name).sort();

describe("the watch cache's lists by namespace", () => {
  it("follow additions, modifications and deletions, and forget an emptied namespace", () => {
    const cache = new ObjectCache();
    cache.apply("ADDED", object("a", "p1"));
    cache.apply("ADDED", object("a", "p2"));
    cache.apply("ADDED", object("b", "p1"));
    cache.apply("ADDED", object(undefined, "cluster-wide"));
    expect(names(cache.list("a"))).toEqual(["p1", "p2"]);
    expect(names(cache.list("b"))).toEqual(["p1"]);
    expect(cache.list("c")).toEqual([]);
    expect(names(cache.list())).toEqual(["cluster-wide", "p1", "p1", "p2"]);

    cache.apply("MODIFIED", object("a", "p1", "2"));
    expect(cache.list("a").find((o) => o.metadata?.name === "p1")?.metadata?.resourceVersion).toBe("2");
    cache.apply("DELETED", object("b", "p1"));
    expect(cache.list("b")).toEqual([]);
    expect(cache.size).toBe(3);
  });

  it("are rebuilt by a relist, and agree with get and a swap", () => {
    const cache = new ObjectCache();
    cache.apply("ADDED", object("a", "p1"));
    cache.apply("ADDED", object("a", "gone"));
    cache.replace([object("a", "p1"), object("b", "new")]);
    expect(names(cache.list("a"))).toEqual(["p1"]);
    expect(names(cache.list("b"))).toEqual(["new"]);
    const held = cache.get("b", "new") as KubernetesObject;
    expect(cache.swap(held, object("b", "new", "7")).stored).toBe(true);
    expect(cache.list("b")[0]?.metadata?.resourceVersion).toBe("7");
    expect(cache.get("b", "new")?.metadata?.resourceVersion).toBe("7");
  });
});
