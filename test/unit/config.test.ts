import { describe, expect, it } from "vitest";
import { ConfigError, parseOperatorConfig } from "../../src/config.ts";

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
