/**
 * `npm start`: `keypool serve` for a newcomer. With any `NAME_KEYS` variable set (the way the
 * key-pool managers users come from are started: `GPT_4_KEYS=sk-a,sk-b npm start`) it serves
 * only those pools; without one, the example pools in examples/. Extra arguments go to serve
 * (`npm start -- --port 9000`); `--manifests` (or KEYPOOL_MANIFESTS) replaces the examples too.
 */
import { runCli } from "../src/cli.ts";
import { hasEnvPools } from "../src/sources/files/env.ts";

/** The `keypool` arguments `npm start` runs with these extra arguments and this environment. */
export function startArgs(
  extra: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): string[] {
  const ownManifests =
    extra.some((a) => a === "--manifests" || a.startsWith("--manifests=")) ||
    env.KEYPOOL_MANIFESTS !== undefined;
  const examples = ownManifests || hasEnvPools(env) ? [] : ["--manifests", "examples"];
  return ["serve", ...examples, ...extra];
}

if (import.meta.main) {
  process.exitCode = await runCli(startArgs(process.argv.slice(2), process.env), process.env);
  process.exit();
}
