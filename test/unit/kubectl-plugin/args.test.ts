/** `kubectl keypool` arguments: kubectl's flags on every command, and one line for each mistake. */
import { describe, expect, it } from "vitest";
import { DEFAULT_TIMEOUT_MS, parsePluginArgs, usage } from "../../../src/kubectl-plugin/args.ts";
import { PluginError } from "../../../src/kubectl-plugin/errors.ts";

const ID = "3f9a0c21b7d4";

describe("parsing kubectl keypool's arguments", () => {
  it.each<[string, string[], Record<string, unknown>]>([
    ["status of a namespace", ["status"], { command: "status", pool: undefined, output: "table" }],
    [
      "status of one pool, -n and -o as kubectl spells them",
      ["status", "openai-prod", "-n", "ai", "-o", "json"],
      { pool: "openai-prod", namespace: "ai", output: "json" },
    ],
    ["flags glued to their values", ["status", "-nai", "-oyaml"], { namespace: "ai", output: "yaml" }],
    [
      "long flags with =",
      ["status", "--namespace=ai", "--context=staging", "--kubeconfig=/tmp/kc"],
      { namespace: "ai", context: "staging", kubeconfig: "/tmp/kc" },
    ],
    ["every namespace", ["status", "-A"], { allNamespaces: true }],
    [
      "probe with a timeout",
      ["probe", "openai-prod", "--timeout", "90s"],
      { command: "probe", pool: "openai-prod", timeoutMs: 90_000 },
    ],
    ["probe's default timeout", ["probe", "p"], { timeoutMs: DEFAULT_TIMEOUT_MS }],
    ["a key action", ["disable", "p", ID], { command: "disable", pool: "p", keyId: ID, wait: false }],
    ["a key action that waits", ["drain", "p", ID, "--wait"], { command: "drain", wait: true }],
    ["flags before the command", ["-n", "ai", "enable", "p", ID], { command: "enable", namespace: "ai" }],
    ["rotate-check", ["rotate-check", "p"], { command: "rotate-check", pool: "p" }],
  ])("reads %s", (_name, argv, expected) => {
    expect(parsePluginArgs(argv)).toMatchObject({ help: false, ...expected });
  });

  it.each([[[]], [["--help"]], [["help"]], [["status", "-h"]]])("%j asks for help", (argv) => {
    expect(parsePluginArgs(argv)).toEqual({ help: true });
  });

  it.each<[string, string[], string]>([
    ["an unknown command", ["frobnicate"], 'unknown command "frobnicate"'],
    ["an unknown flag", ["status", "--bogus"], "Unknown option '--bogus'"],
    ["a missing pool", ["probe"], "missing POOL: kubectl keypool probe POOL"],
    ["a missing key id", ["disable", "p"], "missing KEY_ID: kubectl keypool disable POOL KEY_ID"],
    ["a key that is not an id", ["drain", "p", "sk-live-abc"], '"sk-live-abc" is not a key id'],
    ["too many arguments", ["status", "p", "q"], "too many arguments: kubectl keypool status [POOL]"],
    ["a pool name Kubernetes refuses", ["status", "Open_AI"], '"Open_AI" is not a KeyPool name'],
    ["an output kubectl keypool does not write", ["status", "-o", "wide"], "-o wide: use json or yaml"],
    ["-A with a pool", ["status", "p", "-A"], "-A (--all-namespaces) goes with status without POOL only"],
    ["a timeout that is not a duration", ["probe", "p", "--timeout", "soon"], "--timeout soon"],
    ["--wait on status", ["status", "--wait"], "--wait goes with disable, enable and drain"],
  ])("stops on %s with exit code 2 and says why", (_name, argv, message) => {
    let caught: unknown;
    try {
      parsePluginArgs(argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PluginError);
    expect((caught as PluginError).exitCode).toBe(2);
    expect((caught as PluginError).message).toContain(message);
    expect((caught as PluginError).message).not.toContain("\n");
  });

  it("documents every command and flag in --help", () => {
    const text = usage();
    for (const word of ["status", "probe", "disable", "enable", "drain", "rotate-check"])
      expect(text).toContain(`kubectl keypool ${word}`);
    for (const flag of ["--namespace", "--context", "--kubeconfig", "--output", "--timeout", "--wait", "-A"])
      expect(text).toContain(flag);
  });
});
