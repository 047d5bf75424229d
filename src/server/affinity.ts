/**
 * Session affinity: the same session id gets the same key while that key is usable, because
 * prompt caches are per key (or organization). A consistent-hash ring over the pool's keys
 * (64 virtual points per key): a session goes to the first usable key clockwise from its hash,
 * so a key that leaves or rests moves only its own sessions, and they come back when it does.
 */
import { createHash } from "node:crypto";
import type { KeyPoolEngine } from "../pool/engine.ts";

const POINTS_PER_KEY = 64;

function hash32(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32BE(0);
}

interface Ring {
  version: number;
  keys: number;
  points: Uint32Array;
  owners: string[];
}

export class SessionAffinity {
  readonly #rings = new WeakMap<KeyPoolEngine, Ring>();

  /** The key id for `session`: the first usable key on the ring, or undefined when none is. */
  keyFor(engine: KeyPoolEngine, session: string): string | undefined {
    const ring = this.#ring(engine);
    const n = ring.points.length;
    if (n === 0) return undefined;
    const h = hash32(session);
    // First point >= h (binary search), then clockwise.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ring.points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    const tried = new Set<string>();
    for (let i = 0; i < n && tried.size < ring.keys; i++) {
      const owner = ring.owners[(lo + i) % n] as string;
      if (tried.has(owner)) continue;
      tried.add(owner);
      if (engine.isUsable(owner)) return owner;
    }
    return undefined;
  }

  #ring(engine: KeyPoolEngine): Ring {
    const cached = this.#rings.get(engine);
    if (cached && cached.version === engine.keySetVersion) return cached;
    const entries: Array<[number, string]> = [];
    const ids = engine.keyIds();
    for (const id of ids) {
      for (let v = 0; v < POINTS_PER_KEY; v++) entries.push([hash32(`${id}#${v}`), id]);
    }
    entries.sort((a, b) => a[0] - b[0]);
    const ring: Ring = {
      version: engine.keySetVersion,
      keys: ids.length,
      points: Uint32Array.from(entries.map((e) => e[0])),
      owners: entries.map((e) => e[1]),
    };
    this.#rings.set(engine, ring);
    return ring;
  }
}
