import { describe, expect, it } from "vitest";
import { ConfigError, parseOperatorConfig, parseServeConfig, serveFlagsHelp } from "../../src/config.ts";

describe("operator configuration", () => {
  it("has the documented defaults", () => {
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
