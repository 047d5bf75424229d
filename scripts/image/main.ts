/**
 * npm run image -- <command>: container images without Docker or a registry (podman, buildah,
 * debootstrap). See USAGE; each command's work lives in its own module, wired here.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureBases } from "./base-images.ts";
import { buildOperatorImage, hostNpmCaFile } from "./build.ts";
import { imageCacheDir } from "./cache.ts";
import { runChecks } from "./check.ts";
import { ImageError } from "./errors.ts";
import { ensureExtras } from "./extras.ts";
import { nodeVersion } from "./node-dist.ts";
import { humanSize, type ImageFacts } from "./podman.ts";
import { saveImages } from "./save.ts";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEFAULT_TAG = "keypool-operator:dev";

const USAGE = `usage: npm run image -- <command> [options]

commands:
  build [--tag <name>]        make the base images when missing (Debian rootfs by debootstrap, Node.js
        [--no-cache]          from the npm registry, cached in ${imageCacheDir()}),
        [--network <mode>]    then build the repository's Dockerfile on them (default tag ${DEFAULT_TAG});
        [--ca-file <path>]    --network host if RUN steps cannot reach the npm registry; --ca-file: a CA
                              bundle npm in the RUN steps trusts (default: the host npm's cafile, if set)
  bases                       only the base images
  build-extras                the images the end-to-end test runs besides the operator: redis
                              (localhost/keypool-e2e/redis:7), curl (docker.io/curlimages/curl:8.11.1,
                              :8.5.0) and node (docker.io/library/node:24-slim)
  check [tag]                 run the built image hardened and check it: uid 65532, /nodejs/bin/node,
                              no shell, \`--help\` works (default tag ${DEFAULT_TAG})
  save <tag>... <file.tar>    write the images to a docker-archive that \`ctr -n k8s.io images import\`
                              takes, named as Kubernetes will ask for them

options:
  --mirror <url>              Debian mirror for debootstrap (default: the one in /etc/apt/sources.list*)

Needs root, podman, buildah, debootstrap and runc.`;

const log = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      tag: { type: "string", default: DEFAULT_TAG },
      "no-cache": { type: "boolean", default: false },
      network: { type: "string" },
      "ca-file": { type: "string" },
      mirror: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  const started = Date.now();
  const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s`;
  const bases = async () => {
    requireRoot();
    return ensureBases({
      cacheDir: imageCacheDir(),
      nodeVersion: await nodeVersion(REPO_ROOT),
      mirror: values.mirror,
      log,
    });
  };
  switch (command) {
    case "bases": {
      const made = await bases();
      log(`bases ready in ${elapsed()}`);
      for (const tag of [made.debian, made.node, made.runtime]) process.stdout.write(`${tag}\n`);
      return 0;
    }
    case "build": {
      const made = await bases();
      log(`bases ready in ${elapsed()}; building ${values.tag} from ${REPO_ROOT}Dockerfile`);
      const caFile = values["ca-file"] ?? (await hostNpmCaFile());
      if (caFile) log(`RUN steps trust ${caFile} (bind-mounted for the build, as the host's npm does)`);
      const facts = await buildOperatorImage(
        {
          tag: values.tag,
          nodeImage: made.node,
          runtimeImage: made.runtime,
          contextDir: REPO_ROOT,
          network: values.network,
          noCache: values["no-cache"],
        },
        caFile,
      );
      log(`built in ${elapsed()}`);
      printFacts(values.tag, facts);
      return 0;
    }
    case "build-extras": {
      const made = await bases();
      const extras = await ensureExtras({ bases: made, log });
      log(`extras ready in ${elapsed()}`);
      for (const [tag, facts] of extras) printFacts(tag, facts);
      return 0;
    }
    case "check": {
      const results = await runChecks(rest[0] ?? values.tag);
      for (const r of results)
        process.stdout.write(`${r.ok ? "PASS" : "FAIL"}  ${r.name}${r.detail ? `: ${r.detail}` : ""}\n`);
      const failed = results.filter((r) => !r.ok).length;
      process.stdout.write(
        failed ? `${failed} of ${results.length} checks failed\n` : `all ${results.length} checks passed\n`,
      );
      return failed ? 1 : 0;
    }
    case "save": {
      const last = rest.at(-1);
      const refs = rest.slice(0, -1);
      if (!last || refs.length === 0) throw new ImageError("usage", "save needs <tag>... <file.tar>");
      // Relative to where `npm run` was typed, not the repository root npm runs scripts in.
      const file = resolve(process.env.INIT_CWD ?? process.cwd(), last);
      const names = await saveImages(refs, file, log);
      log(`saved in ${elapsed()}: ${file}`);
      for (const name of names) process.stdout.write(`${name}\n`);
      return 0;
    }
    default:
      log(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

function printFacts(tag: string, facts: ImageFacts): void {
  process.stdout.write(
    `${tag}\n  id:     ${facts.id}\n  digest: ${facts.digest}\n  size:   ${humanSize(facts.size)} (${facts.size} bytes)\n`,
  );
}

/** debootstrap and `buildah mount` need root; rootless podman would need `buildah unshare` around all of it. */
function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new ImageError(
      "not_root",
      "building the images needs root (debootstrap, buildah mount): run it as root or with sudo",
    );
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    log(`image: ${err instanceof ImageError ? err.message : (err.stack ?? err.message)}`);
    process.exit(1);
  },
);
