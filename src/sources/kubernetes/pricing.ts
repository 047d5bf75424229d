/**
 * spec.pricingRef: a price list kept in one ConfigMap entry (YAML or JSON) that many pools share,
 * the way cert-manager and External Secrets read a referenced object: from a cache the operator
 * fills by watching only the ConfigMaps labelled keypool.dev/pricing, with a direct GET to tell a
 * missing ConfigMap from an unlabelled one. Every failure is a problem naming the ConfigMap, the
 * entry and the field: the pool keeps serving (Degraded, a Warning Event) and prices calls with
 * spec.pricing alone.
 * May import: src/api, src/pool types, node built-ins, yaml, zod.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { type KeyPoolSpec, type ModelPrice, PriceList } from "../../api/keypool.ts";
import { fieldPath } from "../../api/parse.ts";
import type { SourceProblem } from "./secrets.ts";

/** Label a ConfigMap must carry to be seen by the operator (any value). */
export const PRICING_LABEL = "keypool.dev/pricing";

export interface ConfigMapCache {
  get(namespace: string, name: string): V1ConfigMap | undefined;
}

/** What a ConfigMap outside the cache turned out to be (a direct GET tells). */
export type UncachedConfigMap = "missing" | "unlabelled";

export interface ResolvedPricing {
  /** The referenced price list, when it was read and is valid. */
  prices?: ModelPrice[];
  /** Why there is none (no problem and no prices: the pool has no pricingRef). */
  problem?: SourceProblem;
}

/** A price list as a ConfigMap holds it: spec.pricing's rules, each model priced once. */
const ReferencedPriceList = PriceList.superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((price, i) => {
    if (seen.has(price.model))
      ctx.addIssue({ code: "custom", path: [i, "model"], message: `model "${price.model}" is priced twice` });
    seen.add(price.model);
  });
});

/** The price list `spec.pricingRef` names, read from `cache`; see the module header. */
export async function resolvePricing(
  namespace: string,
  spec: KeyPoolSpec,
  cache: ConfigMapCache,
  lookupUncached: (namespace: string, name: string) => Promise<UncachedConfigMap>,
): Promise<ResolvedPricing> {
  const ref = spec.pricingRef;
  if (!ref) return {};
  const where = `ConfigMap ${namespace}/${ref.name}`;
  const problem = (reason: SourceProblem["reason"], message: string): ResolvedPricing => ({
    problem: { reason, secret: "", entry: ref.key, message: `spec.pricingRef: ${message}` },
  });
  const configMap = cache.get(namespace, ref.name);
  if (!configMap) {
    const why = await lookupUncached(namespace, ref.name);
    return problem(
      "PricingNotFound",
      why === "missing"
        ? `${where} not found; prices come from spec.pricing alone`
        : `${where} is not labelled ${PRICING_LABEL}, so the operator does not watch it; prices come from ` +
            `spec.pricing alone. Add the label: kubectl label configmap -n ${namespace} ${ref.name} ${PRICING_LABEL}=true`,
    );
  }
  const text = configMap.data?.[ref.key];
  if (text === undefined) {
    const entries = Object.keys(configMap.data ?? {}).sort();
    const has = entries.length ? `its entries: ${entries.slice(0, 10).join(", ")}` : "it has no entries";
    return problem(
      "PricingEntryMissing",
      `${where} has no entry "${ref.key}" (${has}); prices come from spec.pricing alone`,
    );
  }
  const parsed = parsePriceList(text);
  if (!parsed.ok) {
    return problem(
      "PricingInvalid",
      `${where} entry ${ref.key}: ${parsed.message}; prices come from spec.pricing alone`,
    );
  }
  return { prices: parsed.prices };
}

/** A price list from YAML or JSON text (JSON is YAML), or what is wrong with it, field by field. */
export function parsePriceList(
  text: string,
): { ok: true; prices: ModelPrice[] } | { ok: false; message: string } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const what = error.code.toLowerCase().replaceAll("_", " ");
    return { ok: false, message: `not valid YAML or JSON (line ${line}, column ${col}): ${what}` };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, message: `not valid YAML or JSON: ${(err as Error).message}` };
  }
  const result = ReferencedPriceList.safeParse(value);
  if (result.success) return { ok: true, prices: result.data };
  return { ok: false, message: describeIssues(result.error) };
}

function describeIssues(error: z.ZodError): string {
  const issues = error.issues.map((issue) => `${fieldPath(issue.path)}: ${issue.message}`);
  const more = issues.length > 5 ? `; and ${issues.length - 5} more` : "";
  return issues.slice(0, 5).join("; ") + more;
}
