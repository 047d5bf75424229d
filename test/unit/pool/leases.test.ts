import { describe, expect, it } from "vitest";
import { LEASE_TOKEN_LIMIT, LeaseTable } from "../../../src/pool/leases.ts";
import { keys, makePool } from "./helpers.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Tokens as the operator draws them: random below the limit (seeded, so failures replay). */
function tokens(seed = 1) {
  let x = seed;
  return () => {
    x = (x * 48271) % 2147483647;
    return (x * 131071) % LEASE_TOKEN_LIMIT;
  };
}

describe("LeaseTable", () => {
  it("closes a lease once, by the id it gave out", () => {
    const table = new LeaseTable();
    const id = table.add("k1", 1000, 42);
    expect(table.open).toBe(1);
    expect(table.get(id)).toBe("k1");
    expect(table.close(id)).toBe("k1");
    expect(table.open).toBe(0);
    expect(table.close(id)).toBeUndefined();
    expect(table.get(id)).toBeUndefined();
  });

  it("refuses ids it did not give out: wrong token, unknown sequence, garbage, another table's", () => {
    const table = new LeaseTable();
    const other = new LeaseTable();
    const id = table.add("k1", 1000, 42);
    const [seq] = id.split(".");
    const foreign = other.add("k1", 1000, 7);
    for (const bad of [
      `${seq}.${(43).toString(36)}`,
      `zz.${(42).toString(36)}`,
      foreign,
      "",
      "1",
      ".",
      "0.",
      "-1.16",
      "0.16.0",
      "0.1g",
      "0.16 ",
      "00000000000000000000.16",
      "550e8400-e29b-41d4-a716-446655440000",
    ])
      expect(table.close(bad), bad).toBeUndefined();
    expect(table.open).toBe(1);
    expect(table.close(id)).toBe("k1");
  });

  it("expires leases in the order they were opened, skipping closed ones, and only when due", () => {
    const table = new LeaseTable();
    const next = tokens();
    const a = table.add("a", 100, next());
    const b = table.add("b", 200, next());
    table.add("c", 300, next());
    table.close(a);
    const ended: string[] = [];
    table.expire(99, (k) => ended.push(k));
    expect(ended).toEqual([]);
    table.expire(250, (k) => ended.push(k));
    expect(ended).toEqual(["b"]);
    expect(table.close(b)).toBeUndefined();
    expect(table.open).toBe(1);
    table.expire(300, (k) => ended.push(k));
    expect(ended).toEqual(["b", "c"]);
    expect(table.open).toBe(0);
  });

  it("keeps every lease through growth well past its first capacity, and after the ring wraps", () => {
    const table = new LeaseTable();
    const next = tokens(7);
    const ids: string[] = [];
    // Open and expire in waves, so the ring wraps several times before and after growing.
    let now = 0;
    for (let wave = 0; wave < 6; wave++) {
      for (let i = 0; i < 700 * (wave + 1); i++) ids.push(table.add(`k${i % 13}`, now + 10, next()));
      now += 10;
      let expired = 0;
      if (wave < 5) {
        table.expire(now, () => expired++);
        expect(expired).toBe(700 * (wave + 1));
        ids.length = 0;
      }
    }
    expect(table.open).toBe(4200);
    ids.forEach((id, i) => expect(table.get(id)).toBe(`k${i % 13}`));
    ids.forEach((id, i) => expect(table.close(id)).toBe(`k${i % 13}`));
    expect(table.open).toBe(0);
  });

  it("holds a few slots while idle, grows for a burst and gives the slots back once it has ended", () => {
    const table = new LeaseTable();
    const next = tokens(11);
    const idle = table.capacity;
    expect(idle).toBeLessThanOrEqual(8);
    const ids = Array.from({ length: 5000 }, (_, i) => table.add(`k${i % 5}`, 100 + (i % 2), next()));
    expect(table.capacity).toBeGreaterThanOrEqual(5000);
    // Half are reported, the rest expire: the table is still held until every one has ended.
    ids.filter((_, i) => i % 2 === 0).forEach((id) => table.close(id));
    table.expire(100, () => {});
    expect(table.open).toBe(2500);
    expect(table.capacity).toBeGreaterThanOrEqual(5000);
    let ended = 0;
    table.expire(101, () => ended++);
    expect(ended).toBe(2500);
    expect(table.capacity).toBe(idle);
    // Ids of the burst mean nothing now; new leases work as before.
    expect(table.get(ids[1] as string)).toBeUndefined();
    const id = table.add("k9", 500, next());
    expect(table.get(id)).toBe("k9");
    expect(table.close(id)).toBe("k9");
  });

  it("forgets every lease of a key that left, and nothing else", () => {
    const table = new LeaseTable();
    const next = tokens(3);
    const ids = Array.from({ length: 3000 }, (_, i) =>
      table.add(i % 3 === 0 ? "gone" : "kept", 1000, next()),
    );
    table.forgetKey("gone");
    expect(table.open).toBe(2000);
    ids.forEach((id, i) => expect(table.get(id)).toBe(i % 3 === 0 ? undefined : "kept"));
    const ended: string[] = [];
    table.expire(1000, (k) => ended.push(k));
    expect(ended).toHaveLength(2000);
    expect(new Set(ended)).toEqual(new Set(["kept"]));
  });
});

describe("leases of different lifetimes (leases.duration changed while leases were open)", () => {
  it.each<[string, Array<[string, number]>, Array<[number, string[]]>]>([
    [
      "a short lease opened after a long one ends on time, not behind it",
      [
        ["long", 30_000],
        ["short", 1_000],
      ],
      [
        [999, []],
        [1_000, ["short"]],
        [29_999, []],
        [30_000, ["long"]],
      ],
    ],
    [
      "many short leases behind a few long ones all end on time",
      [
        ["long", 60_000],
        ["short", 2_000],
        ["short", 2_000],
        ["long", 60_000],
        ["short", 2_000],
      ],
      [
        [2_000, ["short", "short", "short"]],
        [60_000, ["long", "long"]],
      ],
    ],
    [
      "a lifetime that grows back keeps order among the longer leases",
      [
        ["a", 5_000],
        ["b", 1_000],
        ["c", 10_000],
        ["d", 3_000],
      ],
      [
        [1_000, ["b"]],
        [3_000, ["d"]],
        [5_000, ["a"]],
        [10_000, ["c"]],
      ],
    ],
  ])("%s", (_name, opened, steps) => {
    const table = new LeaseTable();
    const next = tokens(5);
    for (const [keyId, lifetime] of opened) table.add(keyId, lifetime, next());
    for (const [now, expected] of steps) {
      const ended: string[] = [];
      table.expire(now, (k) => ended.push(k));
      expect(ended, `at ${now}`).toEqual(expected);
    }
    expect(table.open).toBe(0);
  });

  it("after leases.duration shrinks, new leases stop counting as in flight on time", () => {
    const { engine, clock } = makePool({ strategy: "LeastLoaded", leaseDurationMs: 5 * MINUTE }, keys("a"));
    for (let i = 0; i < 3; i++) engine.pick();
    engine.setConfig({ ...engine.config, leaseDurationMs: 10 * SECOND });
    for (let i = 0; i < 4; i++) engine.pick();
    const inFlight = () => engine.keys()[0]?.inFlight;
    expect(inFlight()).toBe(7);
    clock.advance(10 * SECOND);
    expect(inFlight()).toBe(3);
    expect(engine.openLeases).toBe(3);
    clock.advance(5 * MINUTE - 10 * SECOND);
    expect(inFlight()).toBe(0);
    expect(engine.openLeases).toBe(0);
  });

  it("leases closed, expired and forgotten in any order keep the table's count exact", () => {
    const table = new LeaseTable();
    const next = tokens(11);
    const ids: Array<[string, string, number]> = [];
    for (let i = 0; i < 5000; i++) {
      const lifetime = [100, 5_000, 1_000, 50][i % 4] as number;
      const keyId = `k${i % 7}`;
      ids.push([table.add(keyId, i + lifetime, next()), keyId, i + lifetime]);
    }
    for (const [id] of ids.filter((_, i) => i % 5 === 0)) table.close(id);
    table.forgetKey("k3");
    const ended: Array<[string, number]> = [];
    for (let now = 0; now <= 11_000; now += 37) table.expire(now, (k, at) => ended.push([k, at]));
    const expected = ids.filter(([, keyId], i) => i % 5 !== 0 && keyId !== "k3");
    expect(ended).toHaveLength(expected.length);
    // Each ended at the first expire() call at or after its expiry.
    const byExpiry = expected.map(([, , at]) => Math.ceil(at / 37) * 37).sort((a, b) => a - b);
    expect(ended.map(([, at]) => at).sort((a, b) => a - b)).toEqual(byExpiry);
    expect(table.open).toBe(0);
  });
});
