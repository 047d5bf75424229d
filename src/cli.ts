/**
 * The `keypool` command: parses arguments and hands a typed config to the command's runner.
 * Every error that stops start-up is one clear line on stderr.
 */
import { ConfigError, operatorFlagsHelp, parseOperatorConfig } from "./config.ts";
import { runOperator } from "./run-operator.ts";

type Env = Readonly<Record<string, string | undefined>>;

export function usage(): string {
  return `keypool — a Kubernetes operator that pools LLM provider API keys

Usage:
  keypool operator [flags]   run the controller: watch KeyPools and Secrets, keep their status
  keypool --help             show this help

Flags of "keypool operator":
${operatorFlagsHelp()}
`;
}

/** Runs the command line; resolves to the process exit code once the command ends. */
export async function runCli(argv: string[], env: Env): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(usage());
    return command ? 0 : 2;
  }
  try {
    switch (command) {
      case "operator":
        if (rest.includes("--help") || rest.includes("-h")) {
          process.stdout.write(usage());
          return 0;
        }
        return await runOperator(parseOperatorConfig(rest, env));
      default:
        process.stderr.write(`keypool: unknown command "${command}" (try keypool --help)\n`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`keypool: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`keypool: ${(err as Error).message}\n`);
    return 1;
  }
}
