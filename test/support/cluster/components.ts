/**
 * Runs the cluster's long-lived processes (containerd, kubelet, kube-controller-manager,
 * kube-scheduler, kube-proxy) each under the control-plane harness's supervise.ts: when the
 * process that started them (the cluster daemon) exits or is killed, its pipes close and every
 * component gets SIGTERM, then SIGKILL. Logs go to <run>/logs/<name>.log, pids to
 * <run>/pids/<name>.pid (the component) so status and teardown can find them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ClusterLayout } from "./layout.ts";

const SUPERVISOR = fileURLToPath(new URL("../control-plane/supervise.ts", import.meta.url));

export interface Component {
  name: string;
  child: ChildProcess;
  logPath: string;
  pidFile: string;
  exited: Promise<number | null>;
}

export class ComponentError extends Error {
  override name = "ComponentError";
  readonly code = "cluster_component_failed";
}

export async function startComponent(
  layout: ClusterLayout,
  name: string,
  binary: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Component> {
  await Promise.all([mkdir(layout.logs, { recursive: true }), mkdir(layout.pids, { recursive: true })]);
  const logPath = join(layout.logs, `${name}.log`);
  const pidFile = join(layout.pids, `${name}.pid`);
  await rm(pidFile, { force: true });
  const log = await open(logPath, "a");
  const child = spawn(process.execPath, [SUPERVISOR, binary, ...args], {
    stdio: ["pipe", log.fd, log.fd],
    cwd: layout.dir,
    env: { ...env, SUPERVISE_PID_FILE: pidFile },
  });
  await log.close();
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { name, child, logPath, pidFile, exited };
}

/** Closes the supervisor's pipe (it stops the component) and waits for it to exit. */
export async function stopComponent(c: Component | undefined): Promise<void> {
  if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.stdin?.end();
  await c.exited;
}

/** The last lines of a log, without the flag dump Kubernetes components start with. */
export async function tail(path: string, lines = 30): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => !/\] FLAG: --/.test(line))
    .slice(-lines)
    .join("\n");
}

/**
 * Polls `ready` until it returns true; fails early, with the log's tail, when the component
 * exits, and with the last error when time runs out.
 */
export async function waitUntilReady(
  c: Component,
  timeoutMs: number,
  ready: () => Promise<boolean>,
  what = `${c.name} to be ready`,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (c.child.exitCode !== null) {
      throw new ComponentError(
        `${c.name} exited with code ${c.child.exitCode} while waiting for ${what}. Last lines of ${c.logPath}:\n${await tail(c.logPath)}`,
      );
    }
    try {
      if (await ready()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new ComponentError(
    `timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}. ` +
      `Last lines of ${c.logPath}:\n${await tail(c.logPath)}`,
  );
}
