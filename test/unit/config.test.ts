import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  OperatorConfig,
  parseOperatorConfig,
  parseServeConfig,
  ServeConfig,
  serveFlagsHelp,
} from "../../src/config.ts";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

type Command = "operator" | "serve";
type Env = Record<string, string | undefined>;
const COMMANDS: Record<Command, { parse: (argv: string[], env: Env) => unknown; fields: string[] }> = {
  operator: { parse: parseOperatorConfig, fields: Object.keys(OperatorConfig.shape) },
  serve: { parse: parseServeConfig, fields: Object.keys(ServeConfig.shape) },
};

const fieldOf = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
const flagOf = (field: string) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The rows of the first Markdown table after `heading`, as cells (`\|` stays inside a cell). */
function tableAfter(readme: string, heading: string): string[][] {
  const lines = readme.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`README has no "${heading}"`);
  const first = lines.findIndex((l, i) => i > start && l.startsWith("|"));
  const rows: string[][] = [];
  for (let i = first; i < lines.length && lines[i]?.startsWith("|"); i++) {
    rows.push(
      (lines[i] as string)
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows.slice(2); // header and separator
}

/**
 * The flags a first cell names: `--a`, `--b <value>`, and `-x` after `--prefix-a` as
 * `--prefix-x` (the README's "`--leader-election-lease-duration` / `-renew-deadline`").
 */
function flagsIn(cell: string): string[] {
  const flags: string[] = [];
  for (const [, code] of cell.matchAll(/`([^`]+)`/g)) {
    const word = (code as string).split(/\s/)[0] as string;
    if (word.startsWith("--")) flags.push(word);
    else if (word.startsWith("-") && flags[0]) {
      const parts = flags[0].split("-");
      flags.push([...parts.slice(0, parts.length - (word.split("-").length - 1)), word.slice(1)].join("-"));
    }
  }
  return flags;
}

/**
 * A default cell's text per command: "A (serve: B)", "A (operator), B (serve)", or "A (a remark)";
 * `serveNamed`: the cell names serve's value itself.
 */
function perCommand(text: string): Record<Command, string> & { serveNamed: boolean } {
  const plain = text.replaceAll("`", "").trim();
  const both = /^(.+?) \(operator\), (.+?) \(serve\)$/.exec(plain);
  if (both) return { operator: both[1] as string, serve: both[2] as string, serveNamed: true };
  const serve = /^(.+?) \(serve: (.+)\)$/.exec(plain);
  if (serve) return { operator: serve[1] as string, serve: serve[2] as string, serveNamed: true };
  const value = plain.replace(/ \([^)]*\)$/, "");
  return { operator: value, serve: value, serveNamed: false };
}

interface Documented {
  command: Command;
  flag: string;
  text: string;
}

/** Each flag of a table's rows with its default cell's part: "a / b / c" or "a, b" for several flags. */
function rowsOf(readme: string, heading: string): Array<{ flag: string; cell: string; notes: string }> {
  return tableAfter(readme, heading).flatMap(([flagCell = "", defaultCell = "", notes = ""]) => {
    const flags = flagsIn(flagCell); // none for NAME_KEYS=...: not a flag
    const parts =
      flags.length === 1 ? [defaultCell] : defaultCell.split(defaultCell.includes(" / ") ? " / " : ", ");
    return flags.map((flag, i) => ({ flag, cell: parts[i] ?? "", notes }));
  });
}

/**
 * What README's tables say each flag defaults to. "Standalone: `keypool serve`" speaks for serve;
 * "Configuration" for the operator, and for serve where it names serve's value ("(serve: …)") or
 * the serve table does not list the flag; a row noted "operator only" is not serve's.
 */
function documentedDefaults(readme: string): { documented: Documented[]; unknown: string[] } {
  const documented: Documented[] = [];
  const unknown: string[] = [];
  const has = (command: Command, flag: string) => COMMANDS[command].fields.includes(fieldOf(flag));
  const serveRows = rowsOf(readme, "### Standalone: `keypool serve`");
  for (const { flag, cell } of serveRows) {
    if (has("serve", flag)) documented.push({ command: "serve", flag, text: perCommand(cell).serve });
    else unknown.push(flag);
  }
  const inServeTable = new Set(serveRows.map((r) => r.flag));
  for (const { flag, cell, notes } of rowsOf(readme, "## Configuration")) {
    const text = perCommand(cell);
    if (!has("operator", flag) && !has("serve", flag)) unknown.push(flag);
    if (has("operator", flag)) documented.push({ command: "operator", flag, text: text.operator });
    const forServe = !notes.includes("operator only") && (text.serveNamed || !inServeTable.has(flag));
    if (has("serve", flag) && forServe) documented.push({ command: "serve", flag, text: text.serve });
  }
  return { documented, unknown };
}

/** Where README and the zod schemas disagree, one line each; empty when they agree. */
function drift(readme: string): string[] {
  const { documented, unknown } = documentedDefaults(readme);
  const problems = unknown.map((flag) => `${flag} is in README but no command has it`);
  for (const command of Object.keys(COMMANDS) as Command[]) {
    const names = new Set(documented.filter((d) => d.command === command).map((d) => d.flag));
    for (const field of COMMANDS[command].fields)
      if (!names.has(flagOf(field))) problems.push(`${command} ${flagOf(field)} is not in README`);
  }
  for (const { command, flag, text } of documented) {
    const { parse } = COMMANDS[command];
    const field = fieldOf(flag);
    const get = (argv: string[], env: Env = {}) => (parse(argv, env) as Record<string, unknown>)[field];
    const actual = get([]);
    let matches: boolean;
    const fromEnv = /^(?:in-cluster, else )?\$([A-Z_]+)$/.exec(text);
    if (text === "")
      continue; // no default written: nothing to compare
    else if (text === "on" || text === "off") matches = actual === (text === "on");
    else if (text === "all") matches = Array.isArray(actual) && actual.length === 0;
    else if (fromEnv) {
      // Taken from the variable; "in-cluster" first means no value at all without it.
      const variable = fromEnv[1] as string;
      matches =
        get([], { [variable]: "from-env" }) === "from-env" &&
        (!text.startsWith("in-cluster") || actual === undefined);
    } else {
      // The README's value, given as the flag, must parse to what no flag gives.
      try {
        matches = JSON.stringify(get([flag, text])) === JSON.stringify(actual);
      } catch (err) {
        problems.push(
          `${command} ${flag}: README's "${text}" is not a valid value (${(err as Error).message})`,
        );
        continue;
      }
    }
    if (!matches)
      problems.push(`${command} ${flag}: README says "${text}", the schema ${JSON.stringify(actual)}`);
  }
  return problems;
}

describe("README's configuration tables", () => {
  it("document every flag of both commands, with the schemas' defaults", () => {
    expect(drift(README)).toEqual([]);
    // The tables were read, not skipped: every row with a value counts.
    const { documented } = documentedDefaults(README);
    expect(documented.filter((d) => d.text !== "").length).toBeGreaterThan(25);
  });

  it.each([
    [
      "a changed leader-election default",
      "15s / 10s / 2s",
      "15s / 10s / 3s",
      "operator --leader-election-retry-period",
    ],
    ["a changed proxy default", "32mb, 4mb, 60s", "32mb, 8mb, 60s", "--proxy-retry-body"],
    [
      "a serve-only default in the Configuration table",
      "on (operator), off (serve)",
      "on (operator), on (serve)",
      "serve --probes",
    ],
    [
      "a serve address in parentheses",
      "0.0.0.0 (serve: 127.0.0.1)",
      "0.0.0.0 (serve: 0.0.0.0)",
      "serve --address",
    ],
    ["a flag README lost", "| `--log-level`", "| `--log-lvl`", "--log-level is not in README"],
    [
      "a flag no command has",
      "| `--default-namespace`",
      "| `--default-ns`",
      "--default-ns is in README but no command has it",
    ],
  ])("fail on %s", (_name, from, to, expected) => {
    expect(README).toContain(from);
    const drifted = drift(README.replace(from, to));
    expect(drifted.length).toBeGreaterThan(0);
    expect(drifted.join("\n")).toContain(expected);
  });
});

describe("operator configuration", () => {
  it("has its defaults without flags or variables", () => {
    expect(parseOperatorConfig([], {})).toMatchObject({
      namespaces: [],
      leaderElect: false,
      leaderElectionNamespace: "keypool-system",
      logLevel: "info",
      probesPort: 8081,
    });
  });

  it("takes flags first, then KEYPOOL_* variables, then POD_NAMESPACE for the Lease", () => {
    const config = parseOperatorConfig(["--namespaces", "ai, search", "--leader-elect"], {
      KEYPOOL_LOG_LEVEL: "debug",
      KEYPOOL_NAMESPACES: "ignored",
      POD_NAMESPACE: "ops",
    });
    expect(config).toMatchObject({
      namespaces: ["ai", "search"],
      leaderElect: true,
      logLevel: "debug",
      leaderElectionNamespace: "ops",
    });
  });

  it.each([
    { name: "5m by default", argv: [], env: {}, grace: "5m" },
    { name: "a duration flag", argv: ["--auth-stale-grace", "30s"], env: {}, grace: "30s" },
    { name: "0s to turn it off", argv: ["--auth-stale-grace", "0s"], env: {}, grace: "0s" },
    { name: "a bare 0 read as 0s", argv: [], env: { KEYPOOL_AUTH_STALE_GRACE: "0" }, grace: "0s" },
  ])("takes --auth-stale-grace: $name", ({ argv, env, grace }) => {
    expect(parseOperatorConfig(argv, env).authStaleGrace).toBe(grace);
  });

  it.each([
    [["--auth-stale-grace", "2h"], /--auth-stale-grace \(or KEYPOOL_AUTH_STALE_GRACE\): must be at most 1h/],
    [["--auth-stale-grace", "5"], /--auth-stale-grace/],
    [["--log-level", "loud"], /--log-level \(or KEYPOOL_LOG_LEVEL\)/],
    [["--probes-port", "-1"], /--probes-port/],
    [["--namespaces", "Not_A_Namespace"], /--namespaces/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["--leader-election-renew-deadline", "30s"], /retry period < renew deadline < lease duration/],
  ])("stops on %j with one line naming the flag", (argv, message) => {
    expect(() => parseOperatorConfig(argv as string[], {})).toThrow(ConfigError);
    expect(() => parseOperatorConfig(argv as string[], {})).toThrow(message);
  });
});

describe("serve configuration: the key-pool-manager's variables", () => {
  it("reads KEY_POOL_PORT, KEY_POOL_HOST and HEALTH_CHECK_INTERVAL (ms) as --port, --address and --health-check-interval", () => {
    expect(
      parseServeConfig([], {
        KEY_POOL_PORT: "9001",
        KEY_POOL_HOST: "0.0.0.0",
        HEALTH_CHECK_INTERVAL: "30000",
      }),
    ).toMatchObject({ port: 9001, address: "0.0.0.0", healthCheckInterval: "30000ms" });
  });

  it("has its own defaults without them", () => {
    expect(parseServeConfig([], {})).toMatchObject({
      port: 8769,
      address: "127.0.0.1",
      healthCheckInterval: "1s",
    });
  });

  it.each([
    ["a flag", ["--port", "9003"], { KEYPOOL_PORT: "9002", KEY_POOL_PORT: "9001" }, 9003],
    ["a KEYPOOL_* variable", [], { KEYPOOL_PORT: "9002", KEY_POOL_PORT: "9001" }, 9002],
    ["nothing else", [], { KEY_POOL_PORT: "9001" }, 9001],
  ])("%s wins over KEY_POOL_PORT", (_name, argv, env, port) => {
    expect(parseServeConfig(argv, env).port).toBe(port);
  });

  it("names the variable a bad value came from", () => {
    expect(() => parseServeConfig([], { KEY_POOL_PORT: "eighty" })).toThrow(
      /^KEY_POOL_PORT, read as --port: /,
    );
    expect(() => parseServeConfig([], { HEALTH_CHECK_INTERVAL: "often" })).toThrow(/HEALTH_CHECK_INTERVAL/);
  });

  it("--help names the aliases", () => {
    expect(serveFlagsHelp()).toContain("env KEYPOOL_PORT (or KEY_POOL_PORT)");
    expect(serveFlagsHelp()).toContain("env KEYPOOL_HEALTH_CHECK_INTERVAL (or HEALTH_CHECK_INTERVAL)");
  });
});
