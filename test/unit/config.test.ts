import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readmeWithReference } from "../../scripts/readme-reference.ts";
import {
  ConfigError,
  OperatorConfig,
  operatorFlagsHelp,
  parseOperatorConfig,
  parseServeConfig,
  ServeConfig,
  serveFlagsHelp,
} from "../../src/config.ts";
import { NOT_A_FLAG_OF, renderConfigReference } from "../../src/config-reference.ts";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

type Command = "operator" | "serve";
type Env = Record<string, string | undefined>;
const COMMANDS: Record<Command, { parse: (argv: string[], env: Env) => unknown; fields: string[] }> = {
  operator: { parse: parseOperatorConfig, fields: Object.keys(OperatorConfig.shape) },
  serve: { parse: parseServeConfig, fields: Object.keys(ServeConfig.shape) },
};

const fieldOf = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** The generated table's rows: the flag, and what each command's column says. */
function tableRows(): Array<{ flag: string; operator: string; serve: string }> {
  return renderConfigReference()
    .split("\n")
    .slice(2) // header and separator
    .map((line) => {
      const [flagCell = "", , operator = "", serve = ""] = line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim());
      const flag = /`(--[a-z-]+)`/.exec(flagCell)?.[1] ?? flagCell;
      return { flag, operator, serve };
    });
}

describe("README's configuration table", () => {
  it("is what `npm run generate:crd` writes from src/config.ts today", async () => {
    expect(
      README === (await readmeWithReference(README)),
      "README.md's configuration table is out of date with the flag schemas in src/config.ts: run `npm run generate:crd` and commit the result",
    ).toBe(true);
  });

  it.each([
    ["a changed default", "| `15s` ", "| `16s` "],
    ["a flag README lost", "| `--log-level` ", "| `--log-lvl` "],
    ["a changed description", "How long a leader's Lease is valid", "How long a Lease is valid"],
  ])("fails on %s (regenerating puts it back)", async (_name, from, to) => {
    expect(README).toContain(from);
    const drifted = README.replace(from, to);
    const regenerated = await readmeWithReference(drifted);
    expect(regenerated === drifted).toBe(false);
    expect(regenerated).toBe(README);
  });

  it.each(Object.keys(COMMANDS) as Command[])("has a row for every %s flag, and none it lacks", (command) => {
    const rows = tableRows().filter((row) => row[command] !== NOT_A_FLAG_OF);
    expect(rows.map((row) => fieldOf(row.flag)).sort()).toEqual([...COMMANDS[command].fields].sort());
  });

  it("shows each command's real default: the value shown, given as the flag, parses to what no flag gives", () => {
    let compared = 0;
    for (const row of tableRows()) {
      for (const command of Object.keys(COMMANDS) as Command[]) {
        const text = row[command].replaceAll("`", "");
        if (text === NOT_A_FLAG_OF) continue;
        const field = fieldOf(row.flag);
        const parse = (argv: string[]) =>
          (COMMANDS[command].parse(argv, {}) as Record<string, unknown>)[field];
        const none = parse([]);
        const where = `${command} ${row.flag} shows "${text}"`;
        if (text === "")
          expect(none === undefined || (Array.isArray(none) && none.length === 0), where).toBe(true);
        else if (text === "on" || text === "off") expect(none, where).toBe(text === "on");
        else expect(parse([row.flag, text]), where).toEqual(none);
        compared++;
      }
    }
    // Every flag of both commands was compared, none skipped.
    expect(compared).toBe(COMMANDS.operator.fields.length + COMMANDS.serve.fields.length);
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

  it("parses durations to milliseconds once, and --help shows their defaults as users write them", () => {
    expect(parseOperatorConfig(["--leader-election-retry-period", "1500ms"], {})).toMatchObject({
      leaderElectionLeaseDuration: 15_000,
      leaderElectionRenewDeadline: 10_000,
      leaderElectionRetryPeriod: 1_500,
      proxyMaxWaitLimit: 60_000,
      authStaleGrace: 300_000,
    });
    expect(operatorFlagsHelp()).toMatch(/--leader-election-lease-duration <value> .*\(default 15s\)/);
    expect(operatorFlagsHelp()).toMatch(/--proxy-max-wait-limit <value> .*\(default 60s\)/);
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
    { name: "5m by default", argv: [], env: {}, grace: 300_000 },
    { name: "a duration flag", argv: ["--auth-stale-grace", "30s"], env: {}, grace: 30_000 },
    { name: "0s to turn it off", argv: ["--auth-stale-grace", "0s"], env: {}, grace: 0 },
    { name: "a bare 0 read as 0s", argv: [], env: { KEYPOOL_AUTH_STALE_GRACE: "0" }, grace: 0 },
  ])("takes --auth-stale-grace in milliseconds: $name", ({ argv, env, grace }) => {
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
    ).toMatchObject({ port: 9001, address: "0.0.0.0", healthCheckInterval: 30_000 });
  });

  it("has its own defaults without them", () => {
    expect(parseServeConfig([], {})).toMatchObject({
      port: 8769,
      address: "127.0.0.1",
      healthCheckInterval: 1000,
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
