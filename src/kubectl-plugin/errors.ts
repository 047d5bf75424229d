/**
 * What went wrong, in words a kubectl user can act on. An API server refusal names the user, the
 * verb, the resource and the namespace, and the ClusterRole to ask for (deploy/base/user-roles.yaml);
 * anything else is one line from describeError (secrets scrubbed).
 */
import { ApiException } from "@kubernetes/client-node";
import { describeError } from "../describe-error.ts";

/** Exit codes: 1 a failure (the API server said no, a wait ran out), 2 a usage error. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export type PluginErrorCode =
  | "usage"
  | "forbidden"
  | "unauthorized"
  | "not_found"
  | "crd_missing"
  | "conflict"
  | "timeout"
  | "unknown_key"
  | "api_error";

/** An error the plugin reports as one message (and exits with `exitCode`). */
export class PluginError extends Error {
  override name = "PluginError";
  readonly code: PluginErrorCode;
  readonly exitCode: number;
  constructor(
    code: PluginErrorCode,
    message: string,
    exitCode = code === "usage" ? EXIT_USAGE : EXIT_FAILURE,
  ) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** The request that failed, as the messages name it. */
export interface Attempt {
  /** The Kubernetes verb: get, list, patch. */
  verb: string;
  /** keypools or secrets. */
  resource: "keypools" | "secrets";
  /** undefined: every namespace. */
  namespace: string | undefined;
  name?: string;
  /** The kubeconfig user, for when the API server's answer does not name one. */
  kubeconfigUser?: string | undefined;
  /** The API server's URL, for connection errors. */
  server?: string | undefined;
}

interface Status {
  reason?: string;
  message?: string;
  details?: { kind?: string; group?: string; name?: string };
}

function statusOf(err: ApiException<unknown>): Status {
  try {
    const body: unknown = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
    return body && typeof body === "object" ? (body as Status) : {};
  } catch {
    return {};
  }
}

/**
 * Who the API server says asked: `User "alice" cannot get resource "keypools" in API group
 * "keypool.dev" in the namespace "ai"` (the Forbidden message of every Kubernetes release).
 */
export function forbiddenUser(message: string | undefined): string | undefined {
  return message ? /User "([^"]+)" cannot/.exec(message)?.[1] : undefined;
}

/** The RoleBinding flag that names a subject: --serviceaccount=ns:name for ServiceAccounts. */
function subjectFlag(user: string): string {
  const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(user);
  return sa ? `--serviceaccount=${sa[1]}:${sa[2]}` : `--user=${user}`;
}

const READ_VERBS = new Set(["get", "list", "watch"]);

/** The plain message for a 403: who may not do what where, and which role to ask for. */
export function forbiddenMessage(attempt: Attempt, user: string | undefined): string {
  const who = user ? `you (user ${user})` : "you";
  const where = attempt.namespace === undefined ? "in any namespace" : `in namespace ${attempt.namespace}`;
  const scope =
    attempt.namespace === undefined
      ? "bound cluster-wide with a ClusterRoleBinding, or pass -n NAMESPACE instead of -A"
      : `bound in namespace ${attempt.namespace}`;
  const head = `${who} may not ${attempt.verb} ${attempt.resource} ${where}`;
  if (attempt.resource === "secrets") {
    return (
      `${head}: rotate-check reads the pool's Secrets with your own rights, and the keypool ClusterRoles ` +
      `grant none; ask for get and list on secrets ${scope} (the built-in edit or admin ClusterRole has them)`
    );
  }
  const read = READ_VERBS.has(attempt.verb);
  const role = read ? "keypool-view" : "keypool-admin";
  const which = read
    ? "the keypool-view ClusterRole (or keypool-admin, to change pools)"
    : "the keypool-admin ClusterRole";
  const hint =
    user && attempt.namespace !== undefined
      ? `\n  an admin can grant it: kubectl create rolebinding ${role} --clusterrole=${role} ${subjectFlag(user)} -n ${attempt.namespace}`
      : "";
  return `${head}: ask for ${which}, ${scope} (deploy/base/user-roles.yaml)${hint}`;
}

/** Turns a failed API call into a PluginError saying what to do. */
export function explainApiError(err: unknown, attempt: Attempt): PluginError {
  if (err instanceof PluginError) return err;
  if (err instanceof ApiException) {
    const status = statusOf(err);
    const target = attempt.name ? `${attempt.namespace}/${attempt.name}` : "";
    switch (err.code) {
      case 401:
        return new PluginError(
          "unauthorized",
          `the API server${attempt.server ? ` at ${attempt.server}` : ""} did not accept your credentials` +
            `${attempt.kubeconfigUser ? ` (kubeconfig user ${attempt.kubeconfigUser})` : ""}: log in again or check --kubeconfig and --context`,
        );
      case 403:
        return new PluginError(
          "forbidden",
          forbiddenMessage(attempt, forbiddenUser(status.message) ?? attempt.kubeconfigUser),
        );
      case 404:
        if (!status.details?.name && attempt.resource === "keypools") {
          return new PluginError(
            "crd_missing",
            "this cluster does not serve KeyPools (keypools.keypool.dev): install the operator's CRD " +
              "(kubectl apply --server-side -f crds/keypool.dev_keypools.yaml)",
          );
        }
        return new PluginError(
          "not_found",
          attempt.resource === "keypools"
            ? `KeyPool ${target} not found (kubectl keypool status -n ${attempt.namespace} lists the pools there)`
            : `Secret ${target} not found`,
        );
      case 409:
        return new PluginError(
          "conflict",
          `KeyPool ${target} changed while this command changed it, more than once: run it again`,
        );
    }
  }
  const where = attempt.server ? ` (API server ${attempt.server})` : "";
  return new PluginError(
    "api_error",
    `${attempt.verb} ${attempt.resource}${where} failed: ${describeError(err)}`,
  );
}
