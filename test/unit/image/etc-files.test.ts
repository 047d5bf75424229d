import { describe, expect, it } from "vitest";
import { addUser, distrolessEtc, type User } from "../../../scripts/image/etc-files.ts";

const NODE: User = { name: "node", uid: 1000, gid: 1000, home: "/home/node", shell: "/bin/bash" };
const DEBIAN = {
  passwd: "root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n",
  group: "root:x:0:\nusers:x:100:\n",
  shadow: "root:*:19000:0:99999:7:::\n",
  gshadow: "root:*::\n",
};

describe("the distroless runtime's account files", () => {
  const etc = distrolessEtc();

  it("has nonroot 65532 with its home, and no login shell for anyone", () => {
    expect(etc["etc/passwd"]).toContain("nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n");
    for (const line of (etc["etc/passwd"] ?? "").trim().split("\n"))
      expect(line).toMatch(/:\/sbin\/nologin$/);
  });

  it("has the groups its users name", () => {
    expect(etc["etc/group"]).toContain("nonroot:x:65532:\n");
    expect(etc["etc/group"]).toContain("root:x:0:\n");
  });
});

describe("adding a user", () => {
  it("appends the user, its group, and locked shadow entries", () => {
    const out = addUser(DEBIAN, NODE);
    expect(out.passwd).toBe(`${DEBIAN.passwd}node:x:1000:1000::/home/node:/bin/bash\n`);
    expect(out.group).toBe(`${DEBIAN.group}node:x:1000:\n`);
    expect(out.shadow).toBe(`${DEBIAN.shadow}node:!::0:99999:7:::\n`);
    expect(out.gshadow).toBe(`${DEBIAN.gshadow}node:!::\n`);
  });

  it("changes nothing when the user is already there", () => {
    const once = addUser(DEBIAN, NODE);
    expect(addUser(once, NODE)).toEqual(once);
  });

  it("adds a newline to a file that lacks its last one", () => {
    expect(addUser({ ...DEBIAN, passwd: "root:x:0:0::/root:/bin/sh" }, NODE).passwd).toBe(
      "root:x:0:0::/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/bash\n",
    );
  });

  it.each([
    [
      "refuses a uid that someone else has",
      { ...NODE, name: "other", uid: 42, gid: 4242 },
      /uid 42 already belongs to user _apt/,
    ],
    ["refuses a gid that another group has", { ...NODE, gid: 100 }, /gid 100 already belongs to group users/],
  ])("%s", (_name, user, error) => {
    expect(() => addUser(DEBIAN, user)).toThrow(error);
  });
});
