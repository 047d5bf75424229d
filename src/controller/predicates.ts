/**
 * Which watch events are worth a reconcile. Like controller-runtime's GenerationChangedPredicate
 * with its annotation and label predicates: a KeyPool change that touched only its status (the
 * operator's own status writes, every few seconds under load) changes nothing the reconciler
 * reads from the object. Skipping those spares a parse and a key-set evaluation per write, and
 * the event loop the time they took from dispenses and proxied calls.
 */
import { isDeepStrictEqual } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";

/** Equal values; absent (undefined) and null count as the same. */
const same = (a: unknown, b: unknown) => isDeepStrictEqual(a ?? null, b ?? null);

/** True when `next` differs from `previous` only outside spec and the metadata we act on. */
export function onlyStatusChanged(previous: KubernetesObject, next: KubernetesObject): boolean {
  const a = previous.metadata;
  const b = next.metadata;
  if (!a || !b || a.generation === undefined || a.generation !== b.generation) return false;
  return (
    same(a.annotations, b.annotations) &&
    same(a.labels, b.labels) &&
    same(a.deletionTimestamp, b.deletionTimestamp) &&
    same(a.finalizers, b.finalizers) &&
    same(a.ownerReferences, b.ownerReferences)
  );
}
