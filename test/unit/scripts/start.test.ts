import { describe, expect, it } from "vitest";
import { startArgs } from "../../../scripts/start.ts";

describe("npm start", () => {
  it.each([
    ["serves the examples when no pool variable is set", [], {}, ["serve", "--manifests", "examples"]],
    ["serves only GPT_4_KEYS's pool when it is set", [], { GPT_4_KEYS: "sk-a" }, ["serve"]],
    [
      "ignores variables that are not pools",
      [],
      { PATH: "/bin", SSH_KEYS: undefined },
      ["serve", "--manifests", "examples"],
    ],
    [
      "takes --manifests instead of the examples",
      ["--manifests", "pools"],
      {},
      ["serve", "--manifests", "pools"],
    ],
    ["takes KEYPOOL_MANIFESTS instead of the examples", [], { KEYPOOL_MANIFESTS: "pools" }, ["serve"]],
    [
      "passes other arguments on",
      ["--port", "9000"],
      {},
      ["serve", "--manifests", "examples", "--port", "9000"],
    ],
  ])("%s", (_name, extra, env, args) => {
    expect(startArgs(extra, env)).toEqual(args);
  });
});
