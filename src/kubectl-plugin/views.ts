/**
 * What `status` shows, built from KeyPool objects: one line per pool, or one per key with when it
 * is usable again. Pure (the time comes in as `nowMs`); the same values feed the table and
 * -o json|yaml. Key material never reaches here: a status holds ids and masked forms only.
 */
import type { KeyState } from "../api/keypool.ts";
import type { Condition, KeyStatus } from "../api/status.ts";
import type { KeyPoolObject } from "./cluster.ts";
import { ago, formatSeconds, renderTable, secondsUntil } from "./table.ts";

const USABLE: ReadonlySet<KeyState> = new Set<KeyState>(["Healthy", "Degraded"]);
const COOLING: ReadonlySet<KeyState> = new Set<KeyState>(["RateLimited", "QuotaExhausted"]);

/** One pool, as `status` without POOL lists it. */
export interface PoolLine {
  namespace: string;
  name: string;
  /** The Ready condition's status; "Unknown" before the operator wrote one. */
  ready: string;
  usable: number | undefined;
  total: number | undefined;
  /** Keys not usable, by state: {RateLimited: 1}. */
  notUsable: Record<string, number>;
  /** Why it is not Ready, or what Degraded says while it is; undefined when all is well. */
  reason: string | undefined;
  message: string | undefined;
}

/** One key, as `status POOL` shows it. */
export interface KeyLine {
  id: string;
  state: KeyState;
  /** Handed out now (by state; a key at a client-side limit still counts). */
  usable: boolean;
  /** Seconds until a cooldown ends (RateLimited, QuotaExhausted); 0 when it has ended. */
  usableInSeconds?: number;
  /** When the current state ends by itself. */
  until?: string;
  requests: number;
  errors: number;
  lastError?: KeyStatus["lastError"];
  source: string;
  /** spec.disabledKeys lists it. */
  disabledBySpec?: true;
  /** spec.drainedKeys lists it. */
  drainedBySpec?: true;
}

export interface PoolDetail {
  namespace: string;
  name: string;
  ready: string;
  readyReason: string | undefined;
  readyMessage: string | undefined;
  degradedMessage: string | undefined;
  usable: number | undefined;
  total: number | undefined;
  lastProbeRequest: string | undefined;
  keys: KeyLine[];
}

const conditionOf = (pool: KeyPoolObject, type: string): Condition | undefined =>
  pool.status?.conditions?.find((c) => c.type === type);

export function poolLine(pool: KeyPoolObject): PoolLine {
  const ready = conditionOf(pool, "Ready");
  const degraded = conditionOf(pool, "Degraded");
  const notUsable = Object.fromEntries(
    Object.entries(pool.status?.keys?.byState ?? {}).filter(
      ([state, n]) => n > 0 && !USABLE.has(state as KeyState),
    ),
  );
  const trouble = ready?.status !== "True" ? ready : degraded?.status === "True" ? degraded : undefined;
  return {
    namespace: pool.metadata.namespace,
    name: pool.metadata.name,
    ready: ready?.status ?? "Unknown",
    usable: pool.status?.keys?.usable,
    total: pool.status?.keys?.total,
    notUsable,
    reason: trouble?.reason ?? (ready ? undefined : "NoStatusYet"),
    message: trouble?.message ?? (ready ? undefined : "the operator has not written a status"),
  };
}

export function keyLine(key: KeyStatus, nowMs: number, drained: ReadonlySet<string>): KeyLine {
  return {
    id: key.id,
    state: key.state,
    usable: USABLE.has(key.state),
    ...(COOLING.has(key.state) ? { usableInSeconds: secondsUntil(key.until, nowMs) } : {}),
    ...(key.until ? { until: key.until } : {}),
    requests: key.requests,
    errors: key.errors,
    ...(key.lastError ? { lastError: key.lastError } : {}),
    source: key.source,
    ...(key.disabledBySpec ? { disabledBySpec: true as const } : {}),
    ...(drained.has(key.id) ? { drainedBySpec: true as const } : {}),
  };
}

export function poolDetail(pool: KeyPoolObject, nowMs: number): PoolDetail {
  const ready = conditionOf(pool, "Ready");
  const degraded = conditionOf(pool, "Degraded");
  const drained = new Set(pool.spec.drainedKeys ?? []);
  return {
    namespace: pool.metadata.namespace,
    name: pool.metadata.name,
    ready: ready?.status ?? "Unknown",
    readyReason: ready?.reason,
    readyMessage: ready?.message,
    degradedMessage: degraded?.status === "True" ? degraded.message : undefined,
    usable: pool.status?.keys?.usable,
    total: pool.status?.keys?.total,
    lastProbeRequest: pool.status?.lastProbeRequest,
    keys: (pool.status?.keyStatuses ?? []).map((k) => keyLine(k, nowMs, drained)),
  };
}

/** When the key is handed out again, in words: "now", "in 42s", "when enabled". */
export function usableText(key: KeyLine): string {
  if (key.usable) return "now";
  switch (key.state) {
    case "RateLimited":
    case "QuotaExhausted":
      return key.usableInSeconds ? `in ${formatSeconds(key.usableInSeconds)}` : "now (cooldown over)";
    case "Invalid":
      return "after a new key, a probe or a reset";
    case "Disabled":
      return "when enabled";
    case "Draining":
      return "no: leaving the pool";
    default:
      return "-";
  }
}

function stateText(key: KeyLine): string {
  if (key.drainedBySpec) return `${key.state} (drained)`;
  if (key.disabledBySpec) return `${key.state} (spec)`;
  return key.state;
}

function lastErrorText(key: KeyLine, nowMs: number): string {
  const e = key.lastError;
  if (!e) return "-";
  return [e.code, e.reason, ago(e.at, nowMs)].filter((part) => part !== undefined && part !== "").join(" ");
}

const counts = (byState: Record<string, number>) =>
  Object.entries(byState)
    .map(([state, n]) => `${n} ${state}`)
    .join(", ") || "-";

export function renderPoolLines(lines: readonly PoolLine[], withNamespace: boolean): string {
  const headers = ["NAME", "READY", "USABLE", "NOT USABLE", "REASON"];
  const rows = lines.map((p) => [
    p.name,
    p.ready,
    p.total === undefined ? "-" : `${p.usable ?? 0}/${p.total}`,
    counts(p.notUsable),
    p.reason ?? "-",
  ]);
  return withNamespace
    ? renderTable(
        ["NAMESPACE", ...headers],
        rows.map((row, i) => [lines[i]?.namespace ?? "", ...row]),
      )
    : renderTable(headers, rows);
}

export function renderPoolDetail(detail: PoolDetail, nowMs: number): string {
  const keys =
    detail.total === undefined ? "no status yet" : `${detail.usable ?? 0} of ${detail.total} keys usable`;
  const head = [
    `KeyPool ${detail.namespace}/${detail.name}: Ready ${detail.ready}${detail.readyReason ? ` (${detail.readyReason})` : ""}, ${keys}`,
    ...(detail.ready !== "True" && detail.readyMessage ? [`  ${detail.readyMessage}`] : []),
    ...(detail.degradedMessage ? [`  Degraded: ${detail.degradedMessage}`] : []),
  ].join("\n");
  if (!detail.keys.length) return `${head}\n`;
  const table = renderTable(
    ["KEY ID", "STATE", "USABLE AGAIN", "UNTIL", "REQUESTS", "ERRORS", "LAST ERROR", "SOURCE"],
    detail.keys.map((k) => [
      k.id,
      stateText(k),
      usableText(k),
      k.until ?? "-",
      String(k.requests),
      String(k.errors),
      lastErrorText(k, nowMs),
      k.source,
    ]),
  );
  return `${head}\n\n${table}`;
}
