/**
 * The images the end-to-end test runs besides the operator, made from the local debian and node
 * bases so that its manifests run unchanged with imagePullPolicy IfNotPresent:
 *
 * - redis: Debian's redis-server, user redis (999, as the official image), no persistence;
 * - curl: Debian's curl with /bin/sh and coreutils (examples/client.yaml and test/e2e/manifests.yaml
 *   run shell scripts with cat, head, grep, sleep), user curl_user 100:101 as curlimages/curl, tagged
 *   with the curlimages/curl tags those manifests name (the curl inside is Debian's, not 8.x);
 * - node: the node base, tagged node:24-slim for test/e2e/fake-provider.yaml (user node 1000).
 *
 * redis and curl come from the Debian mirror at build time (apt-get in a buildah container).
 */
import { INPUTS_LABEL, withWorkingContainer } from "./buildah.ts";
import type { Bases } from "./base-images.ts";
import { ensureImage } from "./base-images.ts";
import { inputsKey } from "./cache.ts";
import { type ImageFacts, requireImage, tagImage } from "./podman.ts";

/** Bump one when its recipe below changes. */
const RECIPES = { redis: 1, curl: 1 } as const;

export const EXTRA_TAGS = {
  redis: "localhost/keypool-e2e/redis:7",
  /** examples/client.yaml's, then test/e2e/manifests.yaml's. */
  curl: ["docker.io/curlimages/curl:8.11.1", "docker.io/curlimages/curl:8.5.0"],
  node: "docker.io/library/node:24-slim",
} as const;

/** apt-get install without prompts, without starting services, leaving no package lists behind. */
export function aptInstallScript(packages: readonly string[]): string {
  return [
    // invoke-rc.d asks policy-rc.d; 101 = "do not start": postinst scripts must not start daemons.
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d",
    "apt-get update -qq",
    `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${packages.join(" ")}`,
    "rm -f /usr/sbin/policy-rc.d",
    "apt-get clean",
    "rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old",
  ].join("\n");
}

const REDIS_SCRIPT = [
  // The official redis image's ids, made before the package's postinst would pick others.
  "groupadd --system --gid 999 redis",
  "useradd --system --uid 999 --gid redis --home-dir /var/lib/redis --shell /usr/sbin/nologin redis",
  aptInstallScript(["redis-server"]),
  "install -d -o redis -g redis -m 0755 /data",
  "redis-server --version",
].join("\n");

/** What curlimages/curl's entrypoint does: `image -sS url` runs curl, `image sh -c ...` runs sh. */
const CURL_ENTRYPOINT = `#!/bin/sh
set -e
if [ "\${1#-}" != "$1" ]; then set -- curl "$@"; fi
exec "$@"
`;

const CURL_SCRIPT = [
  "groupadd --gid 101 curl_group",
  "useradd --uid 100 --gid curl_group --create-home --home-dir /home/curl_user --shell /bin/sh curl_user",
  aptInstallScript(["curl"]),
  `cat > /entrypoint.sh <<'EOF'\n${CURL_ENTRYPOINT}EOF`,
  "chmod 755 /entrypoint.sh",
  "curl --version | head -1",
].join("\n");

export interface ExtrasContext {
  bases: Bases;
  log: (line: string) => void;
}

/** Makes the extra images when missing or out of date; returns each tag's facts. */
export async function ensureExtras(ctx: ExtrasContext): Promise<[string, ImageFacts][]> {
  const { bases, log } = ctx;
  const redisKey = inputsKey({ debian: bases.keys.debian, script: REDIS_SCRIPT, recipe: RECIPES.redis });
  await ensureImage(ctx, EXTRA_TAGS.redis, redisKey, () =>
    withWorkingContainer(bases.debian, async (c) => {
      await c.sh(REDIS_SCRIPT);
      await c.config({
        user: "999:999",
        workingDir: "/data",
        // All in the entrypoint: arguments given to the container are added to these, not instead.
        entrypoint: ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
        cmd: [],
        ports: [6379],
        labels: { [INPUTS_LABEL]: redisKey },
      });
      await c.commit(EXTRA_TAGS.redis);
    }),
  );

  const [curlTag, ...curlAliases] = EXTRA_TAGS.curl;
  const curlKey = inputsKey({ debian: bases.keys.debian, script: CURL_SCRIPT, recipe: RECIPES.curl });
  await ensureImage(ctx, curlTag, curlKey, () =>
    withWorkingContainer(bases.debian, async (c) => {
      await c.sh(CURL_SCRIPT);
      await c.config({
        user: "100:101",
        workingDir: "/home/curl_user",
        entrypoint: ["/entrypoint.sh"],
        cmd: ["curl"],
        labels: {
          [INPUTS_LABEL]: curlKey,
          "io.keypool.image.note": "Debian's curl standing in for curlimages/curl in the end-to-end test",
        },
      });
      await c.commit(curlTag);
    }),
  );
  await tagImage(curlTag, ...curlAliases);

  await tagImage(bases.node, EXTRA_TAGS.node);
  log(`${EXTRA_TAGS.node}: tagged ${bases.node}`);

  const tags = [EXTRA_TAGS.redis, ...EXTRA_TAGS.curl, EXTRA_TAGS.node];
  const facts: [string, ImageFacts][] = [];
  for (const tag of tags) facts.push([tag, await requireImage(tag, "it was just made")]);
  return facts;
}
