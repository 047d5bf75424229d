/**
 * `npm test`'s set-up (its `pretest` step): makes sure the system tools the tests run are on
 * PATH, installing the missing ones from Debian's packages when this machine can (root, or sudo
 * without a password), and otherwise stopping with one message that says what to install.
 *
 * - shellcheck: every shell script in the repository is checked with it;
 * - lua5.1: the Argo CD health check runs in it, as it does in Argo CD's gopher-lua;
 * - redis-server: the shared-state tests run a real Redis (test/support/redis-server.ts starts
 *   it on a free loopback port, persistence off).
 *
 * The control-plane binaries (kube-apiserver, etcd, kubectl) are not handled here: the test run
 * builds them into a cache itself (test/support/control-plane).
 */
import { spawnSync } from "node:child_process";

/** A tool the tests run, and the Debian package that has it. */
export interface TestTool {
  command: string;
  debianPackage: string;
  why: string;
}

export const TEST_TOOLS: readonly TestTool[] = [
  { command: "shellcheck", debianPackage: "shellcheck", why: "checks every shell script" },
  { command: "lua5.1", debianPackage: "lua5.1", why: "runs the Argo CD health check" },
  { command: "redis-server", debianPackage: "redis-server", why: "the shared-state tests run a real Redis" },
];

type Run = (command: string, args: string[]) => { status: number | null; output: string };

const run: Run = (command, args) => {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return {
    status: result.error ? null : result.status,
    output: `${result.stdout ?? ""}${result.stderr ?? ""}`,
  };
};

const onPath = (command: string): boolean => run("sh", ["-c", `command -v ${command}`]).status === 0;

/** The apt-get command line here: as root, through sudo without a password, or none. */
function aptGet(): string[] | undefined {
  if (!onPath("apt-get")) return undefined;
  if (process.getuid?.() === 0) return ["apt-get"];
  if (onPath("sudo") && run("sudo", ["-n", "true"]).status === 0) return ["sudo", "-n", "apt-get"];
  return undefined;
}

function instructions(missing: readonly TestTool[]): string {
  const packages = missing.map((t) => t.debianPackage).join(" ");
  const lines = missing.map((t) => `  - ${t.command} (${t.why})`);
  return [
    `npm test needs these tools, and they are not on PATH:`,
    ...lines,
    `Install them, then run npm test again:`,
    `  Debian/Ubuntu: sudo apt-get install -y ${packages}`,
    `  Fedora:        sudo dnf install -y ShellCheck lua5.1 redis`,
    `  macOS:         brew install shellcheck lua@5.1 redis (and put lua5.1 on PATH)`,
  ].join("\n");
}

/** Installs what is missing; returns the exit code for npm (0: every tool is there). */
export function ensureTestTools(): number {
  const missing = TEST_TOOLS.filter((t) => !onPath(t.command));
  if (missing.length === 0) return 0;
  const apt = aptGet();
  if (apt === undefined) {
    process.stderr.write(`${instructions(missing)}\n`);
    return 1;
  }
  const packages = missing.map((t) => t.debianPackage);
  process.stderr.write(`npm test: installing ${packages.join(", ")} from Debian's packages\n`);
  const [command = "apt-get", ...before] = apt;
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", "--no-install-recommends", ...packages],
  ]) {
    const result = run(command, [...before, ...args]);
    if (result.status !== 0) {
      process.stderr.write(`${result.output.trim()}\napt-get ${args[0]} failed.\n${instructions(missing)}\n`);
      return 1;
    }
  }
  const still = missing.filter((t) => !onPath(t.command));
  if (still.length > 0) {
    process.stderr.write(`${instructions(still)}\n`);
    return 1;
  }
  return 0;
}

if (import.meta.main) process.exitCode = ensureTestTools();
