/**
 * Whether this machine can run `npm run test:e2e` (a real single-node cluster and image builds):
 * prints "ok" and exits 0, or prints why not and exits 1. .ci/run asks before it runs the e2e,
 * so a skip always says why. Missing Debian packages are not a reason: the e2e's pretest
 * installs them where apt-get runs as root.
 */
import { existsSync, readFileSync } from "node:fs";
import { E2E_TOOLS, onPath } from "./test-tools.ts";

export function e2eBlockers(): string[] {
  const why: string[] = [];
  if (process.platform !== "linux") return [`it runs a kubelet: Linux only (this is ${process.platform})`];
  if (process.getuid?.() !== 0) why.push("it runs containerd, kubelet and iptables: run as root");
  const cgroups = existsSync("/proc/self/cgroup") ? readFileSync("/proc/self/cgroup", "utf8") : "";
  if (!existsSync("/sys/fs/cgroup") || cgroups.trim() === "")
    why.push("no cgroup file system at /sys/fs/cgroup");
  if (!onPath("go")) why.push("Go is not on PATH: the cluster's components are built from the Go modules");
  const missing = E2E_TOOLS.filter((t) => !onPath(t.command));
  if (missing.length > 0 && !onPath("apt-get"))
    why.push(`missing ${missing.map((t) => t.debianPackage).join(", ")}, and no apt-get to install them`);
  return why;
}

if (import.meta.main) {
  const why = e2eBlockers();
  process.stdout.write(why.length === 0 ? "ok\n" : `${why.join("; ")}\n`);
  process.exitCode = why.length === 0 ? 0 : 1;
}
