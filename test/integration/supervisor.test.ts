/**
 * The harness must never leave an etcd or kube-apiserver behind, even when the process that
 * started it is killed with SIGKILL (no chance to clean up). Shown here with a stand-in child.
 */
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isAlive } from "../support/control-plane/processes.ts";
import { eventually } from "../support/kube.ts";

const supervisor = fileURLToPath(new URL("../support/control-plane/supervise.ts", import.meta.url));

describe("the process supervisor", () => {
  it("stops its child when the harness that started it is killed with SIGKILL", async () => {
    // A stand-in harness: starts the supervisor around `sleep`, prints the sleeper's pid, waits.
    // A stand-in harness: starts the supervisor around a shell that prints its pid and then
    // becomes \`sleep\` (exec keeps the pid), then idles until it is killed.
    const harnessCode = `
      const { spawn } = require("node:child_process");
      spawn(process.execPath, [${JSON.stringify(supervisor)}, "sh", "-c", "echo $$; exec sleep 600"],
        { stdio: ["pipe", "inherit", "inherit"] });
      setInterval(() => {}, 1000);
    `;
    const harness = spawn(process.execPath, ["-e", harnessCode], { stdio: ["ignore", "pipe", "inherit"] });
    const sleeperPid = await new Promise<number>((resolve) => {
      harness.stdout.setEncoding("utf8").once("data", (line: string) => resolve(Number(line.trim())));
    });
    expect(isAlive(sleeperPid)).toBe(true);

    harness.kill("SIGKILL");
    await eventually(async () => !isAlive(sleeperPid), 15_000);
    expect(isAlive(sleeperPid)).toBe(false);
  });

  it("writes its child's pid to SUPERVISE_PID_FILE, and stops the child promptly even while it is paused (SIGSTOP)", async () => {
    const pidFile = join(tmpdir(), `supervise-${process.pid}-${Date.now()}.pid`);
    const supervised = spawn(process.execPath, [supervisor, "sleep", "600"], {
      stdio: ["pipe", "ignore", "ignore"],
      env: { ...process.env, SUPERVISE_PID_FILE: pidFile },
    });
    const exited = new Promise((resolve) => supervised.once("exit", resolve));
    const sleeperPid = await eventually(async () => Number(await readFile(pidFile, "utf8")));
    process.kill(sleeperPid, "SIGSTOP");

    const started = Date.now();
    supervised.stdin.end(); // the harness stops it
    await exited;
    expect(isAlive(sleeperPid)).toBe(false);
    // SIGTERM was acted on (with SIGCONT), not the SIGKILL after the 10 s grace.
    expect(Date.now() - started).toBeLessThan(5_000);
    await rm(pidFile, { force: true });
  });
});
