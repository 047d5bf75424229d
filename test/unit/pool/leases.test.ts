import { describe, expect, it } from "vitest";
import { LEASE_TOKEN_LIMIT, LeaseTable } from "../../../src/pool/leases.ts";

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
