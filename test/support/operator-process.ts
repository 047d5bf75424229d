/**
 * Runs `keypool operator` as a child process, the way a Deployment would run it, and keeps
 * its log lines (pino JSON) so tests can assert on them and grep them for leaked keys.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { eventually } from "./eventually.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

export interface OperatorProcess {
  child: ChildProcess;
  /** Raw stdout + stderr lines. */
  lines: string[];
  /** Parsed JSON log lines. */
  logs: Array<Record<string, unknown>>;
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Base URL of the dispenser once the operator is running (http://127.0.0.1:<port>). */
  dispenserUrl(): Promise<string>;
  /** Base URL of the probes port (/healthz, /readyz, /metrics) once the operator is running. */
  probesUrl(): Promise<string>;
  /** SIGTERM and wait for a clean exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, nothing flushed. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/** Leader election with short timings, so a take-over happens within seconds. */
export const FAST_LEADER_ELECTION = [
  "--leader-elect",
  "--leader-election-lease-duration",
  "3s",
  "--leader-election-renew-deadline",
  "2s",
  "--leader-election-retry-period",
  "500ms",
];

/**
 * The arguments of an operator watching one namespace of the shared test control plane, with no
 * auth (tests call it as anyone) and no probes (the pools' providers are not reachable).
 */
export function localOperatorArgs(kubeconfig: string, namespace: string): string[] {
  return ["--kubeconfig", kubeconfig, "--namespaces", namespace, "--auth", "none", "--no-probes"];
}

/** Free ports on loopback for both servers: parallel test files never collide. */
const LOOPBACK_PORTS = [
  "--port",
  "0",
  "--address",
  "127.0.0.1",
  "--probes-port",
  "0",
  "--probes-address",
  "127.0.0.1",
];

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface StartOptions {
  env?: Record<string, string>;
  /** false: stop keeping log lines once the operator runs (benchmarks: audit lines at load). */
  retainLogs?: boolean;
  /** The script to run instead of src/main.ts (the image layout's bin/keypool.js), and its cwd. */
  entry?: string;
  cwd?: string;
}

export function startOperator(args: string[], options: StartOptions = {}): OperatorProcess {
  const env = options.env ?? {};
  const child = spawn(
    process.execPath,
    [options.entry ?? MAIN, "operator", ...LOOPBACK_PORTS, "--log-level", "debug", ...args],
    {
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdio: ["ignore", "pipe", "pipe"],
      // No shutdown delay: nothing routes to a test's operator, and stops stay quick (a test of
      // the delay sets KEYPOOL_SHUTDOWN_DELAY itself).
      env: { ...process.env, KUBERNETES_SERVICE_HOST: "", KEYPOOL_SHUTDOWN_DELAY: "0s", ...env },
    },
  );
  running.add(child);
  const lines: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  let started = false;
  const onLine = (line: string) => {
    if (started && options.retainLogs === false) return;
    if (line.includes('"operator running"')) started = true;
    lines.push(line);
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: kept in lines only
    }
  };
  if (child.stdout) createInterface({ input: child.stdout }).on("line", onLine);
  if (child.stderr) createInterface({ input: child.stderr }).on("line", onLine);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    lines,
    logs,
    exited,
    waitForLog: (match, timeoutMs = 30_000) =>
      eventually(async () => {
        if (child.exitCode !== null)
          throw new Error(`operator exited with ${child.exitCode}:\n${lines.slice(-20).join("\n")}`);
        return logs.find(match);
      }, timeoutMs),
    async dispenserUrl() {
      const line = await eventually(async () => logs.find((l) => l.msg === "operator running"), 30_000);
      return `http://127.0.0.1:${String(line.port)}`;
    },
    async probesUrl() {
      const line = await eventually(async () => logs.find((l) => l.msg === "operator running"), 30_000);
      return `http://127.0.0.1:${String(line.probesPort)}`;
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
