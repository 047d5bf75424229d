/**
 * Running the host tools the cluster needs (ip, iptables, mount, ctr...): one helper that
 * captures output and reports failures with the command line and stderr, and one that says
 * whether a tool is installed.
 */
import { execFile } from "node:child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  override name = "CommandError";
  readonly code = "cluster_command_failed";
  readonly result: CommandResult;
  constructor(cmd: string, args: readonly string[], result: CommandResult) {
    super(
      `${[cmd, ...args].join(" ")} exited with ${result.code}: ${(result.stderr || result.stdout).trim()}`,
    );
    this.result = result;
  }
}

/** Runs `cmd` and resolves with its result; rejects on a non-zero exit unless `allowFail`. */
export function command(
  cmd: string,
  args: readonly string[],
  options: { allowFail?: boolean; input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000, env: options.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 127) : 0;
        const result = { code, stdout, stderr: err && typeof err.code !== "number" ? err.message : stderr };
        if (code !== 0 && !options.allowFail) reject(new CommandError(cmd, args, result));
        else resolve(result);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Whether `cmd` can be run (found on PATH or at that path). */
export async function hasCommand(cmd: string): Promise<boolean> {
  const r = await command("sh", ["-c", `command -v "$0"`, cmd], { allowFail: true });
  return r.code === 0;
}
