/**
 * Stand-ins for the Prometheus Operator's CRDs (not part of this project): the same group,
 * version and kind with an open schema, so the API server takes deploy/monitoring/'s and the
 * chart's ServiceMonitor and PrometheusRule through a dry-run. Their fields are checked by the
 * tests' own assertions. One YAML stream of both.
 */
export const MONITORING_CRDS = [
  ["servicemonitors", "ServiceMonitor"],
  ["prometheusrules", "PrometheusRule"],
]
  .map(
    ([plural, kind]) => `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${plural}.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: { plural: ${plural}, singular: ${kind?.toLowerCase()}, kind: ${kind}, listKind: ${kind}List }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true }
`,
  )
  .join("---");
