/**
 * Command-line configuration, read once in main.ts: flags first, then KEYPOOL_* environment
 * variables, then the defaults below (the one place each default is written). Parsed with zod,
 * so a bad value stops start-up with one line naming the flag. The help text is generated from
 * the same schemas.
 */
import { parseArgs } from "node:util";
import bytes from "bytes";
import { z } from "zod";
import { duration, parseDuration } from "./api/duration.ts";
import { fieldPath } from "./api/parse.ts";
import { BACKGROUND_NICE } from "./background-threads.ts";
import { LOG_LEVELS } from "./log.ts";

const port = z.coerce.number().int().min(0).max(65_535);
const csv = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const namespaceList = csv.pipe(z.array(z.string().regex(NAMESPACE_RE, "must be namespace names")));
const flag = z.union([
  z.boolean(),
  z.enum(["true", "false", "1", "0"]).transform((s) => s === "true" || s === "1"),
]);

/** A size such as "4mb", "512kb" or a number of bytes. */
const size = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const parsed = bytes.parse(value);
    if (parsed === null || !Number.isFinite(parsed) || parsed < 1) {
      ctx.addIssue({
        code: "custom",
        message: 'must be a size such as "4mb", "512kb" or a number of bytes',
      });
      return z.NEVER;
    }
    return parsed;
  });

/**
 * A duration such as "15s", "5m" or "250ms", as users write it (and as --help and README show
 * its default), parsed once to milliseconds: the rest of the program sees numbers.
 */
const durationMs = (description: string, bounds?: { minMs?: number; maxMs?: number }) =>
  duration(description, bounds)
    // The pattern has matched by now, so the text parses.
    .transform((text) => parseDuration(text) as number)
    .describe(description);

/** Fields both commands have. */
const common = {
  logLevel: z
    .enum(LOG_LEVELS)
    .default("info")
    .describe(
      "fatal, error, warn, info, debug, trace or silent; pino JSON on stdout, key material redacted.",
    ),
  port: port.default(8769).describe("Port of the key-dispensing API and the provider proxy."),
  probesPort: port.default(8081).describe("Port of /healthz, /readyz and /metrics."),
  defaultNamespace: z
    .string()
    .regex(NAMESPACE_RE)
    .default("default")
    .describe(
      "Namespace of the key-pool-manager routes' pools for callers without one (not ServiceAccounts, or no auth).",
    ),
  proxyMaxBody: size().prefault("32mb").describe("Largest request body the proxy forwards (larger: 413)."),
  proxyRetryBody: size()
    .prefault("4mb")
    .describe(
      "Request bodies up to this size are held so a failed attempt can move to another key; larger ones are streamed once, without retry.",
    ),
  proxyMaxWaitLimit: durationMs(
    "Most a caller may ask the proxy to wait for a usable key (x-keypool-max-wait).",
    { maxMs: 600_000 },
  ).prefault("60s"),
  backgroundThreadsNice: z.coerce
    .number()
    .int()
    .min(0)
    .max(19)
    .default(BACKGROUND_NICE)
    .describe(
      "Linux nice value (0-19) for V8's GC and compiler threads, so they yield a shared core to requests (bench/proxy, 500 calls/s on one core: p99 of GC rounds 30-80 ms unlowered, 4-6 ms at 19; docs/adr/0005-background-threads-nice.md); 0: leave them alone.",
    ),
};

/** Where key state lives: this process's memory, or a Redis/Valkey server replicas share. */
const stateStore = {
  stateStore: z
    .string()
    .default("memory")
    .refine((v) => v === "memory" || /^rediss?:\/\/[^/?#]+/.test(v), {
      message: "must be memory, redis://host:port/db or rediss://host:port/db",
    })
    .refine((v) => v === "memory" || !/^rediss?:\/\/[^/@]*:[^/@]*@/.test(v), {
      message:
        "must not hold a password (it would show in the process list): use --state-store-password-file or KEYPOOL_STATE_STORE_PASSWORD",
    })
    .describe(
      "memory: each process keeps its own key state; redis://host:6379/0 or rediss:// (TLS): replicas share states, limit windows and leases on one Redis >= 6.2 or Valkey >= 7 (see Scaling out).",
    ),
  stateStorePasswordFile: z
    .string()
    .min(1)
    .optional()
    .describe("File holding the state store's password (or set KEYPOOL_STATE_STORE_PASSWORD); never a flag."),
  stateStorePrefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9:_.-]+$/, "must be letters, digits and : _ . -")
    .default("keypool:")
    .describe("Prefix of every Redis key and channel, so several installations can share one server."),
  stateStoreFailure: z
    .enum(["open", "closed"])
    .default("open")
    .describe(
      "When the state store is unreachable: open: each replica serves from its own engine, counting limits alone (a metric, an Event and a condition say so); closed: dispense and proxy answer 503 state_store_unavailable.",
    ),
};

/** `--shutdown-delay`: the same for both commands; only the default differs. */
const shutdownDelay = () =>
  durationMs(
    "On SIGTERM, how long to keep serving with /readyz answering 503 before the listeners close: time for Services and load balancers to stop sending new connections (kube-proxy follows the endpoints a few hundred ms behind); 0: close at once.",
    { minMs: 0, maxMs: 300_000 },
  );

/** `--probes`: the same for both commands; only the default differs. */
const PROBES_DESCRIPTION =
  "Probe every key with its provider's free request (list models); needs the providers reachable.";

export const OperatorConfig = z.object({
  kubeconfig: z
    .string()
    .min(1)
    .optional()
    .describe("Path of a kubeconfig; default: in-cluster config, else $KUBECONFIG."),
  namespaces: namespaceList
    .default([])
    .describe(
      "Comma-separated namespaces to watch; default: all namespaces (RBAC for a few: deploy/namespaced/).",
    ),
  leaderElect: flag
    .default(false)
    .describe(
      "Elect a leader with a coordination.k8s.io Lease (on in deploy/): only the holder writes status, records Events and probes, and only while its last renewal is within the renew deadline.",
    ),
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
  leaderElectionLeaseDuration: durationMs("How long a leader's Lease is valid without renewal.").prefault(
    "15s",
  ),
  leaderElectionRenewDeadline: durationMs(
    "How long the leader keeps trying to renew before it steps down.",
  ).prefault("10s"),
  leaderElectionRetryPeriod: durationMs(
    "How often candidates try to acquire, and the leader renews.",
  ).prefault("2s"),
  ...common,
  address: z.string().min(1).default("0.0.0.0").describe("Address the dispensing API binds to."),
  probesAddress: z.string().min(1).default("0.0.0.0").describe("Address the probes port binds to."),
  auth: z
    .enum(["kubernetes", "none"])
    .default("kubernetes")
    .describe(
      "kubernetes: TokenReview + SubjectAccessReview (verb use on the KeyPool); none: anyone (your own machine only: a warning says so).",
    ),
  authAudiences: csv
    .pipe(z.array(z.string().min(1)).min(1, "give at least one audience"))
    .default(["keypool"])
    .describe("Audiences a caller's token must carry (TokenReview spec.audiences), comma-separated."),
  authStaleGrace: durationMs(
    "While auth reviews get no answer (API server down or hung), serve each caller's last decision up to this long past its lifetime (see Security model); 0: off; at most 1h.",
    { maxMs: 3_600_000 },
  ).prefault("5m"),
  probes: flag.default(true).describe(PROBES_DESCRIPTION),
  shutdownDelay: shutdownDelay().prefault("5s"),
  ...stateStore,
});
export type OperatorConfig = z.infer<typeof OperatorConfig>;

export const ServeConfig = z.object({
  manifests: z
    .string()
    .min(1)
    .optional()
    .describe("Directory of KeyPool and Secret manifests (YAML/JSON), followed as it changes."),
  stateFile: z
    .string()
    .min(1)
    .optional()
    .describe("Where key state is saved (mode 0600), so a restart resumes cooldowns and Invalid marks."),
  ...common,
  address: z.string().min(1).default("127.0.0.1").describe("Address the dispensing API binds to."),
  probesAddress: z.string().min(1).default("127.0.0.1").describe("Address the probes port binds to."),
  auth: z
    .enum(["none", "tokens"])
    .default("none")
    .describe(
      "none: anyone who reaches the port (admin actions, verb update, only on a loopback address); tokens: bearer tokens from --auth-tokens-file.",
    ),
  authTokensFile: z
    .string()
    .min(1)
    .optional()
    .describe("YAML/JSON: tokens: [{name, token, pools: [namespace/pool | *], verbs: [use, update]}]."),
  probes: flag.default(false).describe(PROBES_DESCRIPTION),
  healthCheckInterval: durationMs(
    "How often due probes and ended cooldowns are looked for: recoveries are logged and saved on this tick (dispensing never waits for it).",
    { minMs: 100, maxMs: 3_600_000 },
  ).prefault("1s"),
  shutdownDelay: shutdownDelay().prefault("0s"),
  ...stateStore,
});
export type ServeConfig = z.infer<typeof ServeConfig>;

type Flags<S extends z.ZodObject> = Record<keyof z.input<S>, { flag: string; boolean?: true }>;

const kebab = (field: string) => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
function flagsOf<S extends z.ZodObject>(schema: S, booleans: string[]): Flags<S> {
  return Object.fromEntries(
    Object.keys(schema.shape).map((field) => [
      field,
      { flag: kebab(field), ...(booleans.includes(field) ? { boolean: true as const } : {}) },
    ]),
  ) as Flags<S>;
}

const OPERATOR_FLAGS = flagsOf(OperatorConfig, ["leaderElect", "probes"]);
const SERVE_FLAGS = flagsOf(ServeConfig, ["probes"]);

const envName = (flagName: string) => `KEYPOOL_${flagName.toUpperCase().replaceAll("-", "_")}`;

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "invalid_configuration";
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Variables other tools read for a setting, honoured when neither the flag nor its KEYPOOL_*
 * variable is set; `value` turns the variable's text into the field's.
 */
type Aliases = Record<string, { variable: string; value?: (text: string) => string; note?: string }>;

/** `keypool serve`'s aliases: the key-pool-manager's variables, so its users' set-ups run as they are. */
const SERVE_ALIASES: Aliases = {
  port: { variable: "KEY_POOL_PORT" },
  address: { variable: "KEY_POOL_HOST" },
  // Milliseconds there; a bare number is read as milliseconds here too.
  healthCheckInterval: {
    variable: "HEALTH_CHECK_INTERVAL",
    value: (t) => (/^\d+$/.test(t.trim()) ? `${t.trim()}ms` : t),
    note: "a bare number is milliseconds",
  },
};

function parseConfig<S extends z.ZodType>(
  schema: S,
  flags: Record<string, { flag: string; boolean?: true }>,
  argv: string[],
  env: Env,
  defaults: (raw: Record<string, unknown>) => void = () => {},
  aliases: Aliases = {},
): z.infer<S> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        Object.values(flags).map(({ flag, boolean }) => [flag, { type: boolean ? "boolean" : "string" }]),
      ),
      allowNegative: true,
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message.split("\n")[0] ?? "bad arguments");
  }
  const raw: Record<string, unknown> = {};
  const fromAlias = new Set<string>();
  for (const [field, { flag }] of Object.entries(flags)) {
    let value = values[flag] ?? env[envName(flag)];
    const alias = aliases[field];
    const aliased = alias ? env[alias.variable] : undefined;
    if (value === undefined && alias && aliased !== undefined && aliased !== "") {
      value = alias.value ? alias.value(aliased) : aliased;
      fromAlias.add(field);
    }
    if (value !== undefined) raw[field] = value;
  }
  defaults(raw);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue?.path[0] ?? "");
    const flagName = flags[field]?.flag ?? fieldPath(issue?.path ?? []);
    const alias = fromAlias.has(field) ? aliases[field]?.variable : undefined;
    const source = alias ? `${alias}, read as --${flagName}` : `--${flagName} (or ${envName(flagName)})`;
    throw new ConfigError(`${source}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/** Leader-election timings must nest as client-go requires: retry < renew deadline < lease. */
const OperatorConfigChecked = OperatorConfig.superRefine((c, ctx) => {
  const lease = c.leaderElectionLeaseDuration;
  const renew = c.leaderElectionRenewDeadline;
  const retry = c.leaderElectionRetryPeriod;
  if (!(retry < renew && renew < lease)) {
    ctx.addIssue({
      code: "custom",
      path: ["leaderElectionRenewDeadline"],
      message: "leader election needs retry period < renew deadline < lease duration",
    });
  }
});

const ServeConfigChecked = ServeConfig.superRefine((c, ctx) => {
  if (c.auth === "tokens" && !c.authTokensFile) {
    ctx.addIssue({
      code: "custom",
      path: ["authTokensFile"],
      message: "--auth tokens needs --auth-tokens-file",
    });
  }
});

/** Parses `keypool operator` arguments and the environment into a config, or throws ConfigError. */
export function parseOperatorConfig(argv: string[], env: Env): OperatorConfig {
  return parseConfig(OperatorConfigChecked, OPERATOR_FLAGS, argv, env, (raw) => {
    if (raw.leaderElectionNamespace === undefined && env.POD_NAMESPACE)
      raw.leaderElectionNamespace = env.POD_NAMESPACE;
    if (raw.kubeconfig === undefined && env.KUBECONFIG && !env.KUBERNETES_SERVICE_HOST)
      raw.kubeconfig = env.KUBECONFIG;
    // "0" is how people turn a duration off; the duration pattern wants a unit.
    if (typeof raw.authStaleGrace === "string" && raw.authStaleGrace.trim() === "0")
      raw.authStaleGrace = "0s";
  });
}

/** Parses `keypool serve` arguments and the environment into a config, or throws ConfigError. */
export function parseServeConfig(argv: string[], env: Env): ServeConfig {
  return parseConfig(ServeConfigChecked, SERVE_FLAGS, argv, env, undefined, SERVE_ALIASES);
}

/** One flag as `keypool --help` and README's configuration table show it. */
export interface FlagDoc {
  /** The config field, e.g. "probesPort". */
  field: string;
  /** The flag without dashes, e.g. "probes-port". */
  flag: string;
  boolean: boolean;
  /** Its KEYPOOL_* variable. */
  env: string;
  /** Another tool's variable read when neither the flag nor `env` is set. */
  alias?: { variable: string; note?: string };
  /** The default as users write it ("15s", "32mb", "keypool"); undefined when there is none. */
  default: string | undefined;
  description: string;
}

/** The flags of a command, read from its schema: the one source of --help and README's table. */
function flagDocs(
  schema: z.ZodObject,
  flags: Record<string, { flag: string; boolean?: true }>,
  aliases: Aliases = {},
): FlagDoc[] {
  return Object.entries(flags).map(([field, { flag, boolean }]) => {
    const fieldSchema = schema.shape[field] as z.ZodType;
    // .default() and .prefault() keep the value as written ("15s" before it becomes 15000).
    const { defaultValue, innerType } = (
      fieldSchema as unknown as { _zod: { def: { defaultValue?: unknown; innerType?: z.ZodType } } }
    )._zod.def;
    const alias = aliases[field];
    return {
      field,
      flag,
      boolean: boolean === true,
      env: envName(flag),
      ...(alias ? { alias: { variable: alias.variable, ...(alias.note ? { note: alias.note } : {}) } } : {}),
      default:
        defaultValue === undefined || (Array.isArray(defaultValue) && defaultValue.length === 0)
          ? undefined
          : String(defaultValue),
      // .default() wraps the described schema: its description is on the inner type.
      description: fieldSchema.description ?? innerType?.description ?? "",
    };
  });
}

export const operatorFlagDocs = () => flagDocs(OperatorConfig, OPERATOR_FLAGS);
export const serveFlagDocs = () => flagDocs(ServeConfig, SERVE_FLAGS, SERVE_ALIASES);

function flagsHelp(docs: FlagDoc[]): string {
  return docs
    .map((doc) => {
      const shown = doc.default === undefined ? "" : ` (default ${doc.default})`;
      const label = `--${doc.flag}${doc.boolean ? "" : " <value>"}`;
      const alias = doc.alias ? ` (or ${doc.alias.variable})` : "";
      return `  ${label.length >= 36 ? `${label} ` : label.padEnd(36)}${doc.description}${shown}\n  ${"".padEnd(36)}env ${doc.env}${alias}`;
    })
    .join("\n");
}

export const operatorFlagsHelp = () => flagsHelp(operatorFlagDocs());
export const serveFlagsHelp = () => flagsHelp(serveFlagDocs());
