/**
 * kubectl for the end-to-end journey: the user's own commands, against the cluster the journey
 * was given (its kubeconfig only; ~/.kube/config is never read or written).
 */
import { spawn } from "node:child_process";

export interface KubectlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class KubectlError extends Error {
  override name = "KubectlError";
  readonly code = "kubectl_failed";
  readonly args: readonly string[];
  readonly result: KubectlResult;
  constructor(args: readonly string[], result: KubectlResult) {
    super(
      `kubectl ${args.join(" ")} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
    this.args = args;
    this.result = result;
  }
}

export interface Kubectl {
  /** Runs kubectl; throws KubectlError unless it exits 0. */
  (args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** Runs kubectl and returns whatever happened (for commands that are meant to fail). */
  attempt(args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** `kubectl get -o json` of one object, parsed; undefined when it does not exist. */
  getJson<T = Record<string, unknown>>(args: readonly string[]): Promise<T | undefined>;
  readonly kubeconfig: string;
}

/** A kubectl bound to one kubeconfig. `binary` is kubectl's path (default: `kubectl` on PATH). */
export function kubectlFor(kubeconfig: string, binary = "kubectl"): Kubectl {
  const attempt = (
    args: readonly string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<KubectlResult> =>
    new Promise((resolve, reject) => {
      const child = spawn(binary, ["--kubeconfig", kubeconfig, ...args], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, KUBECONFIG: kubeconfig },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(options.input ?? "");
    });
  const run = async (args: readonly string[], options?: { input?: string; timeoutMs?: number }) => {
    const result = await attempt(args, options);
    if (result.code !== 0) throw new KubectlError(args, result);
    return result.stdout;
  };
  return Object.assign(run, {
    attempt,
    kubeconfig,
    async getJson<T>(args: readonly string[]): Promise<T | undefined> {
      const result = await attempt(["get", ...args, "-o", "json"]);
      if (result.code === 0) return JSON.parse(result.stdout) as T;
      if (/NotFound|not found/.test(result.stderr)) return undefined;
      throw new KubectlError(["get", ...args, "-o", "json"], result);
    },
  });
}

/** Polls `fn` until it returns a value other than undefined/false; throws its last error at the end. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
  stepMs = 500,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s${why}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
