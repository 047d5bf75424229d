import { describe, expect, it } from "vitest";
import { RecentIds } from "../../../src/notify/recent-ids.ts";

describe("the ids seen lately", () => {
  it("takes an id once", () => {
    const ids = new RecentIds(10);
    expect([ids.add("a"), ids.add("a"), ids.add("b"), ids.add("a")]).toEqual([true, false, true, false]);
  });

  it("forgets the least recently seen id when full", () => {
    const ids = new RecentIds(2);
    ids.add("a");
    ids.add("b");
    ids.add("a"); // a is seen again: b is now the oldest
    ids.add("c");
    expect([ids.has("a"), ids.has("b"), ids.has("c"), ids.size]).toEqual([true, false, true, 2]);
  });

  it("takes a forgotten id again", () => {
    const ids = new RecentIds(1);
    ids.add("a");
    ids.add("b");
    expect(ids.add("a")).toBe(true);
  });
});
