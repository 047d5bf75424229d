/**
 * Checks a built operator image the way the cluster runs it (read-only root, no capabilities, no
 * privilege escalation, no network): it runs as 65532, has /nodejs/bin/node, has no shell to exec
 * into, and its entrypoint answers `--help`. Each check is one row of a table; all rows run and
 * report, pass or fail.
 */
import { ociRuntime } from "./buildah.ts";
import { NONROOT } from "./etc-files.ts";
import { podmanRunArgs, requireImage, runImage } from "./podman.ts";
import { run } from "./run.ts";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail?: string;
}

interface Check {
  name: string;
  /** Resolves to [ok, detail]; a throw counts as a failure with its message. */
  run: (ctx: CheckContext) => Promise<[boolean, string?]>;
}

interface CheckContext {
  image: string;
  /** A container of the image kept running for `podman exec` (node idling, as the entrypoint's node). */
  running: string;
}

const UID = `${NONROOT.uid}:${NONROOT.gid}`;

/** Paths that must not exist: shells and package managers. */
export const FORBIDDEN_PATHS = [
  "/bin/sh",
  "/usr/bin/sh",
  "/bin/bash",
  "/usr/bin/bash",
  "/bin/busybox",
  "/usr/bin/apt",
  "/usr/bin/dpkg",
];

const node = (image: string, script: string) =>
  runImage(image, { entrypoint: "/nodejs/bin/node", args: ["-p", script] });
const outputOf = (r: { stdout: string; stderr: string }) =>
  (r.stdout.trim() || r.stderr.trim()).split("\n").slice(0, 3).join(" | ");

export const CHECKS: readonly Check[] = [
  {
    name: `image config: User is ${UID}`,
    run: async ({ image }) => {
      const { user } = await requireImage(image, "build it first: npm run image -- build");
      return [user === UID || user === String(NONROOT.uid), `User=${JSON.stringify(user)}`];
    },
  },
  {
    name: "/nodejs/bin/node exists and runs",
    run: async ({ image }) => {
      const r = await runImage(image, { entrypoint: "/nodejs/bin/node", args: ["--version"] });
      return [r.code === 0 && /^v\d+\./.test(r.stdout), outputOf(r)];
    },
  },
  {
    name: `the process runs as uid:gid ${UID}`,
    run: async ({ image }) => {
      const r = await node(image, "`${process.getuid()}:${process.getgid()}`");
      return [r.code === 0 && r.stdout.trim() === UID, outputOf(r)];
    },
  },
  {
    name: `a process exec'd into a running container runs as ${UID}`,
    run: async ({ running }) => {
      const r = await run(
        "podman",
        ["exec", running, "/nodejs/bin/node", "-p", "`${process.getuid()}:${process.getgid()}`"],
        {
          capture: true,
          allowFailure: true,
        },
      );
      return [r.code === 0 && r.stdout.trim() === UID, outputOf(r)];
    },
  },
  {
    name: "no shell: `podman run --entrypoint sh` fails",
    run: async ({ image }) => {
      const r = await runImage(image, { entrypoint: "sh", args: ["-c", "true"] });
      return [r.code !== 0, `exit ${r.code}: ${outputOf(r)}`];
    },
  },
  {
    name: "no shell: `podman exec <container> sh -c true` fails",
    run: async ({ running }) => {
      const r = await run("podman", ["exec", running, "sh", "-c", "true"], {
        capture: true,
        allowFailure: true,
      });
      return [r.code !== 0, `exit ${r.code}: ${outputOf(r)}`];
    },
  },
  {
    name: "no shell or package manager on disk",
    run: async ({ image }) => {
      const r = await node(
        image,
        `${JSON.stringify(FORBIDDEN_PATHS)}.filter((p) => require("fs").existsSync(p)).join(" ")`,
      );
      return [
        r.code === 0 && r.stdout.trim() === "",
        r.code === 0 ? `found: ${r.stdout.trim() || "none"}` : outputOf(r),
      ];
    },
  },
  {
    name: "`keypool --help` (the entrypoint) prints usage and exits 0",
    run: async ({ image }) => {
      const r = await runImage(image, { args: ["--help"] });
      return [r.code === 0 && /usage/i.test(r.stdout), `exit ${r.code}: ${outputOf(r)}`];
    },
  },
];

/** Runs every check against `image`; a container is started for the exec checks and removed after. */
export async function runChecks(image: string): Promise<CheckResult[]> {
  await requireImage(image, "build it first: npm run image -- build");
  const running = `keypool-image-check-${process.pid}`;
  await run(
    "podman",
    podmanRunArgs(
      image,
      { detachAs: running, entrypoint: "/nodejs/bin/node", args: ["-e", "setInterval(() => {}, 1 << 30)"] },
      ociRuntime(),
    ),
    { capture: true },
  );
  try {
    const results: CheckResult[] = [];
    for (const check of CHECKS) {
      try {
        const [ok, detail] = await check.run({ image, running });
        results.push({ name: check.name, ok, ...(detail ? { detail } : {}) });
      } catch (err) {
        results.push({ name: check.name, ok: false, detail: (err as Error).message });
      }
    }
    return results;
  } finally {
    await run("podman", ["rm", "--force", "--time", "0", running], { capture: true, allowFailure: true });
  }
}
