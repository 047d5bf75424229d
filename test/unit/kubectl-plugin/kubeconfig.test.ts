/** The kubeconfig the way kubectl finds it: --kubeconfig, $KUBECONFIG (merged), ~/.kube/config. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { describe, expect, it } from "vitest";
import { PluginError } from "../../../src/kubectl-plugin/errors.ts";
import { connect, kubeconfigFiles } from "../../../src/kubectl-plugin/kubeconfig.ts";

const dir = mkdtempSync(join(tmpdir(), "kubectl-keypool-kc-"));

function write(name: string, config: object): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ apiVersion: "v1", kind: "Config", ...config }));
  return path;
}

const first = write("first", {
  clusters: [{ name: "c", cluster: { server: "https://first:6443" } }],
  users: [{ name: "alice", user: { token: "a" } }],
  contexts: [
    { name: "dev", context: { cluster: "c", user: "alice", namespace: "ai" } },
    { name: "prod", context: { cluster: "c", user: "alice" } },
  ],
  "current-context": "dev",
});
const second = write("second", {
  clusters: [
    { name: "c", cluster: { server: "https://second:6443" } },
    { name: "d", cluster: { server: "https://other:6443" } },
  ],
  users: [{ name: "bob", user: { token: "b" } }],
  contexts: [{ name: "other", context: { cluster: "d", user: "bob", namespace: "team" } }],
  "current-context": "other",
});

describe("finding the kubeconfig", () => {
  it("takes --kubeconfig over $KUBECONFIG, $KUBECONFIG's existing files in order, else ~/.kube/config", () => {
    expect(kubeconfigFiles({ kubeconfig: "/x" }, { KUBECONFIG: first })).toEqual(["/x"]);
    expect(kubeconfigFiles({}, { KUBECONFIG: [first, "/nonexistent", second].join(delimiter) })).toEqual([
      first,
      second,
    ]);
    const home = join(dir, "home");
    mkdirSync(join(home, ".kube"), { recursive: true });
    writeFileSync(join(home, ".kube", "config"), "{}");
    expect(kubeconfigFiles({}, { HOME: home })).toEqual([join(home, ".kube", "config")]);
  });

  it("merges $KUBECONFIG as kubectl does: the first file to name something wins", () => {
    const c = connect({}, { KUBECONFIG: [first, second].join(delimiter) });
    expect(c).toMatchObject({ context: "dev", namespace: "ai", user: "alice", server: "https://first:6443" });
    expect(connect({ context: "other" }, { KUBECONFIG: [first, second].join(delimiter) })).toMatchObject({
      namespace: "team",
      user: "bob",
      server: "https://other:6443",
    });
  });

  it.each<[string, object, string]>([
    ["-n wins over the context's namespace", { namespace: "x" }, "x"],
    ["the context's namespace", {}, "ai"],
    ["default when the context has none", { context: "prod" }, "default"],
  ])("namespace: %s", (_name, flags, namespace) => {
    expect(connect({ kubeconfig: first, ...flags }, {}).namespace).toBe(namespace);
  });

  it.each<[string, object, Record<string, string>, string]>([
    [
      "an unknown context",
      { kubeconfig: first, context: "nope" },
      {},
      'context "nope" is not in the kubeconfig',
    ],
    ["no kubeconfig at all", {}, { HOME: join(dir, "nobody") }, "no kubeconfig: pass --kubeconfig"],
    ["a file that is not there", { kubeconfig: join(dir, "missing") }, {}, "cannot read kubeconfig"],
  ])("stops on %s with a usage error", (_name, flags, env, message) => {
    let caught: unknown;
    try {
      connect(flags, env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PluginError);
    expect((caught as PluginError).message).toContain(message);
  });
});
