import { ManualClock } from "../../../src/pool/clock.ts";
import { DEFAULT_POOL_CONFIG, type PoolConfig } from "../../../src/pool/config.ts";
import { KeyPoolEngine, type KeyTransitionEvent } from "../../../src/pool/engine.ts";
import { keyId } from "../../../src/pool/identity.ts";
import type { KeyEntry } from "../../../src/pool/key.ts";

export const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

/** A test pool: a manual clock, counting lease ids, and a log of transitions. */
export function makePool(config: Partial<PoolConfig> = {}, entries: KeyEntry[] = []) {
  const clock = new ManualClock(T0);
  const transitions: KeyTransitionEvent[] = [];
  let n = 0;
  const engine = new KeyPoolEngine(
    { ...DEFAULT_POOL_CONFIG, ...config },
    { clock, newLeaseToken: () => ++n, onTransition: (e) => transitions.push(e) },
  );
  engine.setKeys(entries);
  return { engine, clock, transitions };
}

export function keys(...names: string[]): KeyEntry[] {
  return names.map((name) => ({ key: `sk-test-${name}-0123456789abcdef`, source: `secret/test#${name}` }));
}

export function idOf(name: string): string {
  return keyId(`sk-test-${name}-0123456789abcdef`);
}

/** Picks n times (reporting success right away) and counts picks per key name. */
export function distribution(engine: KeyPoolEngine, n: number, names: string[]): Record<string, number> {
  const byId = new Map(names.map((name) => [idOf(name), name]));
  const counts: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]));
  for (let i = 0; i < n; i++) {
    const r = engine.pick();
    if (!r.ok) throw new Error(`no key at pick ${i}`);
    const name = byId.get(r.keyId) as string;
    counts[name] = (counts[name] ?? 0) + 1;
    engine.report({ leaseId: r.leaseId }, { kind: "success" });
  }
  return counts;
}
