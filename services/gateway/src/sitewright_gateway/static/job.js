// One job: its state (live), retry and cancel, the event timeline, errors, attempts and the result.

import { api } from "./api.js";
import { clock, copyText, h, progressBar, seconds, setProgress, statusBadge, timeOfDay } from "./dom.js";
import { getJob, putJob, subscribe } from "./store.js";

const REFRESH_MS = 1000; // at most one debug read per second while the job moves

function escapeAttr(text) {
  return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function copyButton(label, text, announce, what) {
  return h("button", { type: "button", class: "secondary copy", onclick: () => copyText(text(), announce, what) }, label);
}

function eventDetail(e) {
  const d = e.data || {};
  if (d.error) return typeof d.error === "string" ? d.error : `${d.error.code}: ${d.error.message}`;
  if (e.type === "crawl.progress") return `${d.pages_done} of about ${d.pages_estimated} pages (${d.progress} %)`;
  if (e.type === "generation.progress") return d.detail || `${d.progress} %`;
  if (e.type === "generation.started") return `${d.provider}/${d.model}`;
  if (e.type === "crawl.succeeded") return `${(d.crawl && d.crawl.pages ? d.crawl.pages.length : 0)} pages`;
  if (e.type === "job.retry_requested") return `${d.stage}: ${d.reason}`;
  if (e.type === "job.requested" || e.type === "crawl.started") return d.url || "";
  if (d.reason) return d.reason;
  if (e.type.startsWith("notification.")) return `${d.channel} ${d.target}`;
  return "";
}

function timeline(events) {
  if (!events.length) return h("p", { class: "empty" }, "No events yet.");
  return h("ol", { class: "timeline" }, events.map((e) =>
    h("li", { class: e.type.endsWith("failed") ? "failed" : "" },
      h("time", { datetime: e.occurred_at }, timeOfDay(e.occurred_at)),
      h("span", { class: "event-type" }, e.type),
      h("span", { class: "event-meta" }, `attempt ${e.attempt} · partition ${e.partition} offset ${e.offset} · ${e.producer}`),
      eventDetail(e) ? h("span", { class: "event-detail" }, eventDetail(e)) : null)));
}

function errorList(errors) {
  if (!errors.length) return h("p", { class: "empty" }, "No errors.");
  return h("ul", { class: "errors" }, errors.map((e) =>
    h("li", {},
      h("strong", {}, e.code || "error"), ` (${e.stage || "job"}, attempt ${e.attempt}${e.retryable ? ", retryable" : ""}) `,
      e.message || "", e.at ? h("span", { class: "muted" }, ` at ${clock(e.at)}`) : null)));
}

function attemptsTable(attempts) {
  if (!attempts.length) return h("p", { class: "empty" }, "No stage has started yet.");
  return h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
    h("caption", {}, "Each stage attempt, from the audit trail"),
    h("thead", {}, h("tr", {}, ["Stage", "Attempt", "Outcome", "Started", "Took", "Error"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, attempts.map((a) => h("tr", {},
      h("td", { "data-label": "Stage" }, a.stage), h("td", { "data-label": "Attempt" }, a.attempt),
      h("td", { "data-label": "Outcome" }, a.outcome), h("td", { "data-label": "Started" }, clock(a.started_at)),
      h("td", { "data-label": "Took" }, seconds(a.duration_s)),
      h("td", { "data-label": "Error" }, a.error ? `${a.error.code}: ${a.error.message}` : "–"))))));
}

function timingsList(t) {
  const rows = [["Waiting for a crawler", t.wait_s], ["Crawl", t.crawl_s], ["Generate", t.generate_s], ["Parse and validate", t.parse_s], ["Total", t.total_s]];
  return h("dl", { class: "facts" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, seconds(v))]));
}

function resultView(result, announce) {
  const meta = result.meta || {};
  const metaSnippet = () => `<title>${escapeAttr(meta.title || "")}</title>\n<meta name="description" content="${escapeAttr(meta.description || "")}">`;
  const contentText = () => (result.content || []).map((s) => `## ${s.heading}\n\n${s.body}`).join("\n\n");
  const faqText = () => (result.faq || []).map((f) => `Q: ${f.question}\nA: ${f.answer}`).join("\n\n");
  const jsonLd = JSON.stringify(result.schema || {}, null, 2);
  return h("div", { class: "result" },
    h("section", { class: "result-part", "aria-labelledby": "r-meta" },
      h("div", { class: "part-head" }, h("h3", { id: "r-meta" }, "Meta tags"), copyButton("Copy meta tags", metaSnippet, announce, "the meta tags")),
      h("dl", { class: "facts" },
        h("dt", {}, "Title"), h("dd", { class: "meta-title" }, meta.title || "", h("span", { class: "muted" }, ` (${(meta.title || "").length} characters)`)),
        h("dt", {}, "Description"), h("dd", { class: "meta-description" }, meta.description || "", h("span", { class: "muted" }, ` (${(meta.description || "").length} characters)`)))),
    h("section", { class: "result-part", "aria-labelledby": "r-content" },
      h("div", { class: "part-head" }, h("h3", { id: "r-content" }, "Content"), copyButton("Copy content", contentText, announce, "the content")),
      (result.content || []).map((s) => h("article", { class: "content-section" },
        h("h4", {}, s.heading), String(s.body).split(/\n{2,}/).map((p) => h("p", {}, p))))),
    h("section", { class: "result-part", "aria-labelledby": "r-faq" },
      h("div", { class: "part-head" }, h("h3", { id: "r-faq" }, "FAQ"), copyButton("Copy FAQ", faqText, announce, "the FAQ")),
      (result.faq || []).length
        ? h("dl", { class: "faq" }, result.faq.map((f) => [h("dt", {}, f.question), h("dd", {}, f.answer)]))
        : h("p", { class: "empty" }, "No FAQ was generated.")),
    h("section", { class: "result-part", "aria-labelledby": "r-jsonld" },
      h("div", { class: "part-head" }, h("h3", { id: "r-jsonld" }, "JSON-LD"),
        copyButton("Copy JSON-LD", () => jsonLd, announce, "the JSON-LD"),
        copyButton("Copy as <script> tag", () => `<script type="application/ld+json">\n${jsonLd.replace(/</g, "\\u003c")}\n</script>`, announce, "the script tag")),
      h("pre", { class: "code", tabindex: "0", "aria-label": "JSON-LD" }, h("code", { class: "json-ld" }, jsonLd))),
  );
}

export function renderJob(main, id) {
  const heading = h("h1", { tabindex: "-1" }, "Job");
  const urlLine = h("p", { class: "job-url" });
  const badge = h("span", { class: "status-slot" });
  const bar = progressBar(0, "Job progress");
  const facts = h("dl", { class: "facts" });
  const actionMessage = h("p", { class: "action-message", role: "alert" });
  const retry = h("button", { type: "button" }, "Retry");
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel");
  const diagnosis = h("ul", { class: "diagnosis" });
  const events = h("div");
  const errors = h("div");
  const attempts = h("div");
  const timings = h("div");
  const result = h("div", {}, h("p", { class: "empty" }, "The result appears here once the job is completed."));
  const copied = h("p", { class: "sr-status", role: "status", "aria-live": "polite" });
  const raw = h("pre", { class: "code", tabindex: "0", "aria-label": "Debug JSON" });
  const loadError = h("p", { class: "error", role: "alert" });

  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← All jobs")),
    heading, urlLine, loadError,
    h("section", { class: "panel", "aria-labelledby": "state-title" },
      h("h2", { id: "state-title" }, "State"),
      h("div", { class: "state-line" }, badge, bar),
      facts,
      h("div", { class: "actions" }, retry, cancel),
      actionMessage,
      diagnosis),
    h("section", { class: "panel", "aria-labelledby": "result-title" }, h("h2", { id: "result-title" }, "Result"), copied, result),
    h("section", { class: "panel", "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Event timeline"), events),
    h("section", { class: "panel", "aria-labelledby": "errors-title" }, h("h2", { id: "errors-title" }, "Errors"), errors),
    h("section", { class: "panel", "aria-labelledby": "attempts-title" }, h("h2", { id: "attempts-title" }, "Attempts and timings"), attempts, timings),
    h("section", { class: "panel" }, h("details", {}, h("summary", {}, "Everything about this job (debug JSON)"), raw)),
  );

  let resultShown = false;
  let timer = null;
  let lastRead = 0;
  let readVersion = 0; // the job version the last debug read showed
  let closed = false;

  function drawState(job) {
    heading.textContent = `Job ${job.id}`;
    document.title = `${job.url || job.id} · Sitewright`;
    urlLine.replaceChildren("Website: ", h("a", { href: job.url, rel: "noopener noreferrer", target: "_blank" }, job.url || ""));
    if (badge.textContent !== job.status) badge.replaceChildren(statusBadge(job.status));
    setProgress(bar, job.progress);
    facts.replaceChildren(...[
      ["Stage", job.stage], ["Attempt", job.attempt], ["Created", clock(job.created_at)], ["Last update", clock(job.updated_at)],
      ["Finished", clock(job.finished_at)], ["Next attempt", job.next_attempt_at ? clock(job.next_attempt_at) : "–"],
    ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
    cancel.disabled = false;
    retry.disabled = false;
  }

  async function read() {
    lastRead = Date.now();
    try {
      const debug = await api(`/api/debug/${encodeURIComponent(id)}`);
      if (closed) return;
      readVersion = debug.job.version;
      putJob({ id, ...debug.job });
      diagnosis.replaceChildren(...debug.diagnosis.map((line) => h("li", {}, line)));
      events.replaceChildren(timeline(debug.events));
      errors.replaceChildren(errorList(debug.errors));
      attempts.replaceChildren(attemptsTable(debug.attempts));
      timings.replaceChildren(timingsList(debug.timings));
      raw.textContent = JSON.stringify(debug, null, 2);
      loadError.textContent = "";
      if (debug.job.status === "completed" && !resultShown) {
        resultShown = true;
        const body = await api(`/api/jobs/${encodeURIComponent(id)}/result`);
        if (!closed) result.replaceChildren(resultView(body, copied));
      }
    } catch (err) {
      if (!closed) loadError.textContent = err.status === 404 ? `No job with id ${id} for this API key.` : `Could not load the job: ${err.message}`;
    }
  }

  function scheduleRead() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      read();
    }, Math.max(0, REFRESH_MS - (Date.now() - lastRead)));
  }

  async function act(action) {
    const button = action === "retry" ? retry : cancel;
    button.disabled = true;
    actionMessage.textContent = "";
    actionMessage.className = "action-message";
    try {
      await api(`/api/jobs/${encodeURIComponent(id)}/${action}`, { method: "POST" });
      actionMessage.textContent = action === "retry" ? "Retry requested." : "Cancel requested.";
      actionMessage.classList.add("ok");
      scheduleRead();
    } catch (err) {
      actionMessage.textContent = `Could not ${action} this job: ${err.message}`;
      actionMessage.classList.add("error");
    } finally {
      button.disabled = false;
    }
  }
  retry.addEventListener("click", () => act("retry"));
  cancel.addEventListener("click", () => act("cancel"));

  const unsubscribe = subscribe((changed) => {
    if (changed !== id) return;
    const job = getJob(id);
    if (job) drawState(job);
    if (job && job.version > readVersion) scheduleRead();
  });
  if (getJob(id)) drawState(getJob(id));
  read();
  return () => {
    closed = true;
    clearTimeout(timer);
    unsubscribe();
  };
}
