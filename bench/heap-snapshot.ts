/**
 * V8 heap snapshots (the .heapsnapshot JSON that HeapProfiler.takeHeapSnapshot streams and
 * v8.getHeapSnapshot() writes), read without holding the text: a 500 MB heap gives a snapshot
 * text longer than V8's largest string, so the parser takes it chunk by chunk and keeps only the
 * node and edge arrays (typed) and the string table.
 *
 * Then three summaries, as DevTools' Summary and Retainers views make them:
 * - byConstructor: self size and count per constructor (an object's or native's name, the node
 *   type otherwise: "(string)", "(code)", "(closure)", ...);
 * - dominators: each node's immediate dominator (the one node every path from the root to it
 *   passes; Cooper, Harvey and Kennedy's iterative algorithm over a postorder), and so each
 *   node's retained size (what would be freed with it). Weak edges hold nothing; shortcut edges
 *   count only from the root (DevTools' isEssentialEdge);
 * - attribute: each node's self size to a category, the first category a rule gives on its path
 *   down the dominator tree (outermost wins: everything a Secret cache alone retains is that
 *   cache's, whatever its constructors); nodes no rule reaches are "(other)".
 * Pure: no I/O.
 */

/** The arrays of a snapshot; a node is `nodeFields.length` numbers of `nodes`, an edge likewise. */
export interface HeapSnapshot {
  nodeFields: string[];
  nodeTypes: string[];
  edgeFields: string[];
  edgeTypes: string[];
  nodes: Uint32Array;
  edges: Uint32Array;
  strings: string[];
}

/** A Uint32Array that grows by doubling (the snapshot's header has the counts, but need not). */
class Numbers {
  #data = new Uint32Array(1 << 16);
  length = 0;

  push(value: number): void {
    if (this.length === this.#data.length) {
      const bigger = new Uint32Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.length++] = value;
  }

  done(): Uint32Array {
    return this.#data.slice(0, this.length);
  }
}

interface SnapshotMeta {
  node_fields: string[];
  node_types: unknown[];
  edge_fields: string[];
  edge_types: unknown[];
}

const NODES_KEY = /,\s*"nodes"\s*:\s*\[/;
const ARRAY_KEY = /"(\w+)"\s*:\s*\[/;

/**
 * Parses snapshot text pushed in pieces of any size. Arrays other than nodes, edges and strings
 * (locations, samples, trace_tree, ...) are skipped.
 */
export class HeapSnapshotParser {
  #state: "header" | "seek" | "numbers" | "strings" | "skip" | "done" = "header";
  /** Text not consumed yet: the header, or what lies between two arrays. */
  #pending = "";
  #meta: SnapshotMeta | undefined;
  readonly #nodes = new Numbers();
  readonly #edges = new Numbers();
  #target: Numbers | undefined;
  /** The number being read, -1 between numbers. */
  #number = -1;
  #depth = 0;
  readonly #strings: string[] = [];
  /** Inside a string of the string table: its text so far (raw JSON), whether a \ escapes the next char. */
  #token: string[] | undefined;
  #escaped = false;
  #tokenHasEscape = false;

  push(chunk: string): void {
    let text = chunk;
    while (text.length > 0) text = this.#step(text);
  }

  end(): HeapSnapshot {
    if (this.#state !== "seek" && this.#state !== "done")
      throw new Error(`heap snapshot ends inside ${this.#state}`);
    if (!this.#meta) throw new Error("heap snapshot has no header");
    const meta = this.#meta;
    return {
      nodeFields: meta.node_fields,
      nodeTypes: meta.node_types[0] as string[],
      edgeFields: meta.edge_fields,
      edgeTypes: meta.edge_types[0] as string[],
      nodes: this.#nodes.done(),
      edges: this.#edges.done(),
      strings: this.#strings,
    };
  }

  /** Consumes a prefix of `text` (all of it, unless the state changes) and returns the rest. */
  #step(text: string): string {
    switch (this.#state) {
      case "header": {
        this.#pending += text;
        const match = NODES_KEY.exec(this.#pending);
        if (!match) return "";
        const header = JSON.parse(`${this.#pending.slice(0, match.index)}}`) as {
          snapshot: { meta: SnapshotMeta };
        };
        this.#meta = header.snapshot.meta;
        const rest = this.#pending.slice(match.index + match[0].length);
        this.#pending = "";
        this.#state = "numbers";
        this.#target = this.#nodes;
        return rest;
      }
      case "seek": {
        this.#pending += text;
        const match = ARRAY_KEY.exec(this.#pending);
        if (!match) {
          if (
            /^[\s}]*$/.test(this.#pending.slice(this.#pending.lastIndexOf("]") + 1)) &&
            this.#pending.includes("}")
          )
            this.#state = "done";
          return "";
        }
        const rest = this.#pending.slice(match.index + match[0].length);
        this.#pending = "";
        const name = match[1];
        if (name === "nodes" || name === "edges") {
          this.#state = "numbers";
          this.#target = name === "nodes" ? this.#nodes : this.#edges;
        } else if (name === "strings") {
          this.#state = "strings";
        } else {
          this.#state = "skip";
          this.#depth = 1;
        }
        return rest;
      }
      case "numbers":
        return this.#readNumbers(text);
      case "strings":
        return this.#readStrings(text);
      case "skip":
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c === 0x5b) this.#depth++;
          else if (c === 0x5d && --this.#depth === 0) {
            this.#state = "seek";
            return text.slice(i + 1);
          }
        }
        return "";
      case "done":
        return "";
    }
  }

  #readNumbers(text: string): string {
    const target = this.#target as Numbers;
    let n = this.#number;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) {
        n = (n < 0 ? 0 : n * 10) + (c - 0x30);
        continue;
      }
      if (n >= 0) target.push(n);
      n = -1;
      if (c === 0x5d) {
        this.#number = -1;
        this.#state = "seek";
        return text.slice(i + 1);
      }
      if (c !== 0x2c && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09)
        throw new Error(`heap snapshot: unexpected ${JSON.stringify(text[i])} in a number array`);
    }
    this.#number = n;
    return "";
  }

  #readStrings(text: string): string {
    let i = 0;
    while (i < text.length) {
      if (this.#token) {
        const start = i;
        let closed = false;
        for (; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (this.#escaped) this.#escaped = false;
          else if (c === 0x5c) {
            this.#escaped = true;
            this.#tokenHasEscape = true;
          } else if (c === 0x22) {
            closed = true;
            break;
          }
        }
        this.#token.push(text.slice(start, i));
        if (!closed) return "";
        const raw = this.#token.join("");
        this.#strings.push(this.#tokenHasEscape ? (JSON.parse(`"${raw}"`) as string) : raw);
        this.#token = undefined;
        i++; // the closing quote
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        this.#token = [];
        this.#tokenHasEscape = false;
      } else if (c === 0x5d) {
        this.#state = "seek";
        return text.slice(i + 1);
      }
      i++;
    }
    return "";
  }
}

export function parseHeapSnapshot(text: string): HeapSnapshot {
  const parser = new HeapSnapshotParser();
  parser.push(text);
  return parser.end();
}

/** Field positions and the per-node edge offsets of a snapshot. */
export class SnapshotIndex {
  readonly s: HeapSnapshot;
  readonly nodeCount: number;
  readonly nodeStride: number;
  readonly edgeStride: number;
  /** Edges of node n are firstEdge[n] .. firstEdge[n + 1] - 1 (edge ordinals). */
  readonly firstEdge: Uint32Array;
  readonly #type: number;
  readonly #name: number;
  readonly #selfSize: number;
  readonly #edgeType: number;
  readonly #edgeName: number;
  readonly #edgeTo: number;
  readonly weakType: number;
  readonly shortcutType: number;

  constructor(s: HeapSnapshot) {
    this.s = s;
    this.nodeStride = s.nodeFields.length;
    this.edgeStride = s.edgeFields.length;
    this.nodeCount = s.nodes.length / this.nodeStride;
    this.#type = s.nodeFields.indexOf("type");
    this.#name = s.nodeFields.indexOf("name");
    this.#selfSize = s.nodeFields.indexOf("self_size");
    this.#edgeType = s.edgeFields.indexOf("type");
    this.#edgeName = s.edgeFields.indexOf("name_or_index");
    this.#edgeTo = s.edgeFields.indexOf("to_node");
    this.weakType = s.edgeTypes.indexOf("weak");
    this.shortcutType = s.edgeTypes.indexOf("shortcut");
    const edgeCount = s.nodeFields.indexOf("edge_count");
    this.firstEdge = new Uint32Array(this.nodeCount + 1);
    for (let n = 0; n < this.nodeCount; n++)
      this.firstEdge[n + 1] =
        (this.firstEdge[n] as number) + (s.nodes[n * this.nodeStride + edgeCount] as number);
  }

  type(n: number): string {
    return this.s.nodeTypes[this.s.nodes[n * this.nodeStride + this.#type] as number] ?? "?";
  }

  name(n: number): string {
    return this.s.strings[this.s.nodes[n * this.nodeStride + this.#name] as number] ?? "?";
  }

  selfSize(n: number): number {
    return this.s.nodes[n * this.nodeStride + this.#selfSize] as number;
  }

  /** How DevTools' Summary groups a node: an object's constructor, else its type in parentheses. */
  constructorOf(n: number): string {
    const type = this.type(n);
    return type === "object" || type === "native" ? this.name(n) : `(${type})`;
  }

  edgeType(e: number): number {
    return this.s.edges[e * this.edgeStride + this.#edgeType] as number;
  }

  /** The node an edge points to (an ordinal). */
  edgeTo(e: number): number {
    return (this.s.edges[e * this.edgeStride + this.#edgeTo] as number) / this.nodeStride;
  }

  /** A property's name, or `[i]` for an element or hidden edge (their name is an index). */
  edgeName(e: number): string {
    const type = this.s.edgeTypes[this.edgeType(e)];
    const value = this.s.edges[e * this.edgeStride + this.#edgeName] as number;
    return type === "element" || type === "hidden" ? `[${value}]` : (this.s.strings[value] ?? "?");
  }

  /** Whether an edge from node `from` retains (DevTools' isEssentialEdge). */
  essential(from: number, e: number): boolean {
    const type = this.edgeType(e);
    return type !== this.weakType && (type !== this.shortcutType || from === 0);
  }
}

export interface ConstructorRow {
  name: string;
  count: number;
  selfSize: number;
}

const sortRows = (rows: Map<string, { count: number; selfSize: number }>, top: number): ConstructorRow[] =>
  [...rows]
    .map(([name, row]) => ({ name, ...row }))
    .sort((a, b) => b.selfSize - a.selfSize)
    .slice(0, top);

/** Self size and count per constructor, largest first; `total` is every node's self size. */
export function byConstructor(
  index: SnapshotIndex,
  top = 10,
): { rows: ConstructorRow[]; total: number; count: number } {
  const rows = new Map<string, { count: number; selfSize: number }>();
  let total = 0;
  for (let n = 0; n < index.nodeCount; n++) {
    const name = index.constructorOf(n);
    const row = rows.get(name) ?? { count: 0, selfSize: 0 };
    row.count++;
    row.selfSize += index.selfSize(n);
    total += index.selfSize(n);
    rows.set(name, row);
  }
  return { rows: sortRows(rows, top), total, count: index.nodeCount };
}

const NONE = 0xffffffff;

/** The dominator tree of a snapshot, rooted at node 0 (the snapshot's synthetic root). */
export interface Dominators {
  /** Immediate dominator of each node (ordinal); the root's is itself, unreachable nodes' the root. */
  idom: Uint32Array;
  /** Retained size of each node (ordinal). */
  retained: Float64Array;
  /** Nodes reachable from the root through retaining edges, each after every node it dominates. */
  postorder: Uint32Array;
}

export function dominators(index: SnapshotIndex): Dominators {
  const count = index.nodeCount;
  // Retainers (reverse of the retaining edges), as offsets into one array.
  const firstRetainer = new Uint32Array(count + 1);
  for (let n = 0; n < count; n++)
    for (let e = index.firstEdge[n] as number; e < (index.firstEdge[n + 1] as number); e++)
      if (index.essential(n, e)) {
        const at = index.edgeTo(e) + 1;
        firstRetainer[at] = (firstRetainer[at] as number) + 1;
      }
  for (let n = 0; n < count; n++)
    firstRetainer[n + 1] = (firstRetainer[n + 1] as number) + (firstRetainer[n] as number);
  const retainers = new Uint32Array(firstRetainer[count] as number);
  const filled = firstRetainer.slice(0, count);
  for (let n = 0; n < count; n++)
    for (let e = index.firstEdge[n] as number; e < (index.firstEdge[n + 1] as number); e++)
      if (index.essential(n, e)) {
        const to = index.edgeTo(e);
        const at = filled[to] as number;
        retainers[at] = n;
        filled[to] = at + 1;
      }

  // Depth-first postorder from the root, iteratively (the heap is far deeper than the JS stack).
  const postorder = new Uint32Array(count);
  const poOf = new Uint32Array(count).fill(NONE);
  const visited = new Uint8Array(count);
  const stackNode = new Uint32Array(count);
  const stackEdge = new Uint32Array(count);
  let top = 0;
  let reached = 0;
  stackNode[0] = 0;
  stackEdge[0] = index.firstEdge[0] as number;
  visited[0] = 1;
  while (top >= 0) {
    const n = stackNode[top] as number;
    const e = stackEdge[top] as number;
    if (e < (index.firstEdge[n + 1] as number)) {
      stackEdge[top] = e + 1;
      if (!index.essential(n, e)) continue;
      const to = index.edgeTo(e);
      if (visited[to]) continue;
      visited[to] = 1;
      top++;
      stackNode[top] = to;
      stackEdge[top] = index.firstEdge[to] as number;
    } else {
      poOf[n] = reached;
      postorder[reached++] = n;
      top--;
    }
  }

  // Cooper, Harvey, Kennedy: "A Simple, Fast Dominance Algorithm", over postorder numbers.
  const rootPo = reached - 1;
  const dom = new Uint32Array(reached).fill(NONE);
  dom[rootPo] = rootPo;
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while (a < b) a = dom[a] as number;
      while (b < a) b = dom[b] as number;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let po = rootPo - 1; po >= 0; po--) {
      const n = postorder[po] as number;
      let next = NONE;
      for (let r = firstRetainer[n] as number; r < (firstRetainer[n + 1] as number); r++) {
        const p = poOf[retainers[r] as number] as number;
        if (p === NONE || dom[p] === NONE) continue;
        next = next === NONE ? p : intersect(p, next);
      }
      if (next !== NONE && dom[po] !== next) {
        dom[po] = next;
        changed = true;
      }
    }
  }

  const idom = new Uint32Array(count); // unreachable nodes: the root (0)
  const retained = new Float64Array(count);
  for (let n = 0; n < count; n++) retained[n] = index.selfSize(n);
  for (let po = 0; po < rootPo; po++) {
    const n = postorder[po] as number;
    const d = postorder[dom[po] as number] as number;
    idom[n] = d;
    retained[d] = (retained[d] as number) + (retained[n] as number);
  }
  for (let n = 1; n < count; n++)
    if (!visited[n]) retained[0] = (retained[0] as number) + (retained[n] as number);
  return { idom, retained, postorder: postorder.slice(0, reached) };
}

/** What a category rule sees of a node. */
export interface NodeView {
  type: string;
  /** The node's name: an object's constructor, a string's value, a code object's kind. */
  name: string;
  /** constructorOf: an object's constructor name, else "(type)". */
  constructorName: string;
  /** The name of the edge from its immediate dominator to it, when it has one (most do). */
  edgeName: string | undefined;
  /** The immediate dominator's constructorOf. */
  dominatorName: string;
  /** The node reached from this one by edges of these names (properties, private fields), if any. */
  follow(...names: string[]): NodeView | undefined;
  /**
   * A string node's value (its name), a concatenated string's too (its parts joined: V8 names
   * it "(concatenated string)" only); undefined for anything else.
   */
  text(): string | undefined;
}

export interface Category {
  name: string;
  count: number;
  selfSize: number;
  /** The category's largest constructors. */
  top: ConstructorRow[];
}

function textOf(index: SnapshotIndex, n: number, depth = 0): string | undefined {
  const type = index.type(n);
  if (type === "string") return index.name(n);
  if (type !== "concatenated string" || depth > 64) return undefined;
  const parts = ["first", "second"].map((name) => {
    for (let e = index.firstEdge[n] as number; e < (index.firstEdge[n + 1] as number); e++)
      if (index.edgeName(e) === name) return textOf(index, index.edgeTo(e), depth + 1);
    return undefined;
  });
  return parts.includes(undefined) ? undefined : parts.join("");
}

function view(index: SnapshotIndex, idom: Uint32Array, n: number, edgeName: string | undefined): NodeView {
  return {
    type: index.type(n),
    name: index.name(n),
    constructorName: index.constructorOf(n),
    edgeName,
    dominatorName: index.constructorOf(idom[n] as number),
    text: () => textOf(index, n),
    follow(...names) {
      let at = n;
      let via: string | undefined;
      for (const name of names) {
        via = undefined;
        for (let e = index.firstEdge[at] as number; e < (index.firstEdge[at + 1] as number); e++)
          if (index.edgeName(e) === name) {
            at = index.edgeTo(e);
            via = name;
            break;
          }
        if (via === undefined) return undefined;
      }
      return view(index, idom, at, via);
    },
  };
}

/**
 * Self sizes per category: `rule` names the category of a node, or undefined; a node takes its
 * dominator's category when that has one (outermost wins), else its own rule's, else "(other)".
 * Largest first.
 */
export function attribute(
  index: SnapshotIndex,
  doms: Dominators,
  rule: (node: NodeView) => string | undefined,
  top = 5,
): Category[] {
  const { idom, postorder } = doms;
  // The edge through which each node's immediate dominator holds it directly, if it does.
  const viaEdge = new Int32Array(index.nodeCount).fill(-1);
  for (let n = 0; n < index.nodeCount; n++)
    for (let e = index.firstEdge[n] as number; e < (index.firstEdge[n + 1] as number); e++) {
      const to = index.edgeTo(e);
      if (viaEdge[to] === -1 && idom[to] === n && to !== n) viaEdge[to] = e;
    }
  const names = ["(other)"];
  const ids = new Map<string, number>([["(other)", 0]]);
  const category = new Uint16Array(index.nodeCount);
  const assigned = new Uint8Array(index.nodeCount);
  // Reverse postorder: a dominator before the nodes it dominates.
  for (let i = postorder.length - 1; i >= 0; i--) {
    const n = postorder[i] as number;
    const d = idom[n] as number;
    if (n !== d && assigned[d]) {
      category[n] = category[d] as number;
      assigned[n] = 1;
      continue;
    }
    const e = viaEdge[n] as number;
    const name = rule(view(index, idom, n, e >= 0 ? index.edgeName(e) : undefined));
    if (name === undefined) continue;
    let id = ids.get(name);
    if (id === undefined) {
      id = names.length;
      names.push(name);
      ids.set(name, id);
    }
    category[n] = id;
    assigned[n] = 1;
  }
  const rows = names.map(() => new Map<string, { count: number; selfSize: number }>());
  const totals = names.map(() => ({ count: 0, selfSize: 0 }));
  for (let n = 0; n < index.nodeCount; n++) {
    const c = category[n] as number;
    const size = index.selfSize(n);
    const total = totals[c] as { count: number; selfSize: number };
    total.count++;
    total.selfSize += size;
    const byName = rows[c] as Map<string, { count: number; selfSize: number }>;
    const name = index.constructorOf(n);
    const row = byName.get(name) ?? { count: 0, selfSize: 0 };
    row.count++;
    row.selfSize += size;
    byName.set(name, row);
  }
  return names
    .map((name, c) => ({
      name,
      ...(totals[c] as { count: number; selfSize: number }),
      top: sortRows(rows[c] as Map<string, { count: number; selfSize: number }>, top),
    }))
    .sort((a, b) => b.selfSize - a.selfSize);
}
