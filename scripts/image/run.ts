/**
 * Runs the tools the image scripts drive (podman, buildah, debootstrap, npm, tar). Long steps show
 * the tool's own output on stderr (stdout stays for results such as the digest); short ones are
 * captured and answered. A missing tool is an ImageError saying what to install.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { ImageError } from "./errors.ts";

/** What to install when a tool is not on the PATH (Debian package names). */
export const INSTALL_HINTS: Readonly<Record<string, string>> = {
  podman: "install podman (apt-get install podman)",
  buildah: "install buildah (apt-get install buildah)",
  debootstrap: "install debootstrap (apt-get install debootstrap)",
  tar: "install tar (apt-get install tar)",
  npm: "npm comes with Node.js: run this through `npm run image -- ...`, or put npm on the PATH",
  ctr: "install containerd (apt-get install containerd)",
  containerd: "install containerd (apt-get install containerd)",
};

export interface RunOptions {
  /** Capture stdout and stderr instead of showing them (default: show them on stderr). */
  capture?: boolean;
  /** A non-zero exit is returned instead of thrown. */
  allowFailure?: boolean;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command as a user would type it, for messages. */
export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      // Shown output goes to our stderr: stdout is kept for results (size, digest).
      stdio: options.capture ? ["ignore", "pipe", "pipe"] : ["ignore", 2, 2],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (err: NodeJS.ErrnoException) => reject(spawnError(cmd, args, err)));
    child.on("close", (code, signal) => {
      const result = { code: code ?? 128, stdout, stderr };
      if (result.code === 0 || options.allowFailure) resolve(result);
      else reject(failed(cmd, args, signal ? `was killed by ${signal}` : `exited with ${code}`, stderr));
    });
  });
}

/** Runs a command and returns its trimmed stdout. */
export async function output(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  return (await run(cmd, args, { ...options, capture: true })).stdout.trim();
}

/** `from | to`: the first command's stdout feeds the second's stdin (a tar pipe, say). */
export function pipe(
  from: readonly [string, readonly string[]],
  to: readonly [string, readonly string[]],
): Promise<void> {
  return new Promise((resolve, reject) => {
    const producer = spawn(from[0], from[1], { stdio: ["ignore", "pipe", "inherit"] });
    const consumer = spawn(to[0], to[1], { stdio: ["pipe", "inherit", "inherit"] });
    producer.stdout.pipe(consumer.stdin);
    // Each child settles once (a failed spawn may report both "error" and "close").
    const settled = new Set<ChildProcess>();
    let failure: Error | undefined;
    const settle = (child: ChildProcess, err?: Error) => {
      if (settled.has(child)) return;
      settled.add(child);
      failure ??= err;
      if (settled.size < 2) return;
      if (failure) reject(failure);
      else resolve();
    };
    for (const [child, [cmd, args]] of [
      [producer, from],
      [consumer, to],
    ] as const) {
      child.on("error", (err: NodeJS.ErrnoException) => {
        producer.kill();
        consumer.kill();
        settle(child, spawnError(cmd, args, err));
      });
      child.on("close", (code, signal) =>
        settle(
          child,
          code === 0
            ? undefined
            : failed(cmd, args, signal ? `was killed by ${signal}` : `exited with ${code}`),
        ),
      );
    }
  });
}

function spawnError(cmd: string, args: readonly string[], err: NodeJS.ErrnoException): Error {
  if (err.code === "ENOENT") {
    return new ImageError(
      "tool_missing",
      `${cmd} is not on the PATH: ${INSTALL_HINTS[cmd] ?? `install ${cmd}`}`,
    );
  }
  return new ImageError("command_failed", `${commandLine(cmd, args)} could not start: ${err.message}`);
}

function failed(cmd: string, args: readonly string[], how: string, stderr = ""): ImageError {
  const tail = stderr.trim().split("\n").slice(-15).join("\n");
  return new ImageError("command_failed", `${commandLine(cmd, args)} ${how}${tail ? `:\n${tail}` : ""}`);
}
