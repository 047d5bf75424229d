/**
 * Dependencies point one way: api <- pool <- providers <- (sources, controller, server <- proxy)
 * <- run-*.ts, cli.ts, main.ts. Every relative import in src/ is read and checked against the
 * table below, so an upward import (src/server to src/controller, say) fails here before a
 * reviewer has to notice it. Each folder's header says the same in words.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/** What each part of src/ may import besides itself: a folder, or a top-level module by name. */
const MAY_IMPORT: Readonly<Record<string, readonly string[] | "anything">> = {
  api: [],
  pool: ["api"],
  providers: ["api", "pool", "log"],
  sources: ["api", "pool", "providers", "log"],
  controller: ["api", "pool", "providers", "sources", "log", "describe-error", "kube-client", "lease-tokens"],
  server: ["api", "pool", "providers", "state", "log", "describe-error", "kube-client"],
  // Shared key state (Redis/Valkey): the store, its scripts, and the part that keeps engines in step.
  state: ["api", "pool", "log"],
  // The proxy is a handler the server mounts: it uses the server's errors, names and dispensing,
  // and the server never imports it (run-common.ts hands it in).
  proxy: ["api", "pool", "providers", "server", "state", "log"],
  // Ships standalone (keypool-operator/client): Node built-ins only.
  client: [],
  log: [],
  // describeError: one line saying why a call failed, secrets scrubbed.
  "describe-error": ["log"],
  "kube-client": [],
  "lease-tokens": ["pool"],
  "background-threads": ["log"],
  config: ["api", "log", "background-threads"],
  // README's configuration table, rendered from config.ts's flag schemas.
  "config-reference": ["api", "config"],
  // `kubectl keypool`: a client of the API server with the user's credentials. It reads Secrets as
  // the operator does (sources) and names keys by id (pool/identity.ts); never the controller,
  // the server or the state store, which run inside the operator.
  "kubectl-plugin": ["api", "pool", "sources", "describe-error"],
  // Webhook delivery: signed, retried, deduplicated; knows nothing of pools or Kubernetes.
  notify: ["api"],
  // When to notify: pool transitions, budgets, availability and forecasts to src/notify.
  notifications: ["api", "pool", "notify", "log"],
  // The live status page (/ui): reads the pools as the API shows them.
  ui: ["api", "pool", "server", "log"],
  // Wiring.
  "run-common": "anything",
  "run-operator": "anything",
  "run-serve": "anything",
  cli: "anything",
  main: "anything",
};

/** The part of src/ a path (relative to src/) belongs to: its folder, or its module name. */
function partOf(path: string): string {
  const [first = "", ...rest] = path.split(sep);
  return rest.length ? first : first.replace(/\.ts$/, "");
}

export interface Import {
  from: string;
  to: string;
}

/** The imports that break the table (and those from parts the table does not know). */
export function violations(imports: readonly Import[]): string[] {
  const problems: string[] = [];
  for (const { from, to } of imports) {
    const a = partOf(from);
    const b = partOf(to);
    if (a === b) continue;
    const allowed = MAY_IMPORT[a];
    if (allowed === undefined) problems.push(`${from}: src/${a} is not in the layering table`);
    else if (allowed !== "anything" && !allowed.includes(b)) problems.push(`${from} imports ${to}`);
  }
  return problems;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every relative import (static, dynamic, type-only, re-export) of every file in src/. */
function importsInSrc(): Import[] {
  const found: Import[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = normalize(join(dirname(file), match[1] as string));
      found.push({ from: relative(SRC, file), to: relative(SRC, target) });
    }
  }
  return found;
}

describe("the direction of imports in src/", () => {
  const imports = importsInSrc();

  it("finds the imports it checks", () => {
    expect(imports.length).toBeGreaterThan(200);
    expect(imports).toContainEqual({ from: join("server", "dispense.ts"), to: join("pool", "registry.ts") });
  });

  it("has no import against the table", () => {
    expect(violations(imports)).toEqual([]);
  });

  it.each<[string, Import]>([
    [
      "src/server to src/controller",
      { from: join("server", "dispenser.ts"), to: join("controller", "operator.ts") },
    ],
    ["src/server to src/proxy", { from: join("server", "dispenser.ts"), to: join("proxy", "proxy.ts") }],
    ["src/pool to src/providers", { from: join("pool", "engine.ts"), to: join("providers", "index.ts") }],
    [
      "src/sources to src/controller",
      { from: join("sources", "files", "standalone.ts"), to: join("controller", "reconciler.ts") },
    ],
    ["src/api to src/pool", { from: join("api", "keypool.ts"), to: join("pool", "key.ts") }],
    ["src/client to src/server", { from: join("client", "errors.ts"), to: join("server", "errors.ts") }],
    ["src/proxy to src/controller", { from: join("proxy", "proxy.ts"), to: join("controller", "pools.ts") }],
    [
      "src/kubectl-plugin to src/server",
      { from: join("kubectl-plugin", "cli.ts"), to: join("server", "dispenser.ts") },
    ],
  ])("would fail on an import from %s", (_name, edge) => {
    expect(violations([...imports, edge])).toEqual([`${edge.from} imports ${edge.to}`]);
  });

  it("would fail on a new part of src/ nobody placed in the table", () => {
    expect(violations([{ from: join("quota", "redis.ts"), to: join("pool", "registry.ts") }])).toEqual([
      `${join("quota", "redis.ts")}: src/quota is not in the layering table`,
    ]);
  });

  it.each([
    "api",
    "pool",
    "providers",
    "sources",
    "controller",
    "server",
    "proxy",
    "client",
    "state",
    "kubectl-plugin",
    "notify",
    "ui",
  ])("src/%s says in a header what it may import", (folder) => {
    const headers = sourceFiles(join(SRC, folder)).map((f) => readFileSync(f, "utf8").slice(0, 2000));
    expect(headers.some((h) => /May import:/.test(h))).toBe(true);
  });
});
