/** An API server refusal, said plainly: who may not do what where, and which role to ask for. */
import { ApiException } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { explainApiError, forbiddenMessage, forbiddenUser } from "../../../src/kubectl-plugin/errors.ts";

function apiError(code: number, status: object) {
  return new ApiException(code, "failed", JSON.stringify({ kind: "Status", code, ...status }), {});
}

const FORBIDDEN = {
  reason: "Forbidden",
  message:
    'keypools.keypool.dev "openai-prod" is forbidden: User "alice" cannot get resource "keypools" in API group "keypool.dev" in the namespace "ai"',
  details: { name: "openai-prod", group: "keypool.dev", kind: "keypools" },
};

describe("403s", () => {
  it("names the user the API server names", () => {
    expect(forbiddenUser(FORBIDDEN.message)).toBe("alice");
    expect(forbiddenUser('User "system:serviceaccount:ai:app" cannot list resource')).toBe(
      "system:serviceaccount:ai:app",
    );
    expect(forbiddenUser("something else")).toBeUndefined();
  });

  it("asks a reader for keypool-view, and says how an admin grants it", () => {
    const err = explainApiError(apiError(403, FORBIDDEN), {
      verb: "get",
      resource: "keypools",
      namespace: "ai",
      name: "openai-prod",
    });
    expect(err.code).toBe("forbidden");
    expect(err.message).toBe(
      "you (user alice) may not get keypools in namespace ai: ask for the keypool-view ClusterRole " +
        "(or keypool-admin, to change pools), bound in namespace ai (deploy/base/user-roles.yaml)\n" +
        "  an admin can grant it: kubectl create rolebinding keypool-view --clusterrole=keypool-view --user=alice -n ai",
    );
  });

  it("asks a writer for keypool-admin, bound to the ServiceAccount it is", () => {
    expect(
      forbiddenMessage(
        { verb: "patch", resource: "keypools", namespace: "ai" },
        "system:serviceaccount:ai:ci",
      ),
    ).toContain(
      "may not patch keypools in namespace ai: ask for the keypool-admin ClusterRole, bound in namespace ai " +
        "(deploy/base/user-roles.yaml)\n  an admin can grant it: kubectl create rolebinding keypool-admin " +
        "--clusterrole=keypool-admin --serviceaccount=ai:ci -n ai",
    );
  });

  it("explains that rotate-check reads Secrets with the user's own rights", () => {
    expect(forbiddenMessage({ verb: "get", resource: "secrets", namespace: "ai" }, "alice")).toBe(
      "you (user alice) may not get secrets in namespace ai: rotate-check reads the pool's Secrets with your " +
        "own rights, and the keypool ClusterRoles grant none; ask for get and list on secrets bound in " +
        "namespace ai (the built-in edit or admin ClusterRole has them)",
    );
  });

  it("names the kubeconfig's user when the API server names none, and -A's cluster scope", () => {
    expect(
      explainApiError(apiError(403, { reason: "Forbidden", message: "forbidden" }), {
        verb: "list",
        resource: "keypools",
        namespace: undefined,
        kubeconfigUser: "bob",
      }).message,
    ).toContain("you (user bob) may not list keypools in any namespace");
  });

  it("names roles that deploy/base/user-roles.yaml defines", () => {
    const roles = parseAllDocuments(readFileSync("deploy/base/user-roles.yaml", "utf8")).map(
      (d) => (d.toJSON() as { metadata: { name: string } }).metadata.name,
    );
    expect(roles).toEqual(expect.arrayContaining(["keypool-view", "keypool-admin"]));
  });
});

describe("other failures", () => {
  it.each<[string, number, object, string]>([
    [
      "a pool that is not there",
      404,
      { reason: "NotFound", details: { name: "nope" } },
      "KeyPool ai/nope not found",
    ],
    ["a cluster without the CRD", 404, { reason: "NotFound", details: {} }, "does not serve KeyPools"],
    [
      "credentials the API server refuses",
      401,
      { reason: "Unauthorized" },
      "did not accept your credentials",
    ],
  ])("%s", (_name, code, status, message) => {
    const err = explainApiError(apiError(code, status), {
      verb: "get",
      resource: "keypools",
      namespace: "ai",
      name: "nope",
    });
    expect(err.message).toContain(message);
    expect(err.exitCode).toBe(1);
  });

  it("says which API server it could not reach", () => {
    const err = explainApiError(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      verb: "get",
      resource: "keypools",
      namespace: "ai",
      server: "https://127.0.0.1:1",
    });
    expect(err.message).toBe(
      "get keypools (API server https://127.0.0.1:1) failed: connect ECONNREFUSED 127.0.0.1:1",
    );
  });
});
