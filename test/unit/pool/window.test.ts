import { describe, expect, it } from "vitest";
import { BucketedWindow, createWindow, ExactWindow } from "../../../src/pool/window.ts";

const MINUTE = 60_000;

describe.each([
  ["exact", () => new ExactWindow(60, MINUTE)],
  ["bucketed", () => new BucketedWindow(60, MINUTE)],
])("a %s 60-per-minute window", (_name, make) => {
  it("never lets more than 60 events into any 60 s span, whatever the timing", () => {
    const w = make();
    const accepted: number[] = [];
    // Try an event every 250 ms for 5 minutes; take it only when the window has room.
    for (let t = 0; t < 5 * MINUTE; t += 250) {
      if (w.roomAt(t) <= t) {
        w.add(t);
        accepted.push(t);
      }
    }
    for (let i = 0; i < accepted.length; i++) {
      const inSpan = accepted.filter(
        (t) => t >= (accepted[i] as number) && t < (accepted[i] as number) + MINUTE,
      );
      expect(inSpan.length).toBeLessThanOrEqual(60);
    }
    // ...and it does not starve: most of the capacity is used.
    expect(accepted.length).toBeGreaterThanOrEqual(5 * 60 * 0.95);
  });

  it("says when there is room again once full", () => {
    const w = make();
    for (let i = 0; i < 60; i++) w.add(1000 + i);
    expect(w.used(1100)).toBe(60);
    const at = w.roomAt(1100);
    expect(at).toBeGreaterThan(1100);
    expect(at).toBeLessThanOrEqual(1000 + MINUTE + 1000);
    expect(w.used(at)).toBeLessThan(60);
  });
});

describe("a bucketed token window", () => {
  it("sums amounts and frees them after the window", () => {
    const w = new BucketedWindow(1000, MINUTE);
    w.add(0, 600);
    w.add(10_000, 500);
    expect(w.used(20_000)).toBe(1100);
    expect(w.roomAt(20_000)).toBeGreaterThan(20_000);
    expect(w.used(2 * MINUTE)).toBe(0);
  });
});

describe("leavingBy: what leaves a window by a later time", () => {
  it.each([
    ["exact", createWindow(100, 60_000)],
    ["bucketed", createWindow(100_000, 60_000, false)],
  ])("%s: counts the units that age out, and changes nothing", (_kind, w) => {
    w.add(0, 10);
    w.add(30_000, 5);
    expect(w.leavingBy(30_000, 30_000)).toBe(0);
    // The first 10 leave once the window has moved past 0; the 5 only past 30 s.
    expect(w.leavingBy(30_000, 61_000)).toBe(10);
    expect(w.leavingBy(30_000, 91_000)).toBe(15);
    expect(w.used(30_000)).toBe(15);
  });
});
