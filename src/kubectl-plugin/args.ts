/**
 * The command line of `kubectl keypool`: one command, its positional arguments, and kubectl's
 * connection flags (--namespace/-n, --context, --kubeconfig) and output flag (-o json|yaml) on
 * every command. Pure: a usage mistake is a PluginError with exit code 2.
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../api/duration.ts";
import { KEY_ID_RE, KUBE_NAME_RE } from "../api/keypool.ts";
import { PluginError } from "./errors.ts";

export const COMMANDS = ["status", "probe", "disable", "enable", "drain", "rotate-check"] as const;
export type Command = (typeof COMMANDS)[number];
export const OUTPUTS = ["table", "json", "yaml"] as const;
export type Output = (typeof OUTPUTS)[number];

/** How long probe and --wait wait for the operator, unless --timeout says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface PluginArgs {
  command: Command;
  /** The KeyPool's name (optional for status only). */
  pool: string | undefined;
  /** The key id of disable, enable and drain. */
  keyId: string | undefined;
  namespace: string | undefined;
  context: string | undefined;
  kubeconfig: string | undefined;
  allNamespaces: boolean;
  output: Output;
  /** How long to wait for the operator (probe, --wait). */
  timeoutMs: number;
  /** disable, enable, drain: wait until the status shows the change. */
  wait: boolean;
}

export type Parsed = { help: true } | ({ help: false } & PluginArgs);

export function usage(): string {
  return `kubectl keypool — day-2 actions on KeyPools (keypool.dev), with your own Kubernetes credentials

Usage:
  kubectl keypool status [POOL]              the pools of the namespace (ready, usable/total keys), or
                                             POOL's keys: state, when usable again, use, last error
  kubectl keypool probe POOL                 ask the operator to probe every key now, wait, show the result
  kubectl keypool disable POOL KEY_ID        switch a key off (spec.disabledKeys): Disabled, not handed out
  kubectl keypool enable POOL KEY_ID         take a key off spec.disabledKeys and spec.drainedKeys
  kubectl keypool drain POOL KEY_ID          take a key out of the pool though its Secret holds it
                                             (spec.drainedKeys): Draining for rotation.drainPeriod, then gone
  kubectl keypool rotate-check POOL          the Secrets' keys against the pool's status, by key id:
                                             new, removed, unchanged (never key material)

Flags (every command):
  -n, --namespace NAMESPACE   default: the kubeconfig context's namespace, else "default"
  -A, --all-namespaces        status without POOL: the pools of every namespace
      --context NAME          the kubeconfig context to use
      --kubeconfig PATH       default: $KUBECONFIG, else ~/.kube/config
  -o, --output json|yaml      default: a table
      --timeout DURATION      how long probe and --wait wait for the operator (default 30s)
      --wait                  disable, enable, drain: wait until the pool's status shows the change
  -h, --help                  show this help

Key ids are the 12-character ids of status.keyStatuses[].id (kubectl keypool status POOL).
`;
}

const ARITY: Record<Command, { pool: "required" | "optional"; keyId: boolean }> = {
  status: { pool: "optional", keyId: false },
  probe: { pool: "required", keyId: false },
  disable: { pool: "required", keyId: true },
  enable: { pool: "required", keyId: true },
  drain: { pool: "required", keyId: true },
  "rotate-check": { pool: "required", keyId: false },
};

const usageError = (message: string) =>
  new PluginError("usage", `${message} (kubectl keypool --help shows the commands)`);

export function parsePluginArgs(argv: readonly string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        namespace: { type: "string", short: "n" },
        "all-namespaces": { type: "boolean", short: "A" },
        context: { type: "string" },
        kubeconfig: { type: "string" },
        output: { type: "string", short: "o" },
        timeout: { type: "string" },
        wait: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw usageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  const { values, positionals } = parsed;
  const [command, pool, keyId, ...extra] = positionals;
  if (values.help || command === undefined || command === "help") return { help: true };
  if (!(COMMANDS as readonly string[]).includes(command)) throw usageError(`unknown command "${command}"`);
  const cmd = command as Command;
  const arity = ARITY[cmd];
  const wanted = `kubectl keypool ${cmd} ${arity.pool === "required" ? "POOL" : "[POOL]"}${arity.keyId ? " KEY_ID" : ""}`;
  if (extra.length || (!arity.keyId && keyId !== undefined))
    throw usageError(`too many arguments: ${wanted}`);
  if (arity.pool === "required" && pool === undefined) throw usageError(`missing POOL: ${wanted}`);
  if (arity.keyId && keyId === undefined) throw usageError(`missing KEY_ID: ${wanted}`);
  if (pool !== undefined && !KUBE_NAME_RE.test(pool)) throw usageError(`"${pool}" is not a KeyPool name`);
  if (keyId !== undefined && !KEY_ID_RE.test(keyId)) {
    throw usageError(
      `"${keyId}" is not a key id: 12 lower-case hex characters, as kubectl keypool status shows`,
    );
  }
  const output = values.output ?? "table";
  if (!(OUTPUTS as readonly string[]).includes(output)) throw usageError(`-o ${output}: use json or yaml`);
  if (values["all-namespaces"] && (cmd !== "status" || pool !== undefined)) {
    throw usageError("-A (--all-namespaces) goes with status without POOL only");
  }
  if (values.namespace !== undefined && !KUBE_NAME_RE.test(values.namespace)) {
    throw usageError(`"${values.namespace}" is not a namespace name`);
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (values.timeout !== undefined) {
    const ms = values.timeout === "0" ? 0 : parseDuration(values.timeout);
    if (ms === undefined) throw usageError(`--timeout ${values.timeout}: use a duration such as 10s or 2m`);
    timeoutMs = ms;
  }
  if (values.wait && !arity.keyId) throw usageError(`--wait goes with disable, enable and drain`);
  return {
    help: false,
    command: cmd,
    pool,
    keyId,
    namespace: values.namespace,
    context: values.context,
    kubeconfig: values.kubeconfig,
    allNamespaces: values["all-namespaces"] ?? false,
    output: output as Output,
    timeoutMs,
    wait: values.wait ?? false,
  };
}
