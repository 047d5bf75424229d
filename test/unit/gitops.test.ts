/**
 * deploy/gitops/argocd-cm-patch.yaml carries the Lua scripts of the same folder (which the
 * integration tests run with a real Lua 5.1): the copies must be exactly the files, byte for byte.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PROBE_REQUEST_ANNOTATION } from "../../src/api/keypool.ts";

const GITOPS = fileURLToPath(new URL("../../deploy/gitops/", import.meta.url));
const read = (name: string) => readFile(`${GITOPS}${name}`, "utf8");

interface ConfigMapPatch {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  data: Record<string, string>;
}

interface Actions {
  "discovery.lua": string;
  definitions: Array<{ name: string; "action.lua": string }>;
}

describe("argocd-cm-patch.yaml", () => {
  it("is a patch of the argocd-cm ConfigMap", async () => {
    const patch = parse(await read("argocd-cm-patch.yaml")) as ConfigMapPatch;
    expect(patch).toMatchObject({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "argocd-cm" } });
    expect(Object.keys(patch.data).sort()).toEqual([
      "resource.customizations.actions.keypool.dev_KeyPool",
      "resource.customizations.health.keypool.dev_KeyPool",
    ]);
  });

  it("embeds keypool-health.lua exactly", async () => {
    const patch = parse(await read("argocd-cm-patch.yaml")) as ConfigMapPatch;
    expect(patch.data["resource.customizations.health.keypool.dev_KeyPool"]).toBe(
      await read("keypool-health.lua"),
    );
  });

  it("embeds the probe action's discovery and action scripts exactly", async () => {
    const patch = parse(await read("argocd-cm-patch.yaml")) as ConfigMapPatch;
    const actions = parse(patch.data["resource.customizations.actions.keypool.dev_KeyPool"] ?? "") as Actions;
    expect(actions["discovery.lua"]).toBe(await read("keypool-probe-discovery.lua"));
    expect(actions.definitions).toHaveLength(1);
    expect(actions.definitions[0]?.name).toBe("probe");
    expect(actions.definitions[0]?.["action.lua"]).toBe(await read("keypool-probe-action.lua"));
  });

  it("sets the annotation the operator reads", async () => {
    expect(await read("keypool-probe-action.lua")).toContain(
      `obj.metadata.annotations["${PROBE_REQUEST_ANNOTATION}"] = os.date("!%Y-%m-%dT%H:%M:%SZ")`,
    );
  });
});
