// The status view: the tenant's last hour from GET /api/status, a throughput chart, checks and advice.

import { api } from "./api.js";
import { clock, h, seconds, svg } from "./dom.js";

const REFRESH_MS = 15000;

function figure(label, value, note) {
  return h("div", { class: "figure" }, h("dt", {}, label), h("dd", {}, String(value)), note ? h("dd", { class: "muted" }, note) : null);
}

/** Stacked bars per minute (completed under failed), drawn as inline SVG with a text alternative. */
export function throughputChart(t) {
  const n = t.completed.length;
  const totals = t.completed.map((c, i) => c + t.failed[i]);
  const top = Math.max(1, ...totals);
  const width = 600;
  const height = 160;
  const pad = { left: 0, bottom: 2, top: 4 };
  const plotH = height - pad.bottom - pad.top;
  const barW = (width - pad.left) / n;
  const done = t.completed.reduce((a, b) => a + b, 0);
  const failed = t.failed.reduce((a, b) => a + b, 0);
  const busiest = Math.max(...totals);
  const title = svg("title", { id: "chart-title" }, "Jobs finished per minute, last hour");
  const desc = svg("desc", { id: "chart-desc" },
    `${done} completed and ${failed} failed in the last ${n} minutes; the busiest minute had ${busiest}.`);
  const bars = [];
  totals.forEach((total, i) => {
    const x = pad.left + i * barW + 1;
    const hDone = (t.completed[i] / top) * plotH;
    const hFail = (t.failed[i] / top) * plotH;
    const base = pad.top + plotH;
    if (t.completed[i]) bars.push(svg("rect", { class: "bar-done", x, y: base - hDone, width: Math.max(1, barW - 2), height: hDone }));
    if (t.failed[i]) bars.push(svg("rect", { class: "bar-failed", x, y: base - hDone - hFail, width: Math.max(1, barW - 2), height: hFail }));
  });
  // Labels are HTML around the SVG: the SVG stretches to any width, which would distort its text.
  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title chart-desc",
    preserveAspectRatio: "none",
  },
  title, desc,
  svg("line", { class: "axis", x1: 0, y1: pad.top + plotH, x2: width, y2: pad.top + plotH }),
  ...bars);
  return h("figure", { class: "chart-box" },
    h("p", { class: "chart-scale" }, `Tallest bar: ${top} job${top === 1 ? "" : "s"} in a minute`),
    chart,
    h("p", { class: "chart-axis" }, h("span", {}, `${n} min ago`), h("span", {}, "now")));
}

function timingsTable(timings) {
  const names = { wait: "Waiting for a crawler", crawl: "Crawl", generate: "Generate", total: "Request to result" };
  return h("div", { class: "table-wrap" }, h("table", { class: "timings" },
    h("caption", {}, "Completed jobs of the last hour"),
    h("thead", {}, h("tr", {}, ["Stage", "Jobs", "Average", "95th percentile"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, Object.entries(names).map(([key, name]) => {
      const s = timings[key] || { count: 0 };
      return h("tr", {}, h("th", { scope: "row" }, name), h("td", { "data-label": "Jobs" }, s.count),
        h("td", { "data-label": "Average" }, seconds(s.avg_s)), h("td", { "data-label": "95th percentile" }, seconds(s.p95_s)));
    }))));
}

function render(body, s) {
  const t = s.totals;
  const active = ["pending", "crawling", "generating", "parsing"].reduce((a, k) => a + (s.by_status[k] || 0), 0);
  const rate = s.completion_rate === null ? "–" : `${(s.completion_rate * 100).toFixed(1)} %`;
  body.replaceChildren(
    h("p", { class: "muted" }, `Your jobs touched since ${clock(s.window.from)}; updated ${clock(s.generated_at)}.`,
      s.sampled ? ` Figures describe the newest ${s.scanned} jobs only.` : ""),
    h("dl", { class: "figures" },
      figure("Created", t.created), figure("Completed", t.completed), figure("Failed", s.failed),
      figure("Cancelled", t.cancelled), figure("Completion rate", rate, "completed ÷ (completed + failed)"),
      figure("Active now", active), figure("Stuck", s.stuck, `no event for over ${s.stuck_after_s} s`)),
    h("section", { "aria-labelledby": "chart-heading" },
      h("h2", { id: "chart-heading" }, "Throughput and failures"),
      throughputChart(s.throughput),
      h("ul", { class: "legend" }, h("li", { class: "legend-done" }, "Completed"), h("li", { class: "legend-failed" }, "Failed"))),
    h("section", { "aria-labelledby": "rec-heading" },
      h("h2", { id: "rec-heading" }, "Recommendations"),
      h("ul", { class: "recommendations" }, s.recommendations.map((r) =>
        h("li", { class: `level-${r.level}` }, h("strong", {}, `${r.level}: `), r.text)))),
    h("section", { "aria-labelledby": "time-heading" }, h("h2", { id: "time-heading" }, "Processing time"), timingsTable(s.timings)),
    h("section", { "aria-labelledby": "by-heading" },
      h("h2", { id: "by-heading" }, "Jobs by status"),
      Object.keys(s.by_status).length
        ? h("dl", { class: "facts" }, Object.entries(s.by_status).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))
        : h("p", { class: "empty" }, "No jobs in the last hour."),
      s.top_errors.length ? h("p", {}, "Most frequent errors: ", s.top_errors.map((e) => `${e.code} (${e.count})`).join(", ")) : null),
    h("section", { "aria-labelledby": "config-heading" },
      h("h2", { id: "config-heading" }, "Configuration check"),
      h("ul", { class: "checks" }, s.config.checks.map((c) =>
        h("li", { class: c.ok ? "ok" : "bad" }, h("strong", {}, `${c.ok ? "OK" : "Problem"} – ${c.name}: `), c.detail))),
      h("p", {}, `Generator provider (${s.config.provider.variable}): ${s.config.provider.provider}. As this gateway sees its environment:`),
      h("ul", { class: "keys" }, Object.entries(s.config.provider.keys).map(([name, state]) => h("li", {}, h("code", {}, name), ` ${state}`)))),
  );
}

export function renderStatus(main) {
  const body = h("div", { class: "status-body" }, h("p", { class: "empty" }, "Loading…"));
  const error = h("p", { class: "error", role: "alert" });
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  main.replaceChildren(
    h("div", { class: "title-row" }, h("h1", { tabindex: "-1" }, "Status: the last hour"), refresh),
    error,
    h("div", { class: "panel" }, body),
  );
  let closed = false;
  async function load() {
    try {
      const s = await api("/api/status");
      if (closed) return;
      render(body, s);
      error.textContent = "";
    } catch (err) {
      if (!closed) error.textContent = `Could not load the status: ${err.message}`;
    }
  }
  refresh.addEventListener("click", load);
  const timer = setInterval(() => document.visibilityState === "visible" && load(), REFRESH_MS);
  load();
  return () => {
    closed = true;
    clearInterval(timer);
  };
}
