/**
 * Reading KeyPool and Secret manifests from files: multi-document YAML (or JSON, or a `kind: List`),
 * the same objects `kubectl apply -f` takes. Parsing is pure; every failure becomes a problem
 * naming the file, the document and the field, never a value (a Secret's values are keys).
 */
import type { V1Secret } from "@kubernetes/client-node";
import { LineCounter, parseAllDocuments } from "yaml";
import { z } from "zod";
import { API_VERSION, GROUP, KIND } from "../../api/keypool.ts";
import { fieldPath, type KeyPool, type ParseResult, parseKeyPool } from "../../api/parse.ts";

export interface ObjectRef {
  namespace: string;
  name: string;
}

export interface PoolManifest {
  ref: ObjectRef;
  /** Where it was read, e.g. "pools.yaml" or "pools.yaml (document 2)". */
  origin: string;
  result: ParseResult<KeyPool>;
}

export interface SecretManifest {
  ref: ObjectRef;
  origin: string;
  secret: V1Secret;
}

export interface ManifestProblem {
  /** The object the problem is about, when it could be named. */
  ref?: ObjectRef;
  message: string;
}

export interface ParsedFile {
  pools: PoolManifest[];
  secrets: SecretManifest[];
  problems: ManifestProblem[];
  /** Objects of other kinds, as "apiVersion kind name" (logged at debug). */
  ignored: string[];
}

// Kubernetes stores Secret data as standard base64 with padding; anything else is rejected at
// `kubectl apply`, and a plain key under `data` would otherwise decode to garbage silently.
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const SecretObject = z.looseObject({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.looseObject({
    name: z.string().min(1),
    namespace: z.string().min(1).optional(),
    labels: z.record(z.string(), z.string()).optional(),
  }),
  data: z
    .record(
      z.string(),
      z.string().regex(BASE64_RE, "must be base64 (put plain-text keys under stringData instead)"),
    )
    .optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});

type Raw = Record<string, unknown>;

const isObject = (value: unknown): value is Raw =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function metadataOf(object: Raw): { name: string | undefined; namespace: string | undefined } {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const name = typeof metadata.name === "string" && metadata.name ? metadata.name : undefined;
  const namespace =
    typeof metadata.namespace === "string" && metadata.namespace ? metadata.namespace : undefined;
  return { name, namespace };
}

/** Splits a file into its objects (YAML documents; JSON is YAML), or says where it is broken. */
function documentsOf(text: string): { documents: unknown[]; error?: string } {
  const lineCounter = new LineCounter();
  // prettyErrors: false keeps the source lines (possibly keys) out of error messages.
  const docs = parseAllDocuments(text, { prettyErrors: false, lineCounter });
  if (!Array.isArray(docs)) return { documents: [] }; // an empty stream
  for (const [i, doc] of docs.entries()) {
    const error = doc.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      const where = docs.length > 1 ? `document ${i + 1}, ` : "";
      // The code, not the message: some messages quote the text they failed on.
      const what = error.code.toLowerCase().replaceAll("_", " ");
      return { documents: [], error: `not valid YAML (${where}line ${line}, column ${col}): ${what}` };
    }
  }
  return { documents: docs.map((doc) => doc.toJS({ maxAliasCount: 100 }) as unknown) };
}

/**
 * Parses one manifest file. `file` names it in problems; objects without a namespace get
 * `defaultNamespace`.
 */
export function parseManifestFile(file: string, text: string, defaultNamespace: string): ParsedFile {
  const parsed: ParsedFile = { pools: [], secrets: [], problems: [], ignored: [] };
  const { documents, error } = documentsOf(text);
  if (error) {
    parsed.problems.push({ message: `${file}: ${error}` });
    return parsed;
  }
  // A List's items count as documents of their own: "document 2, item 3".
  const objects: Array<{ origin: string; value: unknown }> = [];
  documents.forEach((value, i) => {
    const origin = documents.length > 1 ? `${file} (document ${i + 1})` : file;
    if (isObject(value) && value.kind === "List" && Array.isArray(value.items)) {
      value.items.forEach((item, j) => objects.push({ origin: `${origin} items[${j}]`, value: item }));
    } else {
      objects.push({ origin, value });
    }
  });

  for (const { origin, value } of objects) {
    if (value === null || value === undefined) continue; // an empty document ("---" twice)
    if (!isObject(value)) {
      parsed.problems.push({
        message: `${origin}: not a Kubernetes object (a mapping with apiVersion and kind)`,
      });
      continue;
    }
    const { apiVersion, kind } = value;
    const { name, namespace: declared } = metadataOf(value);
    const namespace = declared ?? defaultNamespace;
    const ref = name ? { namespace, name } : undefined;
    const what = `${String(kind)} ${ref ? `${namespace}/${name}` : "(no metadata.name)"}`;

    if (kind === KIND && apiVersion === API_VERSION) {
      if (!ref) {
        parsed.problems.push({ message: `${origin}: ${what}: metadata.name: required` });
        continue;
      }
      parsed.pools.push({ ref, origin, result: parseKeyPool(value) });
    } else if (kind === KIND && typeof apiVersion === "string" && apiVersion.startsWith(`${GROUP}/`)) {
      parsed.problems.push({
        ...(ref ? { ref } : {}),
        message: `${origin}: ${what}: apiVersion: ${apiVersion} is not served; use ${API_VERSION}`,
      });
    } else if (kind === "Secret" && apiVersion === "v1") {
      const secret = SecretObject.safeParse(value);
      if (!secret.success || !ref) {
        const issues = secret.success ? [] : secret.error.issues;
        const detail = issues.map((issue) => `${fieldPath(issue.path)}: ${issue.message}`).join("; ");
        parsed.problems.push({ ...(ref ? { ref } : {}), message: `${origin}: ${what}: ${detail}` });
        continue;
      }
      parsed.secrets.push({
        ref,
        origin,
        secret: { ...(secret.data as V1Secret), metadata: { ...secret.data.metadata, namespace } },
      });
    } else {
      parsed.ignored.push(`${String(apiVersion)} ${what}`);
    }
  }
  return parsed;
}
