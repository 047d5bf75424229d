#!/usr/bin/env node
/** Entry point of the `keypool` command. Wiring lives in cli.ts and run-*.ts. */
import { runCli } from "./cli.ts";

process.exitCode = await runCli(process.argv.slice(2), process.env);
// Anything still holding the event loop (a watch, a timer) must not keep a stopped command alive.
process.exit();
