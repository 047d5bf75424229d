/**
 * A directory of manifests, read as a whole: every *.yaml, *.yml and *.json file at its top
 * level (not subdirectories, like `kubectl apply -f dir`). Files are re-parsed only when their
 * content changes (a sha256 of the bytes), so rescanning every few seconds costs a read of
 * small files. A file or directory that cannot be read keeps what was last read from it.
 */
import { refKey } from "../../pool/registry.ts";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { V1Secret } from "@kubernetes/client-node";
import type { Logger } from "../../log.ts";
import type { SecretCache } from "../kubernetes/secrets.ts";
import {
  type ManifestProblem,
  type ObjectRef,
  type ParsedFile,
  parseManifestFile,
  type PoolManifest,
  type SecretManifest,
} from "./manifests.ts";
import { errorCode } from "./fs-errors.ts";

const MANIFEST_RE = /\.(ya?ml|json)$/i;
/** Larger than any sensible manifest; Kubernetes caps a Secret at 1 MiB. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface DirectoryScan {
  /** KeyPool manifests by "namespace/name" (the first file, in name order, wins a duplicate). */
  pools: Map<string, PoolManifest>;
  secrets: Map<string, SecretManifest>;
  problems: ManifestProblem[];
}

interface CachedFile {
  hash: string;
  parsed: ParsedFile;
}

export interface ManifestDirectoryOptions {
  dir: string;
  defaultNamespace: string;
  logger: Logger;
  /** Files never read as manifests (the state file, when it lives in the directory). */
  ignore?: readonly string[];
}

export class ManifestDirectory {
  readonly #dir: string;
  readonly #defaultNamespace: string;
  readonly #log: Logger;
  readonly #ignore: Set<string>;
  #files = new Map<string, CachedFile>();

  constructor(options: ManifestDirectoryOptions) {
    this.#dir = options.dir;
    this.#defaultNamespace = options.defaultNamespace;
    this.#log = options.logger;
    this.#ignore = new Set((options.ignore ?? []).map((f) => resolve(f)));
  }

  get dir(): string {
    return this.#dir;
  }

  async scan(): Promise<DirectoryScan> {
    const problems: ManifestProblem[] = [];
    const files = new Map<string, CachedFile>();
    let names: string[] | undefined;
    try {
      names = (await readdir(this.#dir)).sort();
    } catch (err) {
      problems.push({
        message: `cannot read manifest directory ${this.#dir} (${errorCode(err)}); keeping the pools last read from it`,
      });
    }
    if (names === undefined) {
      for (const [name, cached] of this.#files) files.set(name, cached);
    } else {
      for (const name of names) {
        // Dot files are editor swap and lock files (and Kubernetes volume internals: ..data).
        if (name.startsWith(".") || !MANIFEST_RE.test(name)) continue;
        const path = join(this.#dir, name);
        if (this.#ignore.has(resolve(path))) continue;
        const cached = await this.#read(name, path, problems);
        if (cached) files.set(name, cached);
      }
    }

    this.#files = files;

    const pools = new Map<string, PoolManifest>();
    const secrets = new Map<string, SecretManifest>();
    for (const { parsed } of files.values()) {
      problems.push(...parsed.problems);
      for (const pool of parsed.pools) addOnce(pools, pool, "KeyPool", problems);
      for (const secret of parsed.secrets) addOnce(secrets, secret, "Secret", problems);
    }
    return { pools, secrets, problems };
  }

  async #read(name: string, path: string, problems: ManifestProblem[]): Promise<CachedFile | undefined> {
    const previous = this.#files.get(name);
    try {
      const info = await stat(path);
      if (!info.isFile()) return undefined;
      if (info.size > MAX_FILE_BYTES) {
        problems.push({ message: `${path}: larger than ${MAX_FILE_BYTES} bytes; not read` });
        return undefined;
      }
      const bytes = await readFile(path);
      const hash = createHash("sha256").update(bytes).digest("hex");
      if (previous?.hash === hash) return previous;
      const parsed = parseManifestFile(path, bytes.toString("utf8"), this.#defaultNamespace);
      for (const object of parsed.ignored)
        this.#log.debug({ file: path, object }, "not a KeyPool or Secret; ignored");
      return { hash, parsed };
    } catch (err) {
      if (errorCode(err) === "ENOENT") return undefined; // deleted between readdir and read
      const kept = previous ? "; keeping what was last read from it" : "";
      problems.push({ message: `${path}: cannot read (${errorCode(err)})${kept}` });
      return previous;
    }
  }
}

function addOnce<T extends { ref: ObjectRef; origin: string }>(
  into: Map<string, T>,
  item: T,
  kind: string,
  problems: ManifestProblem[],
) {
  const key = refKey(item.ref);
  const first = into.get(key);
  if (!first) {
    into.set(key, item);
    return;
  }
  problems.push({
    ref: item.ref,
    message: `${item.origin}: ${kind} ${key} is also defined in ${first.origin}; this copy is ignored`,
  });
}

/**
 * The Secrets of a directory as the resolver's cache. Every Secret in the directory counts as
 * labelled: the keypool.dev/secret label exists so the operator need not watch every Secret of a
 * cluster, which a directory of the user's own files does not call for.
 */
export function directorySecrets(secrets: ReadonlyMap<string, SecretManifest>): SecretCache {
  return {
    get: (namespace, name) => secrets.get(refKey({ namespace, name }))?.secret,
    list: (namespace) =>
      [...secrets.values()].filter((s) => s.ref.namespace === namespace).map((s): V1Secret => s.secret),
  };
}
