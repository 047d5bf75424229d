/**
 * src/kubectl-plugin — `kubectl keypool`: day-2 actions on KeyPools with the user's own
 * Kubernetes credentials (kubeconfig loaded the kubectl way). It talks to the API server only,
 * never to the operator: it reads KeyPools and their status, edits spec.disabledKeys and
 * spec.drainedKeys, sets the probe annotation, and reads the Secrets a pool references to compare
 * key ids (never printing key material). bin/kubectl-keypool runs it through src/main.ts.
 * May import: src/api, src/pool (key ids), src/sources (how the operator reads Secrets),
 * src/describe-error, @kubernetes/client-node, yaml and Node built-ins.
 *
 * This file: arguments in, one command run, its output out, an exit code back.
 */
import { stringify } from "yaml";
import type { Clock } from "../pool/clock.ts";
import { parsePluginArgs, usage } from "./args.ts";
import { kubeCluster, type Cluster } from "./cluster.ts";
import { keyAction, probe, rotate, status, type CommandContext, type CommandResult } from "./commands.ts";
import { PluginError } from "./errors.ts";
import { connect, type Connection } from "./kubeconfig.ts";

type Env = Readonly<Record<string, string | undefined>>;

export interface PluginIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** The cluster for a connection (tests hand in a fake). */
  cluster: (connection: Connection) => Cluster;
}

/** The process's own streams, the given clock, real sleeps and the real API server. */
export function processIo(clock: Clock): PluginIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    now: () => clock.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    cluster: kubeCluster,
  };
}

/** The name kubectl knows the plugin by, in messages. */
const NAME = "kubectl-keypool";

/** Runs `kubectl keypool ARGS`; resolves to the exit code. */
export async function runPlugin(argv: readonly string[], env: Env, io: PluginIo): Promise<number> {
  try {
    const args = parsePluginArgs(argv);
    if (args.help) {
      io.stdout(usage());
      return 0;
    }
    const connection = connect(args, env);
    const ctx: CommandContext = {
      cluster: io.cluster(connection),
      namespace: connection.namespace,
      now: io.now,
      sleep: io.sleep,
      note: (line) => io.stderr(`${line}\n`),
    };
    let result: CommandResult;
    switch (args.command) {
      case "status":
        result = await status(ctx, args);
        break;
      case "probe":
        result = await probe(ctx, args);
        break;
      case "rotate-check":
        result = await rotate(ctx, args);
        break;
      default:
        result = await keyAction(ctx, { ...args, command: args.command });
    }
    if (args.output === "json") io.stdout(`${JSON.stringify(result.value, null, 2)}\n`);
    else if (args.output === "yaml") io.stdout(stringify(result.value));
    else io.stdout(result.text);
    return 0;
  } catch (err) {
    if (err instanceof PluginError) {
      io.stderr(`${NAME}: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`${NAME}: ${(err as Error).message}\n`);
    return 1;
  }
}
