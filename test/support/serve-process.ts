/**
 * Runs `keypool serve` as a child process on a free loopback port: with the flags a test gives
 * (`spawnServe`), or in the layout the standalone tests share (`startServe`): <dir>/manifests,
 * <dir>/state.json and <dir>/tokens.yaml.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./control-plane/control-plane.ts";
import { eventually } from "./eventually.ts";

export interface ServeProcess {
  child: ChildProcess;
  /** http://127.0.0.1:<port> */
  url: string;
  /** stdout + stderr so far. */
  output: () => string;
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop: () => Promise<number | null>;
}

/**
 * `keypool serve <args>` with `env` on top of this process's environment, answering on `port`
 * (which `args` or `env` must make it listen on). The probes port is a free one unless `env`
 * says otherwise.
 */
export async function spawnServe(
  args: string[],
  env: Record<string, string | undefined>,
  port: number,
): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["src/main.ts", "serve", ...args], {
    env: { ...process.env, ...env, KEYPOOL_PROBES_PORT: env.KEYPOOL_PROBES_PORT ?? "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`keypool serve exited with ${child.exitCode}:\n${output}`);
      return (await fetch(`${url}/health`)).ok;
    },
    30_000,
    100,
  );
  return {
    child,
    url,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

export async function startServe(dir: string, env: Record<string, string> = {}): Promise<ServeProcess> {
  const port = await freePort();
  return spawnServe(
    [
      "--manifests",
      join(dir, "manifests"),
      "--state-file",
      join(dir, "state.json"),
      "--auth",
      "tokens",
      "--auth-tokens-file",
      join(dir, "tokens.yaml"),
      "--port",
      String(port),
    ],
    env,
    port,
  );
}

/**
 * A fresh directory in startServe's layout: <dir>/manifests/pool.yaml holding `manifests`, and
 * <dir>/tokens.yaml with one admin token (verbs use and update).
 */
export async function serveLayout(name: string, adminToken: string, manifests: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `keypool-${name}-`));
  await mkdir(join(dir, "manifests"));
  await writeFile(
    join(dir, "tokens.yaml"),
    `tokens:\n  - {name: ops, token: ${adminToken}, verbs: [use, update]}\n`,
  );
  await writeFile(join(dir, "manifests", "pool.yaml"), manifests);
  return dir;
}
