/**
 * The cluster's iptables state and how to remove it without touching anyone else's.
 *
 * Ours: every KUBE-* chain (kube-proxy's Services, the kubelet's canaries and hints), our own
 * KEYPOOL-* (host.ts: pods stay inside), CNI
 * chains our network's rules jump to (portmap's CNI-DN-*, commented `name: "keypool"`), and the
 * shared CNI-HOSTPORT-* chains when they did not exist before `up` and hold nothing of another
 * network's (podman uses the same plugins and names). Plus every rule elsewhere that jumps to
 * one of ours or carries our network's comment. Covered for IPv4 and IPv6, nft and legacy.
 */
import { command, hasCommand } from "./command.ts";
import { NAMES } from "./layout.ts";

export interface Rule {
  chain: string;
  /** The rule after `-A <chain> `, in iptables-save/restore syntax. */
  spec: string;
  target: string | undefined;
  comment: string | undefined;
}

export interface Table {
  name: string;
  chains: string[];
  rules: Rule[];
}

const BUILTIN = new Set(["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"]);

/** Parses `iptables-save` output. */
export function parseIptablesSave(text: string): Table[] {
  const tables: Table[] = [];
  let current: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      current = { name: line.slice(1).trim(), chains: [], rules: [] };
      tables.push(current);
    } else if (line.startsWith(":") && current) {
      current.chains.push(line.slice(1).split(" ")[0] ?? "");
    } else if (line.startsWith("-A ") && current) {
      const rest = line.slice(3);
      const space = rest.indexOf(" ");
      const chain = space < 0 ? rest : rest.slice(0, space);
      const spec = space < 0 ? "" : rest.slice(space + 1);
      const target = / -[jg] (\S+)/.exec(` ${spec}`)?.[1];
      const comment = /--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(spec);
      current.rules.push({
        chain,
        spec,
        target,
        comment: comment ? (comment[1] ?? comment[2])?.replace(/\\"/g, '"') : undefined,
      });
    }
  }
  return tables;
}

const OUR_COMMENT = `name: "${NAMES.cniNetwork}"`;
const NETWORK_COMMENT = /name: "([^"]+)"/;

function isSharedHostport(chain: string) {
  return chain.startsWith("CNI-HOSTPORT-");
}

/** The chains of ours in one table (see the header for what counts). */
export function ourChains(table: Table, preexisting: ReadonlySet<string> = new Set()): Set<string> {
  const ours = new Set(table.chains.filter((c) => c.startsWith("KUBE-") || c.startsWith("KEYPOOL-")));
  for (const r of table.rules) {
    if (r.comment?.includes(OUR_COMMENT) && r.target?.startsWith("CNI-") && !isSharedHostport(r.target)) {
      ours.add(r.target);
    }
  }
  for (const chain of table.chains.filter(isSharedHostport)) {
    if (preexisting.has(`${table.name}/${chain}`)) continue;
    const foreign = table.rules.some(
      (r) =>
        r.chain === chain &&
        ((NETWORK_COMMENT.exec(r.comment ?? "")?.[1] ?? NAMES.cniNetwork) !== NAMES.cniNetwork ||
          (r.target?.startsWith("CNI-DN-") && !ours.has(r.target))),
    );
    if (!foreign) ours.add(chain);
  }
  return ours;
}

/** iptables-restore --noflush input removing our rules and chains from one table ("" if none). */
export function removalScript(table: Table, preexisting: ReadonlySet<string> = new Set()): string {
  const ours = ourChains(table, preexisting);
  const deletes = table.rules
    .filter((r) => !ours.has(r.chain))
    .filter((r) => (r.target !== undefined && ours.has(r.target)) || r.comment?.includes(OUR_COMMENT))
    .map((r) => `-D ${r.chain} ${r.spec}`);
  const chains = [...ours].filter((c) => !BUILTIN.has(c));
  if (deletes.length === 0 && chains.length === 0) return "";
  return [
    `*${table.name}`,
    ...deletes,
    ...chains.map((c) => `-F ${c}`),
    ...chains.map((c) => `-X ${c}`),
    "COMMIT",
    "",
  ].join("\n");
}

/** What leftovers() reports for one table: our chains and the rules that point at them. */
export function describeOurs(table: Table, preexisting: ReadonlySet<string> = new Set()): string[] {
  const script = removalScript(table, preexisting);
  return script
    .split("\n")
    .filter((l) => l.startsWith("-D ") || l.startsWith("-X "))
    .map((l) =>
      l.startsWith("-X ") ? `${table.name} chain ${l.slice(3)}` : `${table.name} rule ${l.slice(3)}`,
    );
}

/** The iptables front ends present: IPv4/IPv6 × nft/legacy, as [save, restore, label]. */
export async function iptablesFlavours(): Promise<[string, string, string][]> {
  const candidates: [string, string, string][] = [
    ["iptables-nft-save", "iptables-nft-restore", "ipv4"],
    ["ip6tables-nft-save", "ip6tables-nft-restore", "ipv6"],
    ["iptables-legacy-save", "iptables-legacy-restore", "ipv4 legacy"],
    ["ip6tables-legacy-save", "ip6tables-legacy-restore", "ipv6 legacy"],
  ];
  const present: [string, string, string][] = [];
  for (const c of candidates) if (await hasCommand(c[0])) present.push(c);
  if (present.length === 0 && (await hasCommand("iptables-save")))
    present.push(["iptables-save", "iptables-restore", "ipv4"]);
  return present;
}

async function tables(save: string): Promise<Table[]> {
  const r = await command(save, [], { allowFail: true });
  return r.code === 0 ? parseIptablesSave(r.stdout) : [];
}

/** The CNI-HOSTPORT-* chains that exist now ("<flavour>/<table>/<chain>"), recorded before up. */
export async function sharedChainsNow(): Promise<string[]> {
  const found: string[] = [];
  for (const [save, , label] of await iptablesFlavours()) {
    for (const t of await tables(save)) {
      for (const c of t.chains.filter(isSharedHostport)) found.push(`${label}/${t.name}/${c}`);
    }
  }
  return found;
}

function preexistingFor(label: string, recorded: readonly string[]): Set<string> {
  return new Set(recorded.filter((r) => r.startsWith(`${label}/`)).map((r) => r.slice(label.length + 1)));
}

/** Our chains and rules still present, described one per line. */
export async function iptablesLeftovers(recorded: readonly string[] = []): Promise<string[]> {
  const found: string[] = [];
  for (const [save, , label] of await iptablesFlavours()) {
    for (const t of await tables(save)) {
      found.push(...describeOurs(t, preexistingFor(label, recorded)).map((d) => `${label} ${d}`));
    }
  }
  return found;
}

/** Removes our rules and chains (each table in one iptables-restore transaction). */
export async function removeIptables(recorded: readonly string[] = []): Promise<void> {
  for (const [save, restore, label] of await iptablesFlavours()) {
    for (const t of await tables(save)) {
      const script = removalScript(t, preexistingFor(label, recorded));
      if (script) await command(restore, ["--noflush"], { input: script });
    }
  }
}
