/**
 * The `keypool` command: parses arguments and hands a typed config to the command's runner.
 * Every error that stops start-up is one clear line on stderr.
 */
import {
  ConfigError,
  operatorFlagsHelp,
  parseOperatorConfig,
  parseServeConfig,
  serveFlagsHelp,
} from "./config.ts";

type Env = Readonly<Record<string, string | undefined>>;

export function usage(): string {
  return `keypool — a Kubernetes operator that pools LLM provider API keys

Usage:
  keypool operator [flags]   in a cluster: watch KeyPools and Secrets, keep their status, serve keys
  keypool serve [flags]      without a cluster: pools from a manifests directory and *_KEYS variables
  keypool --help             show this help

Flags of "keypool operator":
${operatorFlagsHelp()}

Flags of "keypool serve":
${serveFlagsHelp()}
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
        return await (await import("./run-operator.ts")).runOperator(parseOperatorConfig(rest, env));
      case "serve":
        if (rest.includes("--help") || rest.includes("-h")) {
          process.stdout.write(usage());
          return 0;
        }
        return await (await import("./run-serve.ts")).runServe(parseServeConfig(rest, env), env);
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
