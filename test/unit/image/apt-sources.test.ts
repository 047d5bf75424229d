import { describe, expect, it } from "vitest";
import { type AptSource, parseDeb822, parseOneLine, pickMirror } from "../../../scripts/image/apt-sources.ts";

const source = (over: Partial<AptSource>): AptSource => ({
  types: ["deb"],
  uris: ["http://deb.debian.org/debian"],
  suites: ["bookworm"],
  components: ["main"],
  enabled: true,
  ...over,
});

describe("apt sources, one-line format", () => {
  it.each([
    [
      "reads type, uri, suite and components",
      "deb http://deb.debian.org/debian bookworm main contrib",
      [source({ components: ["main", "contrib"] })],
    ],
    [
      "skips options in brackets, even with spaces inside",
      "deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] http://m.example/debian bookworm main",
      [source({ uris: ["http://m.example/debian"] })],
    ],
    [
      "skips a one-word option",
      "deb [arch=amd64] http://m.example/debian bookworm main",
      [source({ uris: ["http://m.example/debian"] })],
    ],
    ["ignores comments and blank lines", "# deb http://old/debian bookworm main\n\n", []],
    [
      "cuts a comment at the end of a line",
      "deb http://m.example/debian bookworm main # mirror",
      [source({ uris: ["http://m.example/debian"] })],
    ],
    [
      "keeps deb-src lines as their own type",
      "deb-src http://m.example/debian bookworm main",
      [source({ types: ["deb-src"], uris: ["http://m.example/debian"] })],
    ],
    ["skips a line without a suite", "deb http://m.example/debian", []],
  ])("%s", (_name, text, expected) => {
    expect(parseOneLine(text)).toEqual(expected);
  });
});

describe("apt sources, deb822 format", () => {
  it("reads each paragraph, with several suites, and skips comments between fields", () => {
    const text = [
      "Types: deb",
      "# http://snapshot.debian.org/archive/debian/20250520T000000Z",
      "URIs: http://deb.debian.org/debian",
      "Suites: bookworm bookworm-updates",
      "Components: main",
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
      "",
      "Types: deb",
      "URIs: http://deb.debian.org/debian-security",
      "Suites: bookworm-security",
      "Components: main",
    ].join("\n");
    expect(parseDeb822(text)).toEqual([
      source({ suites: ["bookworm", "bookworm-updates"] }),
      source({ uris: ["http://deb.debian.org/debian-security"], suites: ["bookworm-security"] }),
    ]);
  });

  it.each([
    [
      "honours Enabled: no",
      "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\nEnabled: no",
      false,
    ],
    [
      "is enabled without an Enabled field",
      "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main",
      true,
    ],
  ])("%s", (_name, text, enabled) => {
    expect(parseDeb822(text)[0]?.enabled).toBe(enabled);
  });

  it("joins continuation lines onto their field", () => {
    const [parsed] = parseDeb822(
      "Types: deb\nURIs: http://m/debian\nSuites: bookworm\n  bookworm-updates\nComponents: main",
    );
    expect(parsed?.suites).toEqual(["bookworm", "bookworm-updates"]);
  });

  it("skips a paragraph without URIs", () => {
    expect(parseDeb822("Types: deb\nSuites: bookworm")).toEqual([]);
  });
});

describe("choosing the mirror", () => {
  it.each([
    [
      "takes the first source serving the suite's main component",
      [source({ uris: ["http://a/debian"] }), source({ uris: ["http://b/debian"] })],
      "http://a/debian",
    ],
    ["drops a trailing slash", [source({ uris: ["http://a/debian/"] })], "http://a/debian"],
    [
      "skips disabled sources",
      [source({ enabled: false, uris: ["http://off/debian"] }), source({})],
      "http://deb.debian.org/debian",
    ],
    ["skips deb-src sources", [source({ types: ["deb-src"], uris: ["http://src/debian"] })], undefined],
    [
      "skips other suites (bookworm-security is not bookworm)",
      [source({ suites: ["bookworm-security"] })],
      undefined,
    ],
    ["skips sources without main", [source({ components: ["contrib"] })], undefined],
    ["finds nothing in nothing", [], undefined],
  ])("%s", (_name, sources, expected) => {
    expect(pickMirror(sources, "bookworm")).toBe(expected);
  });
});
