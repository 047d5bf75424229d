/**
 * The PromQL tokenizer and /metrics reader the monitoring tests check the dashboard and alerts
 * with (test/support/promql.ts): what they must find, and what they must not mistake for a metric.
 */
import { describe, expect, it } from "vitest";
import { familyOf, labelNames, labelValuesQuery, metricNames, parseExposition } from "../support/promql.ts";

describe("metricNames finds the series an expression reads", () => {
  it.each<[string, string, string[]]>([
    ["a bare name", "keypool_pools", ["keypool_pools"]],
    [
      "a name with matchers holding strings, regexes and Grafana variables",
      'keypool_keys{namespace=~"$namespace", state!="Draining"}',
      ["keypool_keys"],
    ],
    [
      "aggregations with by/without before and after, and a binary operator",
      'max by (namespace, pool) (100 * sum without (state) (keypool_keys{state=~"Healthy|Degraded"}) / sum(keypool_keys) by (pod))',
      ["keypool_keys"],
    ],
    [
      "a histogram's buckets inside histogram_quantile with a Grafana range",
      'histogram_quantile(0.99, sum by (le) (rate(keypool_proxy_added_latency_seconds_bucket{pool=~"$pool"}[$__rate_interval])))',
      ["keypool_proxy_added_latency_seconds_bucket"],
    ],
    [
      "a subquery, a number with an exponent, a duration offset and a comment",
      "avg_over_time((a_total / b_total)[1h:1m] offset 1h30m) > 1e-3 # not_a_metric here",
      ["a_total", "b_total"],
    ],
    [
      "set operators, on/group_left lists, bool and vector()",
      "x > bool 0 and on (namespace) group_left (pod) y unless z or vector(0)",
      ["x", "y", "z"],
    ],
    [
      "label_replace's strings are not names",
      'label_replace(up_metric, "dst", "$1", "src", "(keypool_.*)")',
      ["up_metric"],
    ],
    ["a name with colons (a recording rule)", "keypool:usable_keys:max > 0", ["keypool:usable_keys:max"]],
  ])("%s", (_name, expr, expected) => {
    expect(metricNames(expr)).toEqual(expected);
  });
});

describe("labelNames finds the labels an expression matches on or groups by", () => {
  it.each<[string, string, string[]]>([
    [
      "matchers and by lists",
      'sum by (namespace, pool, le) (rate(x_bucket{job=~"$job", state!="a,b=c"}[5m]))',
      ["job", "le", "namespace", "pool", "state"],
    ],
    [
      "on/ignoring/group_left lists",
      "a / on (pod) group_left (state) b * ignoring (le) c",
      ["le", "pod", "state"],
    ],
    ["nothing", "keypool_pools", []],
  ])("%s", (_name, expr, expected) => {
    expect(labelNames(expr)).toEqual(expected);
  });
});

describe("labelValuesQuery splits a Grafana label_values() variable query", () => {
  it.each<[string, ReturnType<typeof labelValuesQuery>]>([
    ["label_values(keypool_leader, job)", { selector: "keypool_leader", label: "job" }],
    [
      'label_values(keypool_keys{job=~"$job", namespace=~"$namespace"}, pool)',
      { selector: 'keypool_keys{job=~"$job", namespace=~"$namespace"}', label: "pool" },
    ],
    ["query_result(up)", undefined],
  ])("%s", (query, expected) => {
    expect(labelValuesQuery(query)).toEqual(expected);
  });
});

describe("parseExposition and familyOf", () => {
  const page = [
    "# HELP keypool_keys Keys per pool and state.",
    "# TYPE keypool_keys gauge",
    'keypool_keys{namespace="ai",pool="p",state="Healthy"} 2',
    "# HELP keypool_wait_seconds Waits.",
    "# TYPE keypool_wait_seconds histogram",
    "# HELP keypool_empty_total Nothing yet.",
    "# TYPE keypool_empty_total counter",
    "# HELP keypool_lat_seconds Latency.",
    "# TYPE keypool_lat_seconds histogram",
    'keypool_lat_seconds_bucket{le="0.1",pool="p"} 1',
    'keypool_lat_seconds_sum{pool="p"} 0.05',
    'keypool_lat_seconds_count{pool="p"} 1',
    "",
  ].join("\n");
  const families = parseExposition(page);

  it("reads every family, also those without samples yet", () => {
    expect([...families.keys()].sort()).toEqual([
      "keypool_empty_total",
      "keypool_keys",
      "keypool_lat_seconds",
      "keypool_wait_seconds",
    ]);
    expect(families.get("keypool_keys")).toEqual({
      type: "gauge",
      samples: [{ name: "keypool_keys", labels: ["namespace", "pool", "state"] }],
    });
    expect(families.get("keypool_lat_seconds")?.samples.map((s) => s.name)).toEqual([
      "keypool_lat_seconds_bucket",
      "keypool_lat_seconds_sum",
      "keypool_lat_seconds_count",
    ]);
  });

  it.each<[string, string | undefined]>([
    ["keypool_keys", "keypool_keys"],
    ["keypool_lat_seconds_bucket", "keypool_lat_seconds"],
    ["keypool_wait_seconds_count", "keypool_wait_seconds"],
    ["keypool_empty_total", "keypool_empty_total"],
    ["keypool_keys_bucket", undefined], // a gauge has no buckets
    ["keypool_missing", undefined],
  ])("%s belongs to %s", (name, family) => {
    expect(familyOf(families, name)?.name).toBe(family);
  });
});
