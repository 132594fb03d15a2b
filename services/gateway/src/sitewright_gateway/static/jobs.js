// The home view: a form to submit a website, and the live table of the tenant's jobs.

import { api } from "./api.js";
import { age, h, progressBar, setProgress, statusBadge } from "./dom.js";
import { allJobs, getJob, putJob, subscribe } from "./store.js";

const PAGE = 50;

function field(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : null;
  input.id = id;
  input.name = id;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

function numberInput(value, min, max, step = 1) {
  return h("input", { type: "number", inputmode: "numeric", value, min, max, step });
}

function submitForm() {
  const url = h("input", { type: "url", required: true, placeholder: "https://example.com/", autocomplete: "url", spellcheck: "false" });
  const maxPages = numberInput(10, 1, 200);
  const maxDepth = numberInput(2, 0, 5);
  const timeout = numberInput(60, 1, 600);
  const language = h("input", { type: "text", maxlength: 16, placeholder: "en", autocomplete: "off" });
  const priority = numberInput(5, 0, 9);
  const webhook = h("input", { type: "url", placeholder: "https://hooks.example/sitewright", autocomplete: "off" });
  const button = h("button", { type: "submit" }, "Submit");
  const message = h("p", { class: "form-message", role: "status", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert" });

  const form = h("form", { class: "submit-form", novalidate: true, "aria-labelledby": "submit-title" },
    field("url", "Website URL", url, "The site's start page, http:// or https://."),
    h("details", { class: "options" },
      h("summary", {}, "Options"),
      h("div", { class: "option-grid" },
        field("max_pages", "Pages to crawl at most", maxPages),
        field("max_depth", "Link depth", maxDepth),
        field("timeout_s", "Crawl time limit (seconds)", timeout),
        field("language", "Content language (optional)", language),
        field("priority", "Priority (0 lowest, 9 highest)", priority),
        field("webhook", "Webhook for the outcome (optional)", webhook),
      ),
    ),
    h("div", { class: "actions" }, button),
    error,
    message,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    message.textContent = "";
    if (!url.value.trim()) {
      error.textContent = "Enter the website's address, e.g. https://example.com/.";
      url.focus();
      return;
    }
    const options = {
      max_pages: Number(maxPages.value),
      max_depth: Number(maxDepth.value),
      timeout_s: Number(timeout.value),
    };
    if (language.value.trim()) options.language = language.value.trim();
    const body = { url: url.value.trim(), options, priority: Number(priority.value) };
    if (webhook.value.trim()) body.notify = [{ channel: "webhook", target: webhook.value.trim() }];
    button.disabled = true;
    try {
      const accepted = await api("/api/jobs", { method: "POST", body });
      putJob(await api(accepted.links.self));
      message.textContent = `Job accepted (${accepted.id}); its progress shows in the table below.`;
      url.value = "";
    } catch (err) {
      error.textContent = `The job was not accepted: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function row(job, now) {
  const link = h("a", { href: `#/jobs/${job.id}`, class: "job-link" }, job.url || job.id);
  const bar = progressBar(job.progress, `Progress of ${job.url || job.id}`);
  return h("tr", { "data-job": job.id },
    h("td", { "data-label": "Website" }, h("div", {}, link, h("span", { class: "job-id" }, job.id))),
    h("td", { "data-label": "Status", class: "col-status" }, statusBadge(job.status)),
    h("td", { "data-label": "Stage", class: "col-stage" }, job.stage || ""),
    h("td", { "data-label": "Progress", class: "col-progress" }, bar),
    h("td", { "data-label": "Age", class: "col-age" }, h("time", { datetime: job.created_at || "" }, age(job.created_at, now))),
  );
}

function updateRow(tr, job, now) {
  const status = tr.querySelector(".col-status");
  if (status.textContent !== job.status) status.replaceChildren(statusBadge(job.status));
  tr.querySelector(".col-stage").textContent = job.stage || "";
  setProgress(tr.querySelector("[role=progressbar]"), job.progress);
  const time = tr.querySelector("time");
  time.setAttribute("datetime", job.created_at || "");
  time.textContent = age(job.created_at, now);
}

export function renderJobs(main) {
  const tbody = h("tbody");
  const empty = h("p", { class: "empty" }, "No jobs yet: submit a website above.");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show older jobs");
  const loadError = h("p", { class: "error", role: "alert" });
  let cursor = null;

  main.replaceChildren(
    h("h1", { tabindex: "-1" }, "Jobs"),
    h("section", { class: "panel", "aria-labelledby": "submit-title" }, h("h2", { id: "submit-title" }, "Submit a website"), submitForm()),
    h("section", { class: "panel", "aria-labelledby": "jobs-title" },
      h("h2", { id: "jobs-title" }, "Your jobs"),
      loadError,
      h("div", { class: "table-wrap" },
        h("table", { class: "jobs" },
          h("caption", {}, "Newest first; status and progress update live."),
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Website"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Stage"),
            h("th", { scope: "col" }, "Progress"), h("th", { scope: "col" }, "Age"))),
          tbody)),
      empty,
      more,
    ),
  );

  const rows = new Map();
  function draw(changed) {
    const now = Date.now();
    if (changed && rows.has(changed) && getJob(changed)) {
      updateRow(rows.get(changed), getJob(changed), now);
      return;
    }
    // A new job (or a reset): rebuild the order, reusing rows so focus and bars stay put.
    const jobs = allJobs();
    const wanted = jobs.map((job) => {
      let tr = rows.get(job.id);
      if (!tr) rows.set(job.id, (tr = row(job, now)));
      else updateRow(tr, job, now);
      return tr;
    });
    for (const [id, tr] of rows) if (!getJob(id)) (tr.remove(), rows.delete(id));
    tbody.replaceChildren(...wanted);
    empty.hidden = jobs.length > 0;
  }

  async function load() {
    try {
      const page = await api(`/api/jobs?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      for (const job of page.items) putJob(job);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      loadError.textContent = "";
    } catch (err) {
      loadError.textContent = `Could not load the jobs: ${err.message}`;
    }
    draw(null);
  }
  more.addEventListener("click", load);

  const unsubscribe = subscribe(draw);
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const [id, tr] of rows) {
      const job = getJob(id);
      if (job) tr.querySelector("time").textContent = age(job.created_at, now);
    }
  }, 5000);
  draw(null);
  load();
  return () => {
    unsubscribe();
    clearInterval(ticker);
  };
}
