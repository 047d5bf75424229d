#!/usr/bin/env node
/**
 * Entry point of the `keypool` command, and of the kubectl plugin `kubectl keypool` when run as
 * kubectl-keypool (bin/kubectl-keypool, the name kubectl looks for on PATH). Wiring lives in
 * cli.ts, run-*.ts and kubectl-plugin/cli.ts.
 */
import { basename } from "node:path";

/** The executable name kubectl runs for `kubectl keypool` (bin/kubectl-keypool). */
const PLUGIN_EXECUTABLE = "kubectl-keypool";

const invokedAs = basename(process.argv[1] ?? "").replace(/\.[cm]?js$/, "");
async function runPluginCommand(): Promise<number> {
  const [{ runPlugin, processIo }, { systemClock }] = await Promise.all([
    import("./kubectl-plugin/cli.ts"),
    import("./run-common.ts"),
  ]);
  return runPlugin(process.argv.slice(2), process.env, processIo(systemClock));
}

process.exitCode =
  invokedAs === PLUGIN_EXECUTABLE
    ? await runPluginCommand()
    : await (await import("./cli.ts")).runCli(process.argv.slice(2), process.env);
// Output to a pipe may still be queued (macOS writes pipes asynchronously): let it out first.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write("", done))));
// Anything still holding the event loop (a watch, a timer) must not keep a stopped command alive.
process.exit();
