/**
 * A directory of manifests, read as a whole: every *.yaml, *.yml and *.json file at its top
 * level (not subdirectories, like `kubectl apply -f dir`). Files are re-parsed only when their
 * content changes (a sha256 of the bytes), so rescanning every few seconds costs a read of
 * small files. A file or directory that cannot be read keeps what was last read from it.
 * ConfigMaps (v1) are read too: spec.pricingRef's price lists, labelled or not (the directory is
 * the cache; the keypool.dev/pricing label only spares the operator watching every ConfigMap).
 */
import { refKey } from "../../pool/registry.ts";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { V1ConfigMap, V1Secret } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { fieldPath } from "../../api/parse.ts";
import type { Logger } from "../../log.ts";
import type { ConfigMapCache } from "../kubernetes/pricing.ts";
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
  /** ConfigMaps by "namespace/name": the price lists spec.pricingRef names. */
  configMaps: Map<string, ConfigMapManifest>;
  problems: ManifestProblem[];
}

export interface ConfigMapManifest {
  ref: ObjectRef;
  origin: string;
  configMap: V1ConfigMap;
}

interface CachedFile {
  hash: string;
  parsed: ParsedFile;
  configMaps: ParsedConfigMaps;
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
    const configMaps = new Map<string, ConfigMapManifest>();
    for (const { parsed, configMaps: read } of files.values()) {
      problems.push(...parsed.problems, ...read.problems);
      for (const pool of parsed.pools) addOnce(pools, pool, "KeyPool", problems);
      for (const secret of parsed.secrets) addOnce(secrets, secret, "Secret", problems);
      for (const configMap of read.configMaps) addOnce(configMaps, configMap, "ConfigMap", problems);
    }
    return { pools, secrets, configMaps, problems };
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
      const text = bytes.toString("utf8");
      const parsed = parseManifestFile(path, text, this.#defaultNamespace);
      for (const object of parsed.ignored.filter((o) => !o.startsWith("v1 ConfigMap ")))
        this.#log.debug({ file: path, object }, "not a KeyPool, Secret or ConfigMap; ignored");
      const configMaps = parseConfigMaps(path, text, this.#defaultNamespace);
      return { hash, parsed, configMaps };
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

/**
 * The ConfigMaps of a directory as spec.pricingRef's cache. Every ConfigMap in the directory
 * counts as labelled, like its Secrets (directorySecrets).
 */
export function directoryConfigMaps(configMaps: ReadonlyMap<string, ConfigMapManifest>): ConfigMapCache {
  return { get: (namespace, name) => configMaps.get(refKey({ namespace, name }))?.configMap };
}

const ConfigMapObject = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("ConfigMap"),
  metadata: z.looseObject({
    name: z.string().min(1),
    namespace: z.string().min(1).optional(),
    labels: z.record(z.string(), z.string()).optional(),
  }),
  data: z.record(z.string(), z.string()).optional(),
});

interface ParsedConfigMaps {
  configMaps: ConfigMapManifest[];
  problems: ManifestProblem[];
}

/**
 * The ConfigMaps (v1) of one manifest file, named the way manifests.ts names its objects ("file
 * (document 2) items[0]"). A file that is not valid YAML is parseManifestFile's to report.
 */
function parseConfigMaps(file: string, text: string, defaultNamespace: string): ParsedConfigMaps {
  const result: ParsedConfigMaps = { configMaps: [], problems: [] };
  const docs = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(docs) || docs.some((d) => d.errors.length)) return result;
  const values = docs.map((d) => d.toJS({ maxAliasCount: 100 }) as unknown);
  const objects: Array<{ origin: string; value: unknown }> = [];
  values.forEach((value, i) => {
    const origin = values.length > 1 ? `${file} (document ${i + 1})` : file;
    const list = value as { kind?: unknown; items?: unknown } | null;
    if (list?.kind === "List" && Array.isArray(list.items))
      list.items.forEach((item, j) => objects.push({ origin: `${origin} items[${j}]`, value: item }));
    else objects.push({ origin, value });
  });
  for (const { origin, value } of objects) {
    const object = value as { apiVersion?: unknown; kind?: unknown } | null;
    if (object?.kind !== "ConfigMap" || object.apiVersion !== "v1") continue;
    const parsed = ConfigMapObject.safeParse(value);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`).join("; ");
      result.problems.push({ message: `${origin}: ConfigMap: ${detail}` });
      continue;
    }
    const namespace = parsed.data.metadata.namespace ?? defaultNamespace;
    const ref = { namespace, name: parsed.data.metadata.name };
    result.configMaps.push({
      ref,
      origin,
      configMap: { ...(parsed.data as V1ConfigMap), metadata: { ...parsed.data.metadata, namespace } },
    });
  }
  return result;
}
