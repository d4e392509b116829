// codex-broker admin page, Usage view: usage over time, budgets, turn latency and run queue as
// hand-drawn SVG charts (no library, nothing loaded from elsewhere). admin.js calls
// `window.cbUsage.load(kit)` with its helpers when the view opens; values from the API are
// inserted as text or numbers only.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 640;
  const HEIGHT = 200;
  const PAD = { left: 56, right: 12, top: 12, bottom: 28 };
  const COLORS = ["#1f5fbf", "#b42318", "#1a7f37", "#9a6700", "#6f42c1", "#0e7490", "#c2410c", "#475569"];

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return el;
  }

  function compact(value) {
    if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
    if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
    if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
    return String(Math.round(value * 100) / 100);
  }

  // A round upper bound for the axis: 1, 2 or 5 times a power of ten.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
  }

  // series: [{name, values: [number|null]}], labels: one per x position.
  function chart(id, title, labels, series, options) {
    const opts = options || {};
    const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const top = niceMax(Math.max(0, ...all));
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const n = Math.max(labels.length, 1);
    const step = plotW / n;
    const x = (i) => PAD.left + step * i + step / 2;
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    const root = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      width: "100%",
      role: "img",
      "aria-label": `${title}: ${series.map((s) => s.name).join(", ") || "no data"}`,
      class: "chart-svg",
      "data-points": all.length,
    });
    for (const frac of [0, 0.5, 1]) {
      const gy = y(top * frac);
      root.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: gy, y2: gy, stroke: "#d9dee7", "stroke-width": 1 }));
      root.append(svg("text", { x: PAD.left - 6, y: gy + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6475" }, compact(top * frac)));
    }
    const every = Math.max(1, Math.ceil(labels.length / 6));
    labels.forEach((label, i) => {
      if (i % every === 0 || i === labels.length - 1) {
        root.append(svg("text", { x: x(i), y: HEIGHT - 8, "text-anchor": "middle", "font-size": 11, fill: "#5b6475" }, label));
      }
    });
    series.forEach((s, index) => {
      const color = COLORS[index % COLORS.length];
      if (opts.bars) {
        const barW = Math.max(1, (step * 0.8) / series.length);
        s.values.forEach((v, i) => {
          if (!v) return;
          const left = PAD.left + step * i + step * 0.1 + barW * index;
          root.append(svg("rect", { class: "bar", x: left, y: y(v), width: barW, height: PAD.top + plotH - y(v), fill: color },
            svg("title", {}, `${s.name} ${labels[i]}: ${compact(v)}`)));
        });
        return;
      }
      let d = "";
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (d) root.append(svg("path", { class: "series", d, fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        root.append(svg("circle", { class: "dot", cx: x(i), cy: y(v), r: 2.5, fill: color }, svg("title", {}, `${s.name} ${labels[i]}: ${compact(v)}`)));
      });
    });
    const legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach((s, index) => {
      const item = document.createElement("li");
      const swatch = svg("svg", { width: 12, height: 12, "aria-hidden": "true" }, svg("rect", { width: 12, height: 12, fill: COLORS[index % COLORS.length] }));
      item.append(swatch, document.createTextNode(` ${s.name}`));
      legend.append(item);
    });
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.id = id;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    figure.append(caption, all.length ? root : emptyNote(), legend);
    return figure;
  }

  function emptyNote() {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No data yet.";
    return p;
  }

  function days(points) {
    return points.map((p) => p.day.slice(5));
  }

  function scopeChart(id, title, scope) {
    const series = scope.series.map((s) => ({ name: s.subject, values: s.points.map((p) => p.tokens) }));
    const labels = scope.series.length ? days(scope.series[0].points) : [];
    return chart(id, title, labels, series);
  }

  function clock(seconds) {
    const d = new Date(seconds * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  function budgetTables(kit, budgets) {
    const { h, table } = kit;
    return [
      table("Limits from the environment (BUDGET_LIMITS)", [
        { label: "Limit", get: (r) => h("code", {}, r.limit) },
        { label: "Value", get: (r) => r.value, num: true },
      ], budgets.configured, "No limits configured."),
      table("Admin overrides", [
        { label: "Limit", get: (r) => h("code", {}, r.limit) },
        { label: "Subject", get: (r) => r.subject },
        { label: "Value", get: (r) => (r.value ? r.value : "no limit"), num: true },
        { label: "", get: (r) => h("button", { type: "button", class: "budget-clear", "data-limit": r.limit, "data-subject": r.subject }, "Remove") },
      ], budgets.overrides, "No overrides."),
      table("Exempt", [
        { label: "Scope", get: (r) => r.scope },
        { label: "Subject", get: (r) => r.subject },
        { label: "", get: (r) => h("button", { type: "button", class: "budget-unexempt", "data-scope": r.scope, "data-subject": r.subject }, "Lift") },
      ], budgets.exempt, "Nobody is exempt."),
    ];
  }

  function render(kit, data) {
    const deployment = data.deployment;
    const labels = days(deployment);
    const slots = data.metrics.points;
    const slotLabels = slots.map((p) => clock(p.at_s));
    kit.fill(
      "usage-charts",
      chart("chart-deployment", `Tokens per day, everyone (last ${data.days} days, UTC)`, labels, [
        { name: "tokens", values: deployment.map((p) => p.tokens) },
      ], { bars: true }),
      chart("chart-cost", "Estimated cost per day (USD)", labels, [{ name: "USD", values: deployment.map((p) => p.usd) }], { bars: true }),
      scopeChart("chart-users", "Tokens per day by user (top this month)", data.users),
      scopeChart("chart-channels", "Tokens per day by channel (top this month)", data.channels),
      scopeChart("chart-profiles", "Tokens per day by auth profile", data.profiles),
      chart("chart-latency", "Turn latency, last 24 h (ms, per 5 min)", slotLabels, [
        { name: "mean", values: slots.map((p) => p.latency_ms_mean) },
        { name: "max", values: slots.map((p) => p.latency_ms_max) },
      ]),
      chart("chart-queue", "Run slots, last 24 h (sampled as runs end)", slotLabels, [
        { name: "waiting (mean)", values: slots.map((p) => p.waiting_mean) },
        { name: "waiting (max)", values: slots.map((p) => p.waiting_max) },
        { name: "running (mean)", values: slots.map((p) => p.active_mean) },
      ]),
    );
    kit.fill("usage-budgets", budgetTables(kit, data.budgets));
    for (const button of document.querySelectorAll("#usage-budgets .budget-clear")) {
      button.addEventListener("click", () => {
        const query = new URLSearchParams({ limit: button.dataset.limit, subject: button.dataset.subject });
        kit.act(() => kit.api("DELETE", `/admin/api/budgets?${query}`), `Removed the override of ${button.dataset.limit}.`);
      });
    }
    for (const button of document.querySelectorAll("#usage-budgets .budget-unexempt")) {
      button.addEventListener("click", () => {
        const body = { scope: button.dataset.scope, subject: button.dataset.subject, exempt: false };
        kit.act(() => kit.api("POST", "/admin/api/budgets/exempt", body), `${body.subject} is no longer exempt.`);
      });
    }
  }

  let wired = false;

  function wire(kit) {
    if (wired) return;
    wired = true;
    document.getElementById("budget-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const values = Object.fromEntries(new FormData(form).entries());
      const body = { limit: values.limit, subject: values.subject.trim() || "*", value: Number(values.value) };
      kit.submit(form, () => kit.api("PUT", "/admin/api/budgets", body), `Set ${body.limit} for ${body.subject}.`);
    });
    document.getElementById("exempt-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const values = Object.fromEntries(new FormData(form).entries());
      const body = { scope: values.scope, subject: values.subject.trim(), exempt: true };
      kit.submit(form, () => kit.api("POST", "/admin/api/budgets/exempt", body), `${body.subject} is exempt.`);
    });
  }

  async function load(kit) {
    wire(kit);
    const data = await kit.api("GET", "/admin/api/usage?days=30");
    render(kit, data);
  }

  window.cbUsage = { load, chart };
})();
