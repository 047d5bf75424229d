/**
 * Just enough of PromQL and of the Prometheus text format for the monitoring tests to ask "does
 * every query of the dashboard and the alerts read metrics the operator really exports, by labels
 * its series really carry?" (test/integration/monitoring.test.ts). Not a parser: a tokenizer that
 * drops what cannot be a metric name (strings, comments, label matchers, ranges, numbers,
 * durations, Grafana variables, function and aggregation names, keywords) and keeps the rest.
 * Its cases are in test/unit/monitoring-promql.test.ts.
 */

/** Words PromQL reserves that are not followed by "(" (functions and aggregations always are). */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "atan2",
  "bool",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "start",
  "end",
  "inf",
  "nan",
]);

/** 0x1f, 42, 0.25, 1e-3, and durations: 90s, 1h30m, 250ms. */
const NUMBER_OR_DURATION =
  /(?<![\w:.])(?:0x[0-9a-f]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)/gi;

/** Clauses whose parenthesised list names labels, not series. */
const LABEL_LISTS = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** `expr` without string literals and comments (the rest keeps its positions' meaning). */
function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/#[^\n]*/g, " ");
}

/** The metric names a PromQL expression (or a Grafana query holding `$variables`) reads. */
export function metricNames(expr: string): string[] {
  const text = withoutStrings(expr)
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries: [5m], [1h:1m], [$__rate_interval]
    .replace(LABEL_LISTS, " ")
    .replace(/\$\{[^}]*\}|\$\w+/g, " ") // Grafana variables
    .replace(NUMBER_OR_DURATION, " ");
  const names = new Set<string>();
  for (const match of text.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const word = match[0];
    const rest = text.slice((match.index ?? 0) + word.length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

/** The label names an expression matches on (`{pool="a"}`) or groups by (`by (pool)`, `on (pod)`). */
export function labelNames(expr: string): string[] {
  const text = withoutStrings(expr);
  const names = new Set<string>();
  for (const [, matchers = ""] of text.matchAll(/\{([^}]*)\}/g)) {
    for (const [, name = ""] of matchers.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) names.add(name);
  }
  for (const [, , list = ""] of text.matchAll(LABEL_LISTS)) {
    for (const name of list.split(",").map((s) => s.trim())) if (name) names.add(name);
  }
  names.delete("__name__");
  return [...names].sort();
}

/** A Grafana query variable's `label_values(<selector>, <label>)`, split; undefined for other queries. */
export function labelValuesQuery(query: string): { selector: string; label: string } | undefined {
  const match = /^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_]\w*)\s*\)\s*$/s.exec(query);
  return match ? { selector: match[1] as string, label: match[2] as string } : undefined;
}

/** One metric family of a /metrics page: its TYPE and the label names each sample carries. */
export interface MetricFamily {
  type: string;
  /** Per sample (name with _bucket/_sum/_count for histograms), its label names. */
  samples: Array<{ name: string; labels: string[] }>;
}

/** The families of a Prometheus text exposition, by name (from # HELP/# TYPE lines and samples). */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { type: "untyped", samples: [] }));
    return f;
  };
  let current: string | undefined;
  for (const line of text.split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+)(?: (\S+))?/.exec(line);
    if (meta) {
      current = meta[2] as string;
      if (meta[1] === "TYPE") family(current).type = meta[3] ?? "untyped";
      else family(current);
      continue;
    }
    const sample = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!sample) continue;
    const name = sample[1] as string;
    const labels = [...(sample[2] ?? "").matchAll(/([A-Za-z_]\w*)="(?:[^"\\]|\\.)*"/g)].map(
      (m) => m[1] as string,
    );
    const owner = current && (name === current || name.startsWith(`${current}_`)) ? current : name;
    family(owner).samples.push({ name, labels });
  }
  return families;
}

const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

/**
 * The family a metric name of a query belongs to: itself, or for `x_bucket`, `x_sum`, `x_count`
 * the histogram (or summary) `x`. Undefined when the page has no such family.
 */
export function familyOf(
  families: ReadonlyMap<string, MetricFamily>,
  name: string,
): { name: string; family: MetricFamily } | undefined {
  const own = families.get(name);
  if (own) return { name, family: own };
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const family = families.get(base);
    // _bucket only exists for histograms; _sum and _count for summaries too.
    if (family && (family.type === "histogram" || (family.type === "summary" && suffix !== "_bucket")))
      return { name: base, family };
  }
  return undefined;
}
