/**
 * `npm test`'s set-up (its `pretest` step): makes sure the system tools the tests run are on
 * PATH, installing the missing ones from Debian's packages when this machine can (root, or sudo
 * without a password), and otherwise stopping with one message that says what to install.
 *
 * - shellcheck: every shell script in the repository is checked with it;
 * - lua5.1: the Argo CD health check runs in it, as it does in Argo CD's gopher-lua;
 * - redis-server: the shared-state tests run a real Redis (test/support/redis-server.ts starts
 *   it on a free loopback port, persistence off);
 * - chromium: the status page test drives it headless (playwright-core, no browser download).
 *
 * The control-plane binaries (kube-apiserver, etcd, kubectl) are not handled here: the test run
 * builds them into a cache itself (test/support/control-plane).
 *
 * `--e2e` (`npm run test:e2e`'s pretest) does the same for what the single-node cluster and the
 * image build run: containerd, runc, the CNI plugins, iptables, conntrack, podman, buildah and
 * debootstrap.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** A tool the tests run, and the Debian package that has it. */
export interface TestTool {
  /** A command on PATH, or an absolute path that must exist. */
  command: string;
  debianPackage: string;
  why: string;
}

export const TEST_TOOLS: readonly TestTool[] = [
  { command: "shellcheck", debianPackage: "shellcheck", why: "checks every shell script" },
  { command: "lua5.1", debianPackage: "lua5.1", why: "runs the Argo CD health check" },
  { command: "redis-server", debianPackage: "redis-server", why: "the shared-state tests run a real Redis" },
  { command: "chromium", debianPackage: "chromium", why: "the status page test drives a real browser" },
];

export const E2E_TOOLS: readonly TestTool[] = [
  { command: "containerd", debianPackage: "containerd", why: "the cluster's container runtime (CRI)" },
  { command: "runc", debianPackage: "runc", why: "runs the containers" },
  {
    command: "/usr/lib/cni/bridge",
    debianPackage: "containernetworking-plugins",
    why: "pod networking (bridge, host-local, portmap)",
  },
  { command: "iptables", debianPackage: "iptables", why: "kube-proxy and pod isolation" },
  { command: "conntrack", debianPackage: "conntrack", why: "kube-proxy" },
  { command: "podman", debianPackage: "podman", why: "image checks and archives" },
  { command: "buildah", debianPackage: "buildah", why: "builds the Dockerfile" },
  { command: "debootstrap", debianPackage: "debootstrap", why: "the base images' Debian root filesystem" },
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

/** Whether a command is on PATH (or, for an absolute path, whether the file exists). */
export const onPath = (command: string): boolean =>
  command.startsWith("/") ? existsSync(command) : run("sh", ["-c", `command -v ${command}`]).status === 0;

/** The apt-get command line here: as root, through sudo without a password, or none. */
function aptGet(): string[] | undefined {
  if (!onPath("apt-get")) return undefined;
  if (process.getuid?.() === 0) return ["apt-get"];
  if (onPath("sudo") && run("sudo", ["-n", "true"]).status === 0) return ["sudo", "-n", "apt-get"];
  return undefined;
}

function instructions(missing: readonly TestTool[], script: string): string {
  const packages = missing.map((t) => t.debianPackage).join(" ");
  const lines = missing.map((t) => `  - ${t.command} (${t.why})`);
  return [
    `${script} needs these tools, and they are not on PATH:`,
    ...lines,
    `Install them, then run ${script} again:`,
    `  Debian/Ubuntu: sudo apt-get install -y ${packages}`,
    ...(script === "npm test"
      ? [
          `  Fedora:        sudo dnf install -y ShellCheck lua5.1 redis`,
          `  macOS:         brew install shellcheck lua@5.1 redis (and put lua5.1 on PATH)`,
        ]
      : []),
  ].join("\n");
}

/** Installs what is missing; returns the exit code for npm (0: every tool is there). */
export function ensureTestTools(tools: readonly TestTool[] = TEST_TOOLS, script = "npm test"): number {
  const instructionsFor = (missing: readonly TestTool[]) => instructions(missing, script);
  const missing = tools.filter((t) => !onPath(t.command));
  if (missing.length === 0) return 0;
  const apt = aptGet();
  if (apt === undefined) {
    process.stderr.write(`${instructionsFor(missing)}\n`);
    return 1;
  }
  const packages = missing.map((t) => t.debianPackage);
  process.stderr.write(`${script}: installing ${packages.join(", ")} from Debian's packages\n`);
  const [command = "apt-get", ...before] = apt;
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", "--no-install-recommends", ...packages],
  ]) {
    const result = run(command, [...before, ...args]);
    if (result.status !== 0) {
      process.stderr.write(
        `${result.output.trim()}\napt-get ${args[0]} failed.\n${instructionsFor(missing)}\n`,
      );
      return 1;
    }
  }
  const still = missing.filter((t) => !onPath(t.command));
  if (still.length > 0) {
    process.stderr.write(`${instructionsFor(still)}\n`);
    return 1;
  }
  return 0;
}

if (import.meta.main)
  process.exitCode = process.argv.includes("--e2e")
    ? ensureTestTools(E2E_TOOLS, "npm run test:e2e")
    : ensureTestTools();
