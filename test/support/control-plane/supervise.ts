/**
 * Runs one control-plane process and guarantees it does not outlive whoever started us.
 *
 * Usage: node supervise.ts <binary> [args...]
 *
 * Our standard input is a pipe from the harness. When it closes (the harness called stop(),
 * exited, crashed, or was killed with SIGKILL) or we get SIGINT/SIGTERM, we send the child
 * SIGTERM, then SIGKILL after a grace period, and exit with its status. A process that dies
 * with no chance to clean up still closes its pipes, so no etcd or kube-apiserver is orphaned.
 * A child the harness paused (SIGSTOP, to drill an outage) gets SIGCONT with the SIGTERM, so it
 * can act on it.
 *
 * With SUPERVISE_PID_FILE set, the child's pid is written there once it is spawned (the harness
 * signals the child itself to pause and resume it).
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";

const GRACE_MS = 10_000;
const [binary, ...args] = process.argv.slice(2);
if (!binary) {
  process.stderr.write("usage: supervise.ts <binary> [args...]\n");
  process.exit(2);
}

const child = spawn(binary, args, { stdio: ["ignore", "inherit", "inherit"] });
const pidFile = process.env.SUPERVISE_PID_FILE;
if (pidFile && child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
let stopping = false;

function stop(why: string) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`supervise: stopping ${binary} (${why})\n`);
  child.kill("SIGTERM");
  child.kill("SIGCONT"); // a paused child acts on the SIGTERM only once it runs again
  setTimeout(() => child.kill("SIGKILL"), GRACE_MS).unref();
}

process.stdin.on("end", () => stop("harness closed the pipe"));
process.stdin.on("close", () => stop("harness closed the pipe"));
process.stdin.on("error", () => stop("harness pipe error"));
process.stdin.resume();
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGHUP", () => stop("SIGHUP"));

child.on("error", (err) => {
  process.stderr.write(`supervise: cannot start ${binary}: ${err.message}\n`);
  process.exit(127);
});
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal ? 128 + (signal === "SIGKILL" ? 9 : 15) : 1));
});
