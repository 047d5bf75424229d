import { describe, expect, it } from "vitest";
import {
  attribute,
  byConstructor,
  dominators,
  HeapSnapshotParser,
  parseHeapSnapshot,
  SnapshotIndex,
} from "../../../bench/heap-snapshot.ts";

const meta = {
  node_fields: ["type", "name", "id", "self_size", "edge_count", "trace_node_id", "detachedness"],
  node_types: [
    [
      "hidden",
      "array",
      "string",
      "object",
      "code",
      "closure",
      "regexp",
      "number",
      "native",
      "synthetic",
      "concatenated string",
    ],
    "string",
    "number",
    "number",
    "number",
    "number",
    "number",
  ],
  edge_fields: ["type", "name_or_index", "to_node"],
  edge_types: [
    ["context", "element", "property", "internal", "hidden", "shortcut", "weak"],
    "string_or_number",
    "node",
  ],
};

// A tiny heap: an Operator holds a Secret cache (a Map whose table holds one cached Secret) and a
// PoolRegistry (holding a KeyRecord, which holds the cached Secret weakly only); a string all
// three hold is the Operator's alone to free. Names with a quote, a bracket, a backslash and a
// non-ASCII character test the string table's reader.
const strings = [
  "",
  "Operator",
  "Map",
  "PoolRegistry",
  "KeyRecord",
  "Object",
  "sk-]shared",
  'k"ey\\é',
  "#secretWatchers",
  "registry",
  "shared",
  "table",
  "pool",
  "spec",
  "data",
  "cache",
];
const S = (s: string) => strings.indexOf(s);
const T = (t: string) => meta.node_types[0]?.indexOf(t) as number;
const E = (t: string) => meta.edge_types[0]?.indexOf(t) as number;
// [type, name, id, self_size, edge_count, trace_node_id, detachedness]
const nodes = [
  [T("synthetic"), S(""), 1, 0, 1, 0, 0],
  [T("object"), S("Operator"), 3, 10, 3, 0, 0],
  [T("object"), S("Map"), 5, 20, 1, 0, 0],
  [T("object"), S("PoolRegistry"), 7, 30, 2, 0, 0],
  [T("object"), S("Object"), 9, 40, 2, 0, 0],
  [T("object"), S("KeyRecord"), 11, 50, 1, 0, 0],
  [T("string"), S("sk-]shared"), 13, 60, 0, 0, 0],
  [T("string"), S('k"ey\\é'), 15, 70, 0, 0, 0],
];
const to = (n: number) => n * meta.node_fields.length;
// [type, name_or_index, to_node], in node order
const edges = [
  [E("element"), 1, to(1)],
  [E("property"), S("#secretWatchers"), to(2)],
  [E("property"), S("registry"), to(3)],
  [E("property"), S("shared"), to(6)],
  [E("internal"), S("table"), to(4)],
  [E("property"), S("pool"), to(5)],
  [E("property"), S("spec"), to(6)],
  [E("property"), S("data"), to(7)],
  [E("property"), S("spec"), to(6)],
  [E("weak"), S("cache"), to(4)],
];

// Laid out as V8 writes it: a line per node and edge, the other arrays between edges and strings.
const snapshotText = (nodes: number[][], edges: number[][], strings: string[]) =>
  [
    `{"snapshot":{"meta":${JSON.stringify(meta)},"node_count":${nodes.length},"edge_count":${edges.length}},`,
    `"nodes":[${nodes.map((n) => n.join(",")).join(",\n")}],`,
    `"edges":[${edges.map((e) => e.join(",")).join(",\n")}],`,
    `"trace_function_infos":[],\n"trace_tree":[1,[2,[]]],\n"samples":[],\n"locations":[],`,
    `"strings":[${strings.map((s) => JSON.stringify(s)).join(",\n")}]}`,
  ].join("\n");
const text = snapshotText(nodes, edges, strings);

function parsedIn(pieceLength: number) {
  const parser = new HeapSnapshotParser();
  for (let i = 0; i < text.length; i += pieceLength) parser.push(text.slice(i, i + pieceLength));
  return parser.end();
}

describe("bench: heap snapshots", () => {
  it.each([1, 3, 7, 64, text.length])(
    "reads the arrays and strings whatever the pieces (%i chars)",
    (piece) => {
      const s = parsedIn(piece);
      expect([...s.nodes]).toEqual(nodes.flat());
      expect([...s.edges]).toEqual(edges.flat());
      expect(s.strings).toEqual(strings);
      expect(s.nodeTypes[T("synthetic")]).toBe("synthetic");
      expect(s.edgeTypes[E("weak")]).toBe("weak");
    },
  );

  it("refuses text that stops inside an array", () => {
    const parser = new HeapSnapshotParser();
    parser.push(text.slice(0, text.indexOf('"edges"') + 12));
    expect(() => parser.end()).toThrow(/inside numbers/);
  });

  it("sums self sizes by constructor, strings by type, largest first", () => {
    const { rows, total, count } = byConstructor(new SnapshotIndex(parseHeapSnapshot(text)), 3);
    expect(rows).toEqual([
      { name: "(string)", count: 2, selfSize: 130 },
      { name: "KeyRecord", count: 1, selfSize: 50 },
      { name: "Object", count: 1, selfSize: 40 },
    ]);
    expect({ total, count }).toEqual({ total: 280, count: 8 });
  });

  it("finds immediate dominators and retained sizes; a weak edge retains nothing", () => {
    const { idom, retained } = dominators(new SnapshotIndex(parseHeapSnapshot(text)));
    expect([...idom]).toEqual([0, 0, 1, 1, 2, 3, 1, 4]);
    expect([...retained]).toEqual([280, 280, 130, 80, 110, 50, 60, 70]);
  });

  it("attributes each node to the outermost category on its dominator path, the rest to (other)", () => {
    const index = new SnapshotIndex(parseHeapSnapshot(text));
    const seen: Array<[string, string | undefined, string]> = [];
    const categories = attribute(index, dominators(index), (node) => {
      seen.push([node.constructorName, node.edgeName, node.dominatorName]);
      if (node.edgeName === "#secretWatchers") return "Secret cache";
      if (node.constructorName === "PoolRegistry" || node.constructorName === "Object") return "engines";
      return undefined;
    });
    expect(categories.map(({ name, count, selfSize }) => ({ name, count, selfSize }))).toEqual([
      { name: "Secret cache", count: 3, selfSize: 130 },
      { name: "engines", count: 2, selfSize: 80 },
      { name: "(other)", count: 3, selfSize: 70 },
    ]);
    expect(categories[0]?.top.map((r) => r.name)).toEqual(["(string)", "Object", "Map"]);
    // Asked only of nodes no dominator's category covers; the edge is the dominator's own.
    expect(seen).toContainEqual(["Map", "#secretWatchers", "Operator"]);
    expect(seen).toContainEqual(["(string)", "shared", "Operator"]);
    expect(seen.map(([name]) => name)).not.toContain("KeyRecord");
  });

  it("lets a rule follow named edges from a node to what it holds", () => {
    const index = new SnapshotIndex(parseHeapSnapshot(text));
    const followed: Array<string | undefined> = [];
    attribute(index, dominators(index), (node) => {
      if (node.constructorName === "Operator") {
        followed.push(node.follow("#secretWatchers", "table", "data")?.name);
        followed.push(node.follow("registry", "pool")?.constructorName);
        followed.push(node.follow("registry", "nothing")?.name);
      }
      return undefined;
    });
    expect(followed).toEqual(['k"ey\\é', "KeyRecord", undefined]);
  });

  it("reads a concatenated string's value from its parts", () => {
    // root -> Watcher -path-> ("/api/v1" + ("/" + "secrets")), as a template literal leaves it
    const names = [
      "",
      "Watcher",
      "(concatenated string)",
      "/api/v1",
      "/",
      "secrets",
      "path",
      "first",
      "second",
    ];
    const at = (name: string) => names.indexOf(name);
    const cons = T("concatenated string");
    const heap = snapshotText(
      [
        [T("synthetic"), 0, 1, 0, 1, 0, 0],
        [T("object"), at("Watcher"), 3, 10, 1, 0, 0],
        [cons, at("(concatenated string)"), 5, 32, 2, 0, 0],
        [T("string"), at("/api/v1"), 7, 24, 0, 0, 0],
        [cons, at("(concatenated string)"), 9, 32, 2, 0, 0],
        [T("string"), at("/"), 11, 16, 0, 0, 0],
        [T("string"), at("secrets"), 13, 24, 0, 0, 0],
      ],
      [
        [E("element"), 1, to(1)],
        [E("property"), at("path"), to(2)],
        [E("internal"), at("first"), to(3)],
        [E("internal"), at("second"), to(4)],
        [E("internal"), at("first"), to(5)],
        [E("internal"), at("second"), to(6)],
      ],
      names,
    );
    const index = new SnapshotIndex(parseHeapSnapshot(heap));
    const paths: Array<[string | undefined, string | undefined]> = [];
    attribute(index, dominators(index), (node) => {
      if (node.constructorName === "Watcher") paths.push([node.follow("path")?.text(), node.text()]);
      return undefined;
    });
    expect(paths).toEqual([["/api/v1/secrets", undefined]]);
  });
});
