/**
 * node scripts/generate-monitoring.ts — writes the monitoring files made from the two sources in
 * deploy/monitoring/ (the one place to edit them):
 * - keypool-operator.rules.yaml, the alerts as a plain Prometheus rules file (what promtool checks
 *   and tests), becomes deploy/monitoring/prometheus-rules.yaml (the same groups in a Prometheus
 *   Operator PrometheusRule) and the Helm chart's files/keypool-operator.rules.yaml (a copy its
 *   templates/prometheusrule.yaml renders);
 * - dashboard.json, the Grafana dashboard, becomes the chart's files/dashboard.json (a copy its
 *   templates/dashboard-configmap.yaml puts in a ConfigMap).
 * With --check, exits 1 when a committed file differs (what test/unit/monitoring-files.test.ts
 * also asserts).
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { writeGenerated } from "./write-generated.ts";

const at = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));

export const RULES_PATH = at("deploy/monitoring/keypool-operator.rules.yaml");
export const DASHBOARD_PATH = at("deploy/monitoring/dashboard.json");
export const PROMETHEUS_RULE_PATH = at("deploy/monitoring/prometheus-rules.yaml");
export const CHART_RULES_PATH = at("charts/keypool-operator/files/keypool-operator.rules.yaml");
export const CHART_DASHBOARD_PATH = at("charts/keypool-operator/files/dashboard.json");

const PROMETHEUS_RULE_HEAD = `# GENERATED from keypool-operator.rules.yaml by node scripts/generate-monitoring.ts: edit that
# file, not this one. The KeyPool Operator's alerts for the Prometheus Operator (needs the
# monitoring.coreos.com CRDs; your Prometheus must select this object: ruleSelector and
# ruleNamespaceSelector, often a label such as release: <your Prometheus release>).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: keypool-operator
  namespace: keypool-system
  labels:
    app.kubernetes.io/name: keypool-operator
    app.kubernetes.io/part-of: keypool-operator
spec:
`;

/**
 * The PrometheusRule holding a rules file's groups: the file without its leading comment block,
 * indented under `spec:` (so its comments and block scalars stay as written).
 */
export function prometheusRuleYaml(rules: string): string {
  const lines = rules.split("\n");
  const start = lines.findIndex((line) => !line.startsWith("#") && line.trim() !== "");
  if (lines[start] !== "groups:")
    throw new Error("the rules file must start (after comments) with `groups:`");
  const body = lines
    .slice(start)
    .map((line) => (line === "" ? line : `  ${line}`))
    .join("\n");
  return `${PROMETHEUS_RULE_HEAD}${body}`;
}

/** Every generated monitoring file as [path, the text it should hold]. */
export async function monitoringFiles(): Promise<Array<[string, string]>> {
  const rules = await readFile(RULES_PATH, "utf8");
  const dashboard = await readFile(DASHBOARD_PATH, "utf8");
  return [
    [PROMETHEUS_RULE_PATH, prometheusRuleYaml(rules)],
    [CHART_RULES_PATH, rules],
    [CHART_DASHBOARD_PATH, dashboard],
  ];
}

async function main(check: boolean): Promise<boolean> {
  return writeGenerated(await monitoringFiles(), { check, command: "npm run generate:monitoring" });
}

if (import.meta.main && !(await main(process.argv.includes("--check")))) process.exit(1);
