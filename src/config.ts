/**
 * Command-line configuration, read once in main.ts: flags first, then KEYPOOL_* environment
 * variables, then the defaults below (the one place each default is written). Parsed with zod,
 * so a bad value stops start-up with one line naming the flag.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { duration, parseDuration } from "./api/duration.ts";
import { fieldPath } from "./api/parse.ts";
import { LOG_LEVELS } from "./log.ts";

const port = z.coerce.number().int().min(0).max(65_535);
const list = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be namespace names")));
const flag = z.union([
  z.boolean(),
  z.enum(["true", "false", "1", "0"]).transform((s) => s === "true" || s === "1"),
]);

export const OperatorConfig = z.object({
  kubeconfig: z
    .string()
    .min(1)
    .optional()
    .describe("Path of a kubeconfig; default: in-cluster config, else $KUBECONFIG."),
  namespaces: list.default([]).describe("Comma-separated namespaces to watch; default: all namespaces."),
  leaderElect: flag
    .default(false)
    .describe("Elect a leader with a coordination.k8s.io Lease; only the leader writes status."),
  leaderElectionNamespace: z
    .string()
    .min(1)
    .default("keypool-system")
    .describe("Namespace of the leader-election Lease (default: $POD_NAMESPACE, else keypool-system)."),
  leaderElectionId: z
    .string()
    .min(1)
    .default("keypool-operator")
    .describe("Name of the leader-election Lease."),
  leaderElectionLeaseDuration: duration("How long a leader's Lease is valid without renewal.").default("15s"),
  leaderElectionRenewDeadline: duration(
    "How long the leader keeps trying to renew before it steps down.",
  ).default("10s"),
  leaderElectionRetryPeriod: duration("How often candidates try to acquire, and the leader renews.").default(
    "2s",
  ),
  logLevel: z.enum(LOG_LEVELS).default("info").describe("fatal, error, warn, info, debug, trace or silent."),
  probesPort: port.default(8081).describe("Port of /healthz, /readyz and /metrics."),
  probesAddress: z.string().min(1).default("0.0.0.0").describe("Address the probes port binds to."),
});
export type OperatorConfig = z.infer<typeof OperatorConfig>;

/** Leader-election timings must nest as client-go requires: retry < renew deadline < lease. */
const OperatorConfigChecked = OperatorConfig.superRefine((c, ctx) => {
  const lease = parseDuration(c.leaderElectionLeaseDuration) ?? 0;
  const renew = parseDuration(c.leaderElectionRenewDeadline) ?? 0;
  const retry = parseDuration(c.leaderElectionRetryPeriod) ?? 0;
  if (!(retry < renew && renew < lease)) {
    ctx.addIssue({
      code: "custom",
      path: ["leaderElectionRenewDeadline"],
      message: "leader election needs retry period < renew deadline < lease duration",
    });
  }
});

/** Flags of `keypool operator`, by config field: --kebab-case name and whether it takes a value. */
const FLAGS: Record<keyof z.input<typeof OperatorConfig>, { flag: string; boolean?: true }> = {
  kubeconfig: { flag: "kubeconfig" },
  namespaces: { flag: "namespaces" },
  leaderElect: { flag: "leader-elect", boolean: true },
  leaderElectionNamespace: { flag: "leader-election-namespace" },
  leaderElectionId: { flag: "leader-election-id" },
  leaderElectionLeaseDuration: { flag: "leader-election-lease-duration" },
  leaderElectionRenewDeadline: { flag: "leader-election-renew-deadline" },
  leaderElectionRetryPeriod: { flag: "leader-election-retry-period" },
  logLevel: { flag: "log-level" },
  probesPort: { flag: "probes-port" },
  probesAddress: { flag: "probes-address" },
};

const envName = (flagName: string) => `KEYPOOL_${flagName.toUpperCase().replaceAll("-", "_")}`;

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "invalid_configuration";
}

/** Parses `keypool operator` arguments and the environment into a config, or throws ConfigError. */
export function parseOperatorConfig(
  argv: string[],
  env: Readonly<Record<string, string | undefined>>,
): OperatorConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.values(FLAGS).map(({ flag, boolean }) => [flag, { type: boolean ? "boolean" : "string" }]),
      ),
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message.split("\n")[0] ?? "bad arguments");
  }
  const raw: Record<string, unknown> = {};
  for (const [field, { flag }] of Object.entries(FLAGS)) {
    const value = values[flag] ?? env[envName(flag)];
    if (value !== undefined) raw[field] = value;
  }
  if (raw.leaderElectionNamespace === undefined && env.POD_NAMESPACE)
    raw.leaderElectionNamespace = env.POD_NAMESPACE;
  if (raw.kubeconfig === undefined && env.KUBECONFIG && !env.KUBERNETES_SERVICE_HOST)
    raw.kubeconfig = env.KUBECONFIG;
  const parsed = OperatorConfigChecked.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? "");
    const flag = FLAGS[field as keyof typeof FLAGS]?.flag ?? fieldPath(issue?.path ?? []);
    throw new ConfigError(`--${flag} (or ${envName(flag)}): ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/** Help text generated from the schema, so it cannot drift from the defaults. */
export function operatorFlagsHelp(): string {
  const shape = OperatorConfig.shape;
  return Object.entries(FLAGS)
    .map(([field, { flag, boolean }]) => {
      const schema = shape[field as keyof typeof shape];
      const def = (schema as unknown as { _zod: { def: { defaultValue?: unknown } } })._zod.def.defaultValue;
      const shown =
        def === undefined || (Array.isArray(def) && def.length === 0) ? "" : ` (default ${String(def)})`;
      const name = `--${flag}${boolean ? "" : " <value>"}`;
      return `  ${name.padEnd(36)}${schema.description ?? ""}${shown}\n  ${"".padEnd(36)}env ${envName(flag)}`;
    })
    .join("\n");
}
