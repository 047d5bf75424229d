/** The `keypool` command line: help lists every flag, and a bad flag stops start-up with one line. */
import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";

function keypool(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["bin/keypool.js", ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("keypool", () => {
  it("--help lists the operator's flags with their defaults and environment variables", async () => {
    const { code, stdout } = await keypool(["--help"]);
    expect(code).toBe(0);
    for (const flag of ["--kubeconfig", "--namespaces", "--leader-elect", "--log-level", "--probes-port"]) {
      expect(stdout).toContain(flag);
    }
    expect(stdout).toContain("KEYPOOL_LOG_LEVEL");
    expect(stdout).toContain("(default 8081)");
  });

  it.each([
    [["operator", "--log-level", "chatty"], {}, "--log-level (or KEYPOOL_LOG_LEVEL)"],
    [["operator", "--no-such-flag"], {}, "Unknown option '--no-such-flag'"],
    [["operator"], { KEYPOOL_PROBES_PORT: "http" }, "--probes-port (or KEYPOOL_PROBES_PORT)"],
    [["frobnicate"], {}, 'unknown command "frobnicate"'],
  ])("%j stops with exit code 2 and one line saying why", async (args, env, message) => {
    const { code, stderr } = await keypool(args, env as Record<string, string>);
    expect(code).toBe(2);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain(message);
  });

  it("refuses to start without a cluster and says how to give one", async () => {
    const { code, stderr } = await keypool(["operator", "--kubeconfig", "/nonexistent/kubeconfig"]);
    expect(code).toBe(1);
    expect(stderr).toContain("keypool:");
  });
});
