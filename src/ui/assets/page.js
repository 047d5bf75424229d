/* global document, window, EventSource, uPlot */
/**
 * The KeyPool status page: renders the `snapshot` and `history` events of GET /ui/events (see
 * README.md, "Status page"). Plain JavaScript, no build step. Every string from the server goes
 * through esc() before it reaches innerHTML.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const view = { pools: [], transitions: [], history: {} };
  const charts = new Map(); // pool key -> {usage, cost} uPlot instances
  const rendered = new WeakMap(); // element -> the HTML it was last given
  let offsetMs = 0; // the server's clock minus this browser's

  // ---- Formatting -------------------------------------------------------------------------
  const serverNow = () => Date.now() + offsetMs;
  const timeOf = (v) => (typeof v === "number" ? v : typeof v === "string" ? Date.parse(v) : NaN);
  const isNum = (n) => typeof n === "number" && Number.isFinite(n);
  const num = (n, digits = 0) => (isNum(n) ? n.toLocaleString("en", { maximumFractionDigits: digits }) : "–");
  const usd = (n) =>
    isNum(n)
      ? `$${n.toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: n < 1 ? 4 : 2 })}`
      : "–";
  const poolKey = (p) => `${p.pool.namespace}/${p.pool.name}`;
  const slug = (key) => `pool-${key.replace(/[^A-Za-z0-9-]/g, "_")}`;

  /** 75 s -> "1 m 15 s"; 2 h 3 m -> "2 h 03 m". */
  function duration(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (h > 0) return `${h} h ${pad(m)} m`;
    if (m > 0) return `${m} m ${pad(s % 60)} s`;
    return `${s} s`;
  }

  /** A time as text, and as a <time> the ticker keeps counting down ("in ...") or up ("... ago"). */
  function when(v, kind) {
    const t = timeOf(v);
    if (Number.isNaN(t)) return "–";
    const iso = new Date(t).toISOString();
    return `<time class="${kind}" datetime="${iso}" title="${esc(new Date(t).toLocaleString())}"></time>`;
  }
  const countdown = (v) => when(v, "countdown");
  const ago = (v) => when(v, "ago");

  function tick() {
    const now = serverNow();
    for (const el of document.querySelectorAll("time.countdown")) {
      const left = Date.parse(el.dateTime) - now;
      el.textContent = left > 0 ? `in ${duration(left)}` : "now";
    }
    for (const el of document.querySelectorAll("time.ago")) {
      el.textContent = `${duration(now - Date.parse(el.dateTime))} ago`;
    }
  }

  /** Replaces `el`'s content when it changed, keeping the focus on the element that had it. */
  function setHTML(el, html) {
    if (rendered.get(el) === html) return;
    const focused = el.contains(document.activeElement) ? document.activeElement.id : "";
    el.innerHTML = html;
    rendered.set(el, html);
    if (focused) $(focused)?.focus();
  }

  function table(caption, heads, rows) {
    const th = heads.map((h) => `<th scope="col">${h}</th>`).join("");
    const body = rows.map((cells) => `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
    return `<table><caption>${caption}</caption><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
  }

  const state = (s) => `<span class="state state-${esc(s)}">${esc(s)}</span>`;
  const states = (byState) =>
    Object.entries(byState ?? {})
      .map(([s, n]) => `${state(s)} ${num(n)}`)
      .join(" ") || "–";
  const forecast = (f) =>
    f
      ? `${esc(f.limit)} runs out ${countdown(f.exhaustsAt)}${f.beforeReset === false ? " (after its reset)" : ""}`
      : "–";

  // ---- Sections ---------------------------------------------------------------------------
  function renderPools() {
    if (view.pools.length === 0) {
      setHTML($("pools"), `<p class="muted">No pools.</p>`);
      return;
    }
    const rows = view.pools.map((p) => {
      const key = poolKey(p);
      const daily = p.budget?.daily;
      return [
        `<a id="link-${slug(key)}" href="#${slug(key)}">${esc(key)}</a>`,
        esc(p.provider),
        esc(p.strategy),
        `${num(p.keys.usable)} / ${num(p.keys.total)}`,
        states(p.keys.byState),
        usd(p.costTodayUSD),
        usd(p.costThisMonthUSD),
        daily ? `${usd(daily.spentUSD)} of ${usd(daily.limitUSD)}` : "–",
        forecast(p.forecast),
      ];
    });
    const heads = ["Pool", "Provider", "Strategy", "Usable / total", "Keys by state", "Cost today"];
    heads.push("Cost this month", "Daily budget", "Forecast");
    setHTML($("pools"), table("Every pool this process serves", heads, rows));
  }

  function renderAlerts() {
    const alerts = view.pools.flatMap((p) => (p.alerts ?? []).map((a) => ({ ...a, pool: poolKey(p) })));
    alerts.sort((a, b) => timeOf(b.at) - timeOf(a.at));
    const html = alerts.length
      ? `<div class="table-scroll" id="alerts-scroll" role="region" aria-label="Alerts" tabindex="0">${table(
          "Alerts of every pool, newest first",
          ["When", "Pool", "Key id", "Type", "Message"],
          alerts.map((a) => [
            ago(a.at),
            esc(a.pool),
            `<code>${esc(a.keyId ?? "–")}</code>`,
            esc(a.type),
            esc(a.message),
          ]),
        )}</div>`
      : `<p class="muted">None.</p>`;
    setHTML($("alerts"), html);
  }

  function renderTransitions() {
    const html = view.transitions.length
      ? `<div class="table-scroll" id="transitions-scroll" role="region" aria-label="Recent transitions" tabindex="0">${table(
          `The last ${view.transitions.length} key state changes, newest first`,
          ["When", "Pool", "Key id", "Masked", "Change", "Reason", "Until"],
          view.transitions.map((t) => [
            ago(t.at),
            esc(t.pool),
            `<code>${esc(t.keyId)}</code>`,
            `<code>${esc(t.masked)}</code>`,
            `${state(t.from)} → ${state(t.to)}`,
            esc(t.reason),
            t.until ? countdown(t.until) : "–",
          ]),
        )}</div>`
      : `<p class="muted">None yet.</p>`;
    setHTML($("transitions"), html);
  }

  function budgetLine(label, b) {
    if (!b) return "";
    const meter = `<meter aria-label="${label} spent" min="0" max="${esc(b.limitUSD)}" value="${esc(b.spentUSD)}" high="${esc(b.limitUSD * 0.8)}"></meter>`;
    return `<dt>${label}</dt><dd>${meter} ${usd(b.spentUSD)} of ${usd(b.limitUSD)}, resets ${countdown(b.resetsAt)}</dd>`;
  }

  function summary(p) {
    const rows = [
      `<dt>Provider</dt><dd>${esc(p.provider)}, ${esc(p.strategy)}</dd>`,
      `<dt>Usable keys</dt><dd>${num(p.keys.usable)} of ${num(p.keys.total)}</dd>`,
      `<dt>Keys by state</dt><dd>${states(p.keys.byState)}</dd>`,
    ];
    if (isNum(p.costTodayUSD) || isNum(p.costThisMonthUSD))
      rows.push(`<dt>Cost</dt><dd>${usd(p.costTodayUSD)} today, ${usd(p.costThisMonthUSD)} this month</dd>`);
    rows.push(budgetLine("Daily budget", p.budget?.daily), budgetLine("Monthly budget", p.budget?.monthly));
    if (p.forecast) rows.push(`<dt>Forecast</dt><dd>${forecast(p.forecast)}</dd>`);
    return `<dl class="summary">${rows.join("")}</dl>`;
  }

  function keysTable(p) {
    const rows = p.keyStatuses.map((k) => [
      `<code>${esc(k.id)}</code>`,
      `<code>${esc(k.masked)}</code>`,
      state(k.state),
      k.until ? countdown(k.until) : "–",
      esc(k.reason ?? (k.state === "Healthy" ? "" : k.lastError?.reason)) || "–",
      num(k.healthScore, 2),
      num(k.requests),
      num(k.errors),
      num(k.inFlight),
      isNum(k.latencyMs) ? `${num(k.latencyMs)} ms` : "–",
      k.lastUsed ? ago(k.lastUsed) : "–",
      usd(k.costTodayUSD),
      usd(k.costThisMonthUSD),
      forecast(k.forecast),
    ]);
    const heads = ["Key id", "Masked", "State", "Recovers", "Reason", "Health", "Requests", "Errors"];
    heads.push("In flight", "Latency", "Last used", "Cost today", "Cost this month", "Forecast");
    return table(`Keys of ${esc(poolKey(p))}`, heads, rows);
  }

  function modelsTable(p) {
    if (!p.costByModel?.length) return "";
    const rows = p.costByModel.map((m) => [esc(m.model), usd(m.costTodayUSD), usd(m.costThisMonthUSD)]);
    return table(`Cost of ${esc(poolKey(p))} by model`, ["Model", "Today", "This month"], rows);
  }

  /** One section per pool, made once (its charts live on) and filled on every snapshot. */
  function poolSection(key) {
    const id = slug(key);
    let section = $(id);
    if (section) return section;
    section = document.createElement("section");
    section.id = id;
    section.className = "pool";
    section.setAttribute("aria-labelledby", `${id}-h`);
    section.innerHTML = `<h2 id="${id}-h">Pool ${esc(key)}</h2>
      <div data-part="summary"></div>
      <h3>Keys</h3>
      <div class="table-scroll" id="${id}-keys" role="region" aria-label="Keys of ${esc(key)}" tabindex="0" data-part="keys"></div>
      <div class="table-scroll" data-part="models"></div>
      <h3>Usage, last hour</h3>
      <div class="charts">
        <figure><figcaption>Requests and errors per minute <span class="muted" data-part="usage-note"></span></figcaption><div class="chart" data-part="usage"></div></figure>
        <figure data-part="cost-figure" hidden><figcaption>Cost per minute (USD)</figcaption><div class="chart" data-part="cost"></div></figure>
      </div>`;
    return section;
  }
  const part = (section, name) => section.querySelector(`[data-part="${name}"]`);

  function renderDetails() {
    const container = $("pool-details");
    const keys = new Set(view.pools.map(poolKey));
    for (const [key, c] of charts) {
      if (keys.has(key)) continue;
      c.usage?.destroy();
      c.cost?.destroy();
      charts.delete(key);
    }
    for (const section of [...container.children]) if (!keys.has(section.dataset.pool)) section.remove();
    let previous = null;
    for (const p of view.pools) {
      const key = poolKey(p);
      const section = poolSection(key);
      section.dataset.pool = key;
      const expected = previous ? previous.nextSibling : container.firstChild;
      if (section !== expected) container.insertBefore(section, expected);
      previous = section;
      setHTML(part(section, "summary"), summary(p));
      setHTML(part(section, "keys"), keysTable(p));
      setHTML(part(section, "models"), modelsTable(p));
    }
    renderCharts();
  }

  // ---- Charts (uPlot) -----------------------------------------------------------------------
  const COLORS = { requests: "#2563eb", errors: "#dc2626", cost: "#059669" };

  const hourMinute = (s) => new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function chartFor(el, series, data) {
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      scales: {
        // Always the last hour up to the newest point, and rates from zero.
        x: { time: true, range: (_u, min, max) => (isNum(max) ? [max - 3600, max] : [min, max]) },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))],
      axes: [{ values: (_u, splits) => splits.map(hourMinute) }, { size: 56 }],
    };
    return new uPlot(opts, data, el);
  }

  function renderCharts() {
    if (typeof uPlot !== "function") return;
    for (const p of view.pools) {
      const key = poolKey(p);
      const section = $(slug(key));
      if (!section) continue;
      const h = view.history[key] ?? { t: [], requestsPerMin: [], errorsPerMin: [] };
      const c = charts.get(key) ?? {};
      charts.set(key, c);
      const usage = [h.t, h.requestsPerMin, h.errorsPerMin];
      if (c.usage) c.usage.setData(usage);
      else
        c.usage = chartFor(
          part(section, "usage"),
          [
            ["Requests/min", COLORS.requests],
            ["Errors/min", COLORS.errors],
          ],
          usage,
        );
      const last = h.t.length - 1;
      part(section, "usage-note").textContent =
        last < 0
          ? "(collecting: a point every 10 s)"
          : `(latest: ${num(h.requestsPerMin[last], 1)} requests/min, ${num(h.errorsPerMin[last], 1)} errors/min)`;
      if (!h.costPerMin) continue;
      part(section, "cost-figure").hidden = false;
      const cost = [h.t, h.costPerMin];
      if (c.cost) c.cost.setData(cost);
      else c.cost = chartFor(part(section, "cost"), [["USD/min", COLORS.cost]], cost);
    }
  }

  function resizeCharts() {
    for (const c of charts.values()) {
      for (const chart of [c.usage, c.cost]) {
        const el = chart?.root.parentElement;
        if (el && el.clientWidth > 0) chart.setSize({ width: Math.max(200, el.clientWidth), height: 180 });
      }
    }
  }

  // ---- Events -----------------------------------------------------------------------------
  function setConnection(text) {
    if ($("connection").textContent !== text) $("connection").textContent = text;
  }

  function onSnapshot(event) {
    const s = JSON.parse(event.data);
    offsetMs = Date.parse(s.at) - Date.now();
    view.pools = s.pools ?? [];
    view.transitions = s.transitions ?? [];
    renderPools();
    renderAlerts();
    renderDetails();
    renderTransitions();
    tick();
    setConnection("Live");
    $("updated").textContent = `updated ${new Date(Date.parse(s.at)).toLocaleTimeString()}`;
  }

  function onHistory(event) {
    view.history = JSON.parse(event.data).pools ?? {};
    renderCharts();
  }

  function connect() {
    const source = new EventSource("events");
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("history", onHistory);
    source.addEventListener("open", () => setConnection("Live"));
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        setConnection("Reconnecting…");
        return;
      }
      // Refused (too many open streams, or the server is stopping): try again later.
      setConnection("Disconnected; trying again in 10 s");
      window.setTimeout(connect, 10_000);
    });
  }

  let resizing = 0;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(resizeCharts, 150);
  });
  window.setInterval(tick, 1000);
  connect();
})();
