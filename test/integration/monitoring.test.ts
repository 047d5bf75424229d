/**
 * The monitoring files against the real things:
 * - promtool (built from the Prometheus module, test/support/promtool.ts) checks the rules file
 *   and runs its unit tests (test/fixtures/monitoring/rules.test.yaml: every alert fires in one
 *   case and stays quiet in another);
 * - a real `keypool operator` (against the test control plane, on a real Redis state store, with
 *   pools served by the fake OpenAI) is given a dispense and proxied calls that fail over and wait
 *   for a key, and its /metrics must hold every metric family the dashboard's queries and
 *   variables and the alerts' expressions read (# HELP/# TYPE lines count for families without a
 *   sample yet; x_bucket/_sum/_count read histogram x), and their series must carry every label
 *   the queries match on or group by (target labels such as pod and job come from Prometheus);
 * - the chart (built with helm, test/support/helm.ts) renders the same rule groups, with
 *   monitoring.prometheusRule.usableKeysThresholdPercent in place of 50, and the dashboard.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DASHBOARD_PATH, RULES_PATH } from "../../scripts/generate-monitoring.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/index.ts";
import { installKeyPoolCrd } from "../support/crd.ts";
import { ensureHelm, renderedObjects, runHelm } from "../support/helm.ts";
import { condition, poolApi } from "../support/keypools.ts";
import { adminKubeConfig, createTestNamespace, eventually } from "../support/kube.ts";
import { localOperatorArgs, type OperatorProcess, startOperator } from "../support/operator-process.ts";
import {
  familyOf,
  labelNames,
  labelValuesQuery,
  type MetricFamily,
  metricNames,
  parseExposition,
} from "../support/promql.ts";
import { ensurePromtool, PROMETHEUS_VERSION, prometheusRelease, runPromtool } from "../support/promtool.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const RULES_TEST = join(ROOT, "test/fixtures/monitoring/rules.test.yaml");
const CHART = join(ROOT, "charts/keypool-operator");

/** Labels Prometheus puts on every scraped series (Prometheus Operator's ServiceMonitor targets). */
const TARGET_LABELS = new Set(["job", "instance", "pod", "namespace", "service", "endpoint", "container"]);

const K = {
  limited: "sk-test-monitoring-limited-0001",
  healthy: "sk-test-monitoring-healthy-0002",
  brief: "sk-test-monitoring-brief-00003",
};

const kc = adminKubeConfig();
const api = poolApi(kc);
let promtool: string;
let ns: string;
let redis: RedisServer;
let fake: FakeProvider;
let operator: OperatorProcess;
let metricsText: string;
let families: Map<string, MetricFamily>;

interface Dashboard {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}
interface RulesFile {
  groups: Array<{
    name: string;
    rules: Array<{ alert?: string; expr: string; annotations?: Record<string, string> }>;
  }>;
}

/** Every query of the dashboard: [where, PromQL], the variables' label_values() selectors too. */
async function dashboardQueries(): Promise<Array<[string, string, string[]]>> {
  const dashboard = JSON.parse(await readFile(DASHBOARD_PATH, "utf8")) as Dashboard;
  const queries: Array<[string, string, string[]]> = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) queries.push([`panel "${panel.title}"`, target.expr, []]);
  }
  for (const variable of dashboard.templating.list.filter((v) => v.type === "query")) {
    const query = (variable.query as { query: string }).query;
    const split = labelValuesQuery(query);
    if (!split) throw new Error(`variable ${variable.name}: not a label_values() query: ${query}`);
    queries.push([`variable $${variable.name}`, split.selector, [split.label]]);
  }
  return queries;
}

async function ruleQueries(): Promise<Array<[string, string, string[]]>> {
  const rules = parse(await readFile(RULES_PATH, "utf8")) as RulesFile;
  return rules.groups.flatMap((g) =>
    g.rules.map((r): [string, string, string[]] => [`alert ${r.alert}`, r.expr, []]),
  );
}

/** What a query reads that the operator does not export: missing families and unknown labels. */
function problemsOf(where: string, expr: string, extraLabels: string[]): string[] {
  const problems: string[] = [];
  const found = metricNames(expr).map((name) => ({ name, hit: familyOf(families, name) }));
  if (found.length === 0) problems.push(`${where}: no metric in ${expr}`);
  for (const { name, hit } of found) if (!hit) problems.push(`${where}: ${name} is not exported`);
  const samples = found.flatMap(({ name, hit }) => hit?.family.samples.filter((s) => s.name === name) ?? []);
  for (const label of [...labelNames(expr), ...extraLabels]) {
    if (TARGET_LABELS.has(label) && label !== "namespace") continue;
    // namespace is a target label too, but on per-pool series it must be the operator's own.
    if (label === "namespace" && samples.every((s) => !s.labels.includes("pool"))) continue;
    if (!samples.some((s) => s.labels.includes(label)))
      problems.push(`${where}: no series of ${found.map((f) => f.name).join(", ")} carries label ${label}`);
  }
  return problems;
}

async function chat(pool: string) {
  const res = await fetch(`${await operator.dispenserUrl()}/proxy/${ns}/${pool}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello" }] }),
  });
  await res.text();
  return res;
}

beforeAll(async () => {
  const started = Date.now();
  promtool = await ensurePromtool();
  console.log(`promtool ${PROMETHEUS_VERSION} ready in ${Math.round((Date.now() - started) / 1000)} s`);

  await installKeyPoolCrd();
  ns = await createTestNamespace(kc, "monitoring");
  redis = await startRedis();
  fake = await startFakeProvider("openai", {
    [K.limited]: { kind: "rateLimited", retryAfterSeconds: 60 },
    [K.healthy]: { kind: "valid" },
    [K.brief]: { kind: "valid" },
  });
  const pools: Array<[string, Record<string, string>, Record<string, unknown>]> = [
    // RoundRobin hands out the rate-limited key first (it joined first): a failover.
    ["failover", { a: K.limited, b: K.healthy }, { strategy: "RoundRobin" }],
    // Its only key rests 1 s: the call waits for it.
    ["brief", { a: K.brief }, { proxy: { maxWait: "10s" } }],
  ];
  for (const [name, keys, spec] of pools) {
    await api.putSecret(ns, `${name}-keys`, keys);
    await api.createPool(ns, name, {
      provider: "openai",
      baseURL: fake.url,
      keys: [{ secretRef: { name: `${name}-keys` } }],
      ...spec,
    });
  }
  operator = startOperator([...localOperatorArgs(inject("kubeconfig"), ns), "--state-store", redis.url]);
  await operator.waitForLog((l) => l.msg === "operator running");
  for (const [name] of pools)
    await api.waitForPool(ns, name, (p) => condition(p, "Ready")?.status === "True");

  // Traffic, so the per-pool series exist: a dispense, a failover, a wait for a key.
  expect((await chat("failover")).headers.get("x-keypool-attempts")).toBe("2");
  expect((await fetch(`${await operator.dispenserUrl()}/v1/pools/${ns}/failover/key`)).status).toBe(200);
  fake.setKey(K.brief, { kind: "rateLimited", retryAfterSeconds: 1 });
  expect((await chat("brief")).status).toBe(200);

  const probes = await operator.probesUrl();
  metricsText = await eventually(async () => {
    const text = await (await fetch(`${probes}/metrics`)).text();
    // The leader's status writes of both pools are in.
    return /^keypool_status_writes_total [1-9]/m.test(text) && text;
  }, 30_000);
  families = parseExposition(metricsText);
}, 900_000);

afterAll(async () => {
  if (operator) expect(await operator.stop()).toBe(0);
  await fake?.close();
  await redis?.stop();
});

describe("promtool", () => {
  it(`is Prometheus ${prometheusRelease(PROMETHEUS_VERSION)}'s`, async () => {
    const res = await runPromtool(promtool, ["--version"]);
    expect(res.stdout + res.stderr).toContain(`promtool, version ${prometheusRelease(PROMETHEUS_VERSION)}`);
  });

  it("check rules: the rules file is valid and lint-clean", async () => {
    const res = await runPromtool(promtool, ["check", "rules", "--lint=all", "--lint-fatal", RULES_PATH]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain("SUCCESS: 9 rules found");
  });

  it("test rules: every alert fires where it should and stays quiet where it should", async () => {
    const res = await runPromtool(promtool, ["test", "rules", RULES_TEST]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain("SUCCESS");
  });
});

describe("the operator's /metrics", () => {
  it("has every metric and label the dashboard's queries and variables read", async () => {
    const problems = (await dashboardQueries()).flatMap(([where, expr, labels]) =>
      problemsOf(where, expr, labels),
    );
    expect(problems).toEqual([]);
  });

  it("has every metric and label the alerts read", async () => {
    const problems = (await ruleQueries()).flatMap(([where, expr, labels]) =>
      problemsOf(where, expr, labels),
    );
    expect(problems).toEqual([]);
  });

  it("has samples for the per-pool series the traffic made (the checks above saw real labels)", () => {
    for (const sample of [
      `keypool_keys{namespace="${ns}",pool="failover",state="RateLimited"} 1`,
      `keypool_dispenses_total{namespace="${ns}",pool="failover",outcome="dispensed"} 1`,
      `keypool_proxy_failovers_total{namespace="${ns}",pool="failover"} 1`,
      "keypool_state_store_up 1",
      "keypool_leader 1",
      "keypool_status_write_failures_total 0",
    ])
      expect(metricsText).toContain(sample);
    expect(metricsText).toMatch(
      new RegExp(`^keypool_proxy_key_wait_seconds_count\\{namespace="${ns}",pool="brief"\\} [1-9]`, "m"),
    );
    expect(metricsText).toMatch(
      new RegExp(`^keypool_proxy_tokens_total\\{namespace="${ns}",pool="failover"\\} [1-9]`, "m"),
    );
  });

  it("passes promtool check metrics, but for prom-client's own gauges named *_total", async () => {
    const res = await runPromtool(promtool, ["check", "metrics"], { input: metricsText });
    // prom-client's default metrics nodejs_active_{handles,requests,resources}_total are gauges.
    const findings = (res.stdout + res.stderr)
      .split("\n")
      .filter(
        (line) => line.trim() && !/^keypool_nodejs_active_(handles|requests|resources)_total /.test(line),
      );
    expect(findings).toEqual([]);
  });
});

describe("the Helm chart", () => {
  let helm: string;
  beforeAll(async () => {
    helm = await ensureHelm();
  }, 900_000);

  async function render(sets: string[]) {
    const res = await runHelm(helm, [
      "template",
      "kp",
      CHART,
      "--namespace",
      "ai-system",
      ...sets.flatMap((s) => ["--set", s]),
    ]);
    expect(res.code, res.stderr).toBe(0);
    return renderedObjects(res.stdout);
  }

  it("renders the rules file's groups, with usableKeysThresholdPercent in place of 50, and promtool takes them", async () => {
    const objects = await render([
      "monitoring.prometheusRule.enabled=true",
      "monitoring.prometheusRule.usableKeysThresholdPercent=30",
      "monitoring.prometheusRule.labels.release=prometheus",
    ]);
    const rule = objects.find((o) => o.source === "templates/prometheusrule.yaml")?.object as unknown as {
      metadata: { name: string; namespace: string; labels: Record<string, string> };
      spec: RulesFile;
    };
    expect(rule.metadata).toMatchObject({
      name: "kp-keypool-operator",
      namespace: "ai-system",
      labels: { release: "prometheus" },
    });
    const expected = parse(await readFile(RULES_PATH, "utf8")) as RulesFile;
    for (const r of expected.groups.flatMap((g) => g.rules)) {
      if (r.alert !== "KeyPoolUsableKeysLow") continue;
      r.expr = r.expr.replace("< 50", "< 30");
      for (const [k, v] of Object.entries(r.annotations ?? {}))
        (r.annotations ?? {})[k] = v.replaceAll("50%", "30%");
    }
    expect(rule.spec).toEqual(expected);

    const dir = await mkdtemp(join(tmpdir(), "keypool-rules-"));
    try {
      const file = join(dir, "chart.rules.yaml");
      await writeFile(file, stringify(rule.spec));
      const res = await runPromtool(promtool, ["check", "rules", "--lint=all", "--lint-fatal", file]);
      expect(res.code, res.stdout + res.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("renders the dashboard in a ConfigMap for Grafana's sidecar, in the namespace asked for", async () => {
    const objects = await render([
      "monitoring.dashboard.enabled=true",
      "monitoring.dashboard.namespace=grafana",
    ]);
    const map = objects.find((o) => o.source === "templates/dashboard-configmap.yaml")?.object as unknown as {
      metadata: { namespace: string; labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(map.metadata.namespace).toBe("grafana");
    expect(map.metadata.labels.grafana_dashboard).toBe("1");
    expect(JSON.parse(map.data["keypool-operator.json"] ?? "")).toEqual(
      JSON.parse(await readFile(DASHBOARD_PATH, "utf8")),
    );
  });

  it("renders neither by default", async () => {
    const sources = (await render([])).map((o) => o.source);
    expect(sources).not.toContain("templates/prometheusrule.yaml");
    expect(sources).not.toContain("templates/dashboard-configmap.yaml");
  });
});
