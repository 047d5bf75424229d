import { describe, expect, it } from "vitest";
import { confinedPath, isWithinBase, pathProblem } from "../../../src/proxy/path.ts";
import { providerUrl } from "../../../src/providers/url.ts";

describe("the proxy's rest-of-path", () => {
  it.each([
    ["/v1/chat/completions", "a provider path"],
    ["/v1/models/gpt-4o", "a model name"],
    ["/v1beta/models/gemini-2.0-flash:generateContent", "Gemini's method suffix"],
    ["/v1/files/file-abc.jsonl", "a dot inside a name"],
    ["/v1/a..b/c.d", "dots inside names"],
    ["/v1/...", "three dots: a name, not a dot segment"],
    ["/v1/%41bc", "encoded letters"],
  ])("%s is sent as written (%s)", (path) => {
    expect(pathProblem(path)).toBeUndefined();
    expect(confinedPath(path)).toBe(path);
  });

  it.each([
    ["/v1/../../admin/x", '".."'],
    ["/..", '".."'],
    ["/v1/./x", '"."'],
    ["/v1/chat/..", '".."'],
    ["/v1/%2e%2e/admin", '"%2e%2e"'],
    ["/v1/%2E%2e/admin", '"%2E%2e"'],
    ["/v1/.%2E/admin", '".%2E"'],
    ["/v1/%2e/admin", '"%2e"'],
    ["/v1/..%2fadmin", "encoded slash"],
    ["/v1%2F..%2Fadmin", "encoded slash"],
    ["/v1/..\\admin", "backslash"],
    ["/v1/%5c..%5cadmin", "encoded backslash"],
    ["/v1/%5C", "encoded backslash"],
    ["/v1/%zz", "broken percent-encoding"],
  ])("%s is refused (%s) with invalid_path", (path, why) => {
    expect(pathProblem(path)).toContain(why);
    expect(() => confinedPath(path)).toThrow(expect.objectContaining({ code: "invalid_path", status: 400 }));
  });

  it.each([
    ["https://gw.example/team-a", "/v1/chat/completions", true],
    ["https://api.openai.com/v1", "/v1/models", true],
    ["https://api.openai.com", "/v1/models", true],
    // What an unchecked path would become: the URL parser resolves the dots.
    ["https://gw.example/team-a", "/v1/../../team-b/v1/models", false],
    ["https://gw.example/team-a", "/v1/%2e%2e/%2e%2e/team-b", false],
    ["https://gw.example/team-a", "/..\\team-b", false],
  ])("%s + %s stays within the base: %s", (base, path, within) => {
    expect(isWithinBase(providerUrl(base, path), base)).toBe(within);
  });
});
