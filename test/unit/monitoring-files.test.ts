/**
 * deploy/monitoring/ and the chart's monitoring files, without running anything: the generated
 * files match their sources (the rules file and dashboard.json), every alert says what it means
 * and what to do, the promtool test file has a firing and a quiet case for every alert, the chart
 * can find what it replaces, and the dashboard is wired to its variables. That the metrics are
 * real, and that promtool agrees, is test/integration/monitoring.test.ts's part.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import {
  CHART_DASHBOARD_PATH,
  CHART_RULES_PATH,
  DASHBOARD_PATH,
  monitoringFiles,
  PROMETHEUS_RULE_PATH,
  RULES_PATH,
} from "../../scripts/generate-monitoring.ts";
import { metricNames } from "../support/promql.ts";

const at = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const read = (path: string) => readFile(path, "utf8");

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
const rulesFile = async () => parse(await read(RULES_PATH)) as RulesFile;
const alerts = async () => (await rulesFile()).groups.flatMap((g) => g.rules).filter((r) => r.alert);

/** The alerts the issue asked for, each in a sentence. */
const EXPECTED_ALERTS = [
  "KeyPoolNoUsableKey", // a pool has no usable key
  "KeyPoolUsableKeysLow", // a pool below N% usable for 10m
  "KeyPoolKeyInvalid", // a key is Invalid
  "KeyPoolMostlyRateLimited", // keys rate-limited most of the last hour: the pool is too small
  "KeyPoolProxyFailoverRatioHigh", // the proxy fails over often
  "KeyPoolOperatorNoLeader", // no leader for 2m
  "KeyPoolOperatorWatchStale", // a replica's watches are stale
  "KeyPoolOperatorStatusWritesFailing", // status writes keep failing
  "KeyPoolStateStoreDown", // the shared state store is unreachable
];

describe("generated monitoring files", () => {
  it("are up to date with their sources (node scripts/generate-monitoring.ts writes them)", async () => {
    for (const [path, text] of await monitoringFiles()) {
      expect(await read(path).catch(() => ""), `${path}: run node scripts/generate-monitoring.ts`).toBe(text);
    }
  });

  it("the PrometheusRule holds exactly the rules file's groups", async () => {
    const object = parse(await read(PROMETHEUS_RULE_PATH)) as { kind: string; spec: unknown };
    expect(object.kind).toBe("PrometheusRule");
    expect(object.spec).toEqual(await rulesFile());
  });

  it("the chart has byte-for-byte copies of the rules and the dashboard", async () => {
    expect(await read(CHART_RULES_PATH)).toBe(await read(RULES_PATH));
    expect(await read(CHART_DASHBOARD_PATH)).toBe(await read(DASHBOARD_PATH));
  });

  it("kustomize includes the PrometheusRule and the dashboard ConfigMap, and the ServiceMonitor honours the pools' labels", async () => {
    const kustomization = parse(await read(at("deploy/monitoring/kustomization.yaml"))) as {
      resources: string[];
      configMapGenerator: Array<{
        name: string;
        files: string[];
        options: { labels: Record<string, string> };
      }>;
    };
    expect(kustomization.resources).toContain("prometheus-rules.yaml");
    expect(kustomization.configMapGenerator).toEqual([
      expect.objectContaining({
        name: "keypool-operator-dashboard",
        files: ["keypool-operator.json=dashboard.json"],
        options: expect.objectContaining({ labels: expect.objectContaining({ grafana_dashboard: "1" }) }),
      }),
    ]);
    const monitor = parse(await read(at("deploy/monitoring/servicemonitor.yaml"))) as {
      spec: { endpoints: Array<{ honorLabels?: boolean }> };
    };
    expect(monitor.spec.endpoints.map((e) => e.honorLabels)).toEqual([true]);
  });
});

describe("the alerts", () => {
  it("are the ones asked for, each named once", async () => {
    expect((await alerts()).map((r) => r.alert)).toEqual(EXPECTED_ALERTS);
  });

  it.each(EXPECTED_ALERTS)(
    "%s has a severity, a for, and a summary, description and runbook",
    async (name) => {
      const rule = (await alerts()).find((r) => r.alert === name) as Rule;
      expect(["critical", "warning"]).toContain(rule.labels?.severity);
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(Object.keys(rule.annotations ?? {}).sort()).toEqual(["description", "runbook", "summary"]);
      for (const text of Object.values(rule.annotations ?? {})) expect(text.length).toBeGreaterThan(40);
    },
  );

  it("read only keypool_ metrics", async () => {
    for (const rule of await alerts()) {
      const names = metricNames(rule.expr);
      expect(names.length, rule.alert).toBeGreaterThan(0);
      for (const name of names) expect(name, rule.alert).toMatch(/^keypool_/);
    }
  });

  it("hold the 50 the chart replaces in KeyPoolUsableKeysLow only, where the chart template looks for it", async () => {
    const template = await read(at("charts/keypool-operator/templates/prometheusrule.yaml"));
    expect(template).toContain('replace "< 50"');
    expect(template).toContain('replace "50%"');
    for (const rule of await alerts()) {
      const text = Object.values(rule.annotations ?? {}).join("\n");
      const inExpr = rule.expr.split("< 50").length - 1;
      const inAnnotations = text.split("50%").length - 1;
      if (rule.alert === "KeyPoolUsableKeysLow") {
        expect(inExpr).toBe(1);
        expect(inAnnotations).toBeGreaterThan(0);
      } else {
        expect([inExpr, inAnnotations], rule.alert).toEqual([0, 0]);
      }
    }
  });
});

describe("the promtool test file", () => {
  interface RuleTest {
    alert_rule_test?: Array<{
      alertname: string;
      exp_alerts: Array<{ exp_labels: Record<string, string>; exp_annotations: Record<string, string> }>;
    }>;
  }
  const tests = async () =>
    parse(await read(at("test/fixtures/monitoring/rules.test.yaml"))) as {
      rule_files: string[];
      tests: RuleTest[];
    };

  it("tests the rules file itself", async () => {
    const file = await tests();
    expect(
      file.rule_files.map((f) =>
        fileURLToPath(new URL(f, new URL("../fixtures/monitoring/", import.meta.url))),
      ),
    ).toEqual([RULES_PATH]);
  });

  it.each(EXPECTED_ALERTS)(
    "has a case where %s fires, with labels and annotations, and one where it stays quiet",
    async (name) => {
      const cases = (await tests()).tests
        .flatMap((t) => t.alert_rule_test ?? [])
        .filter((c) => c.alertname === name);
      const firing = cases.filter((c) => c.exp_alerts.length > 0);
      expect(firing.length).toBeGreaterThan(0);
      for (const c of firing) {
        for (const alert of c.exp_alerts) {
          expect(alert.exp_labels.severity).toBeDefined();
          expect(Object.keys(alert.exp_annotations).sort()).toEqual(["description", "runbook", "summary"]);
        }
      }
      expect(cases.filter((c) => c.exp_alerts.length === 0).length).toBeGreaterThan(0);
    },
  );
});

interface Target {
  expr: string;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; datasource?: { uid?: string } }> };
}

describe("the dashboard", () => {
  const dashboard = async () => JSON.parse(await read(DASHBOARD_PATH)) as Dashboard;
  const graphs = async () => (await dashboard()).panels.filter((p) => p.type !== "row");

  it("has a datasource variable, and job, namespace and pool variables read from it", async () => {
    const vars = (await dashboard()).templating.list;
    expect(vars.map((v) => `${v.name}:${v.type}`)).toEqual([
      "datasource:datasource",
      "job:query",
      "namespace:query",
      "pool:query",
    ]);
    for (const v of vars.slice(1)) expect(v.datasource?.uid).toBe("${datasource}");
  });

  it("queries the datasource variable in every panel and target", async () => {
    for (const panel of await graphs()) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets ?? []) expect(t.datasource?.uid, panel.title).toBe("${datasource}");
    }
  });

  it("has unique panel ids, a description on every panel, and no panels overlapping on the 24-column grid", async () => {
    const panels = (await dashboard()).panels;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const taken = new Set<string>();
    for (const p of panels) {
      if (p.type !== "row") expect(p.description, p.title).toBeTruthy();
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(taken.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          taken.add(`${x},${y}`);
        }
      }
    }
  });

  it("filters every per-pool series by the namespace and pool variables, and every series by job", async () => {
    for (const panel of await graphs()) {
      for (const { expr } of panel.targets ?? []) {
        for (const selector of expr.match(/keypool_\w+\{[^}]*\}/g) ?? [])
          expect(selector, panel.title).toContain('job=~"$job"');
        const perPool = /keypool_(keys|dispenses_total|proxy_\w+)\{[^}]*\}/g;
        for (const selector of expr.match(perPool) ?? []) {
          expect(selector, panel.title).toContain('namespace=~"$namespace"');
          expect(selector, panel.title).toContain('pool=~"$pool"');
        }
        expect(
          metricNames(expr).every((name) => expr.includes(`${name}{`)),
          `${panel.title}: ${expr}`,
        ).toBe(true);
        // Counters and histograms go through rate() over Grafana's interval, never a fixed window.
        expect(expr, panel.title).not.toMatch(/\[\d+[smh]\]/);
      }
    }
  });

  it("shows what the issue asked for", async () => {
    const text = JSON.stringify(await dashboard());
    for (const metric of [
      "keypool_pools",
      "keypool_keys",
      "keypool_dispenses_total",
      "keypool_proxy_requests_total",
      "keypool_proxy_failovers_total",
      "keypool_proxy_added_latency_seconds_bucket",
      "keypool_proxy_upstream_duration_seconds_bucket",
      "keypool_proxy_tokens_total",
      "keypool_proxy_key_wait_seconds_count",
      "keypool_leader",
      "keypool_watch_stale_seconds",
      "keypool_status_writes_total",
      "keypool_status_write_failures_total",
      "keypool_process_resident_memory_bytes",
      "keypool_nodejs_eventloop_lag_p99_seconds",
      "keypool_state_store_up",
    ])
      expect(text).toContain(metric);
  });
});
