/**
 * The commands: each reads (and for probe, disable, enable, drain, changes) KeyPools through a
 * Cluster and returns what to print, as a value (-o json|yaml) and as text (the table). The clock
 * and the sleep between polls come in, so tests need neither a cluster nor real time.
 */
import { PROBE_REQUEST_ANNOTATION } from "../api/keypool.ts";
import type { PluginArgs } from "./args.ts";
import type { Cluster, KeyPoolObject } from "./cluster.ts";
import { PluginError } from "./errors.ts";
import { renderRotation, rotateCheck } from "./rotation.ts";
import { formatSeconds } from "./table.ts";
import { poolDetail, poolLine, renderPoolDetail, renderPoolLines } from "./views.ts";

export interface CommandContext {
  cluster: Cluster;
  /** The namespace from -n, the context, or "default". */
  namespace: string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** Said on stderr: warnings and progress, never part of -o output. */
  note: (line: string) => void;
}

export interface CommandResult {
  value: unknown;
  text: string;
}

/** How often a wait reads the pool again. */
const POLL_MS = 500;

export async function status(ctx: CommandContext, args: PluginArgs): Promise<CommandResult> {
  if (args.pool === undefined) {
    const pools = await ctx.cluster.listPools(args.allNamespaces ? undefined : ctx.namespace);
    const lines = pools
      .map(poolLine)
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    const where = args.allNamespaces ? "any namespace" : `namespace ${ctx.namespace}`;
    return {
      value: { items: lines },
      text: lines.length ? renderPoolLines(lines, args.allNamespaces) : `No KeyPools in ${where}.\n`,
    };
  }
  const pool = await ctx.cluster.getPool(ctx.namespace, args.pool);
  const now = ctx.now();
  const detail = poolDetail(pool, now);
  return { value: detail, text: renderPoolDetail(detail, now) };
}

/** Reads the pool until `done` says so, or throws a timeout saying `waitingFor`. */
async function waitForPool(
  ctx: CommandContext,
  ref: { namespace: string; name: string; uid: string | undefined },
  timeoutMs: number,
  done: (pool: KeyPoolObject) => boolean,
  waitingFor: string,
): Promise<KeyPoolObject> {
  const deadline = ctx.now() + timeoutMs;
  for (;;) {
    const pool = await ctx.cluster.getPool(ref.namespace, ref.name);
    if (ref.uid && pool.metadata.uid !== ref.uid) {
      throw new PluginError(
        "not_found",
        `KeyPool ${ref.namespace}/${ref.name} was deleted and created again`,
      );
    }
    if (done(pool)) return pool;
    if (ctx.now() >= deadline) {
      throw new PluginError(
        "timeout",
        `the operator did not ${waitingFor} within ${formatSeconds(timeoutMs / 1000)}: is it running, and does it ` +
          `watch namespace ${ref.namespace}? (kubectl get pods -A -l app.kubernetes.io/name=keypool-operator; --timeout waits longer)`,
      );
    }
    await ctx.sleep(Math.min(POLL_MS, Math.max(0, deadline - ctx.now())));
  }
}

export async function probe(ctx: CommandContext, args: PluginArgs): Promise<CommandResult> {
  const name = args.pool as string;
  const requested = new Date(ctx.now()).toISOString();
  const patched = await ctx.cluster.patchPool(ctx.namespace, name, {
    metadata: { annotations: { [PROBE_REQUEST_ANNOTATION]: requested } },
  });
  ctx.note(
    `asked the operator to probe every key of KeyPool ${ctx.namespace}/${name} (${PROBE_REQUEST_ANNOTATION}=${requested})`,
  );
  const ref = { namespace: ctx.namespace, name, uid: patched.metadata.uid };
  const pool = await waitForPool(
    ctx,
    ref,
    args.timeoutMs,
    (p) => p.status?.lastProbeRequest === requested,
    "probe the keys",
  );
  const now = ctx.now();
  const detail = poolDetail(pool, now);
  return {
    value: { requested, probed: true, pool: detail },
    text: `Probed every key at ${requested}.\n${renderPoolDetail(detail, now)}`,
  };
}

export type KeyAction = "disable" | "enable" | "drain";

/** The spec lists after `action` on `keyId`; `changed` false when they already said so. */
export function listsAfter(
  action: KeyAction,
  keyId: string,
  spec: { disabledKeys?: string[] | undefined; drainedKeys?: string[] | undefined },
): { disabledKeys: string[]; drainedKeys: string[]; changed: boolean } {
  const disabled = spec.disabledKeys ?? [];
  const drained = spec.drainedKeys ?? [];
  const add = (list: string[]) => (list.includes(keyId) ? list : [...list, keyId]);
  const drop = (list: string[]) => list.filter((id) => id !== keyId);
  const next =
    action === "disable"
      ? { disabledKeys: add(disabled), drainedKeys: drained }
      : action === "drain"
        ? { disabledKeys: disabled, drainedKeys: add(drained) }
        : { disabledKeys: drop(disabled), drainedKeys: drop(drained) };
  const changed = next.disabledKeys.length !== disabled.length || next.drainedKeys.length !== drained.length;
  return { ...next, changed };
}

/** Whether the pool's status shows `action` on `keyId` done, for the spec generation it saw. */
export function statusShows(action: KeyAction, keyId: string, pool: KeyPoolObject): boolean {
  const status = pool.status;
  if ((status?.observedGeneration ?? -1) < (pool.metadata.generation ?? 0)) return false;
  const key = status?.keyStatuses?.find((k) => k.id === keyId);
  switch (action) {
    case "disable":
      return key?.state === "Disabled" || key?.state === "Draining";
    case "drain":
      return key === undefined || key.state === "Draining";
    case "enable":
      return key !== undefined && key.state !== "Draining" && !key.disabledBySpec;
  }
}

const DONE: Record<KeyAction, string> = {
  disable: "disabled: listed in spec.disabledKeys; the operator hands it out no more",
  drain:
    "draining: listed in spec.drainedKeys; the operator hands it out no more and drops it after rotation.drainPeriod",
  enable: "enabled: off spec.disabledKeys and spec.drainedKeys; the operator hands it out again",
};

const SAME: Record<KeyAction, string> = {
  disable: "already in spec.disabledKeys: nothing to change",
  drain: "already in spec.drainedKeys: nothing to change",
  enable: "in neither spec.disabledKeys nor spec.drainedKeys: nothing to change",
};

export async function keyAction(
  ctx: CommandContext,
  args: PluginArgs & { command: KeyAction },
): Promise<CommandResult> {
  const action = args.command;
  const name = args.pool as string;
  const keyId = args.keyId as string;
  const target = `key ${keyId} of KeyPool ${ctx.namespace}/${name}`;
  let pool: KeyPoolObject | undefined;
  let lists: ReturnType<typeof listsAfter> | undefined;
  let warned = false;
  // A merge patch carrying resourceVersion fails (409) when someone changed the pool since we read
  // it: read again and retry, so a concurrent edit of the lists is never lost.
  for (let attempt = 1; ; attempt++) {
    const current = await ctx.cluster.getPool(ctx.namespace, name);
    const known = current.status?.keyStatuses?.find((k) => k.id === keyId);
    lists = listsAfter(action, keyId, current.spec);
    if (action !== "enable" && !known && lists.changed) {
      throw new PluginError(
        "unknown_key",
        `${target}: the pool's status shows no such key (kubectl keypool status ${name} -n ${ctx.namespace} lists them)`,
      );
    }
    if (action === "enable" && !lists.changed && known?.state === "Disabled" && !known.disabledBySpec) {
      throw new PluginError(
        "unknown_key",
        `${target} was disabled through the operator's admin API, not the spec: enable it there ` +
          `(POST /v1/pools/${ctx.namespace}/${name}/keys/${keyId}/enable)`,
      );
    }
    if (action !== "enable" && lists.changed && !warned) warned = warnIfLastUsable(ctx, current, keyId);
    if (!lists.changed) {
      pool = current;
      break;
    }
    try {
      pool = await ctx.cluster.patchPool(ctx.namespace, name, {
        metadata: { resourceVersion: current.metadata.resourceVersion },
        spec: {
          disabledKeys: lists.disabledKeys.length ? lists.disabledKeys : null,
          drainedKeys: lists.drainedKeys.length ? lists.drainedKeys : null,
        },
      });
      break;
    } catch (err) {
      if (!(err instanceof PluginError && err.code === "conflict" && attempt < 5)) throw err;
    }
  }
  if (lists.changed && args.wait) {
    const ref = { namespace: ctx.namespace, name, uid: pool.metadata.uid };
    pool = await waitForPool(
      ctx,
      ref,
      args.timeoutMs,
      (p) => statusShows(action, keyId, p),
      `show ${target} ${action}d`,
    );
  }
  const state = pool.status?.keyStatuses?.find((k) => k.id === keyId)?.state;
  const line = `${target}: ${lists.changed ? DONE[action] : SAME[action]}${args.wait && state ? ` (now ${state})` : ""}`;
  return {
    value: {
      namespace: ctx.namespace,
      name,
      keyId,
      action,
      changed: lists.changed,
      disabledKeys: lists.disabledKeys,
      drainedKeys: lists.drainedKeys,
      ...(state ? { state } : {}),
    },
    text: `${line}\n`,
  };
}

/** Says so when taking `keyId` out leaves the pool nothing to hand out; true when it did. */
function warnIfLastUsable(ctx: CommandContext, pool: KeyPoolObject, keyId: string): boolean {
  const usable = (pool.status?.keyStatuses ?? []).filter(
    (k) => (k.state === "Healthy" || k.state === "Degraded") && k.id !== keyId,
  );
  const wasUsable = pool.status?.keyStatuses?.some(
    (k) => k.id === keyId && (k.state === "Healthy" || k.state === "Degraded"),
  );
  if (!wasUsable || usable.length > 0) return false;
  ctx.note(
    `warning: ${keyId} is the last usable key of KeyPool ${ctx.namespace}/${pool.metadata.name}: callers get 503 until another key is usable`,
  );
  return true;
}

export async function rotate(ctx: CommandContext, args: PluginArgs): Promise<CommandResult> {
  const pool = await ctx.cluster.getPool(ctx.namespace, args.pool as string);
  const rotation = await rotateCheck(ctx.cluster, pool);
  return { value: rotation, text: renderRotation(rotation) };
}
