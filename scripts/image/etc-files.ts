/**
 * The account files the images need, as text: the distroless runtime's /etc/passwd and /etc/group
 * (root, nobody, nonroot 65532, as gcr.io/distroless has them) and a user added to an existing
 * Debian passwd/group/shadow/gshadow (`node` 1000 as in the official node image, `redis`, `curl_user`).
 */

export interface User {
  name: string;
  uid: number;
  gid: number;
  /** The primary group's name (default: the user's name). */
  group?: string;
  home: string;
  shell: string;
  gecos?: string;
}

/** distroless's nonroot user: what the Dockerfile's `USER 65532:65532` and Kubernetes' runAsNonRoot expect. */
export const NONROOT: User = {
  name: "nonroot",
  uid: 65532,
  gid: 65532,
  home: "/home/nonroot",
  shell: "/sbin/nologin",
  gecos: "nonroot",
};

const DISTROLESS_USERS: readonly User[] = [
  { name: "root", uid: 0, gid: 0, home: "/root", shell: "/sbin/nologin", gecos: "root" },
  { name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent", shell: "/sbin/nologin", gecos: "nobody" },
  NONROOT,
];

const DISTROLESS_GROUPS: readonly [string, number][] = [
  ["root", 0],
  ["tty", 5],
  ["staff", 50],
  ["nonroot", 65532],
  ["nogroup", 65534],
];

export function passwdLine(user: User): string {
  return `${user.name}:x:${user.uid}:${user.gid}:${user.gecos ?? ""}:${user.home}:${user.shell}`;
}

/** /etc/passwd, /etc/group and /etc/nsswitch.conf of the distroless runtime image. */
export function distrolessEtc(): Record<string, string> {
  return {
    "etc/passwd": `${DISTROLESS_USERS.map(passwdLine).join("\n")}\n`,
    "etc/group": `${DISTROLESS_GROUPS.map(([name, gid]) => `${name}:x:${gid}:`).join("\n")}\n`,
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n",
  };
}

export interface AccountFiles {
  passwd: string;
  group: string;
  shadow: string;
  gshadow: string;
}

/**
 * The account files with `user` (and its group) added; unchanged when the name is already there.
 * Throws when the uid or gid belongs to someone else.
 */
export function addUser(files: AccountFiles, user: User): AccountFiles {
  const group = user.group ?? user.name;
  const entries = (text: string) =>
    text
      .split("\n")
      .filter(Boolean)
      .map((line) => line.split(":"));
  const users = entries(files.passwd);
  const groups = entries(files.group);
  const append = (text: string, line: string) =>
    `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;
  const out = { ...files };
  const sameGroup = groups.find(([name]) => name === group);
  if (!sameGroup) {
    const taken = groups.find(([, , gid]) => gid === String(user.gid));
    if (taken) throw new Error(`gid ${user.gid} already belongs to group ${taken[0]}`);
    out.group = append(out.group, `${group}:x:${user.gid}:`);
    out.gshadow = append(out.gshadow, `${group}:!::`);
  }
  if (!users.some(([name]) => name === user.name)) {
    const taken = users.find(([, , uid]) => uid === String(user.uid));
    if (taken) throw new Error(`uid ${user.uid} already belongs to user ${taken[0]}`);
    out.passwd = append(out.passwd, passwdLine(user));
    // Locked password, no ageing: as useradd writes it (the day count is left empty).
    out.shadow = append(out.shadow, `${user.name}:!::0:99999:7:::`);
  }
  return out;
}
