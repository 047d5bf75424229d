import { describe, expect, it } from "vitest";
import { toToml } from "../../support/cluster/toml.ts";

describe("writing TOML", () => {
  it.each([
    ["strings are quoted and escaped", { a: 'say "hi"\n' }, 'a = "say \\"hi\\"\\n"\n'],
    ["numbers and booleans are bare", { n: 2, b: false }, "n = 2\nb = false\n"],
    ["string arrays are inline", { list: ["x", "y"] }, 'list = ["x", "y"]\n'],
    ["undefined values are left out", { a: undefined, b: "x" }, 'b = "x"\n'],
  ])("%s", (_, table, text) => {
    expect(toToml(table)).toBe(text);
  });

  it("writes nested tables under dotted headers, quoting keys that are not bare", () => {
    expect(
      toToml({
        version: 2,
        plugins: { "io.containerd.grpc.v1.cri": { sandbox_image: "p", cni: { bin_dir: "/b" } } },
      }),
    ).toBe(`version = 2

[plugins]

[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "p"

[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/b"
`);
  });

  it("refuses numbers TOML cannot hold", () => {
    expect(() => toToml({ n: Number.NaN })).toThrow(/TOML/);
  });
});
