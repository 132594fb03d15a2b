// The dashboard's entry point: the API key, the one job stream, and hash routing between the views.

import { api, getKey, onKeyChange, setKey } from "./api.js";
import { h } from "./dom.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderStatus } from "./status.js";
import { applyMessage, clearJobs, putJob, versions } from "./store.js";
import { JobStream } from "./stream.js";

const main = document.getElementById("main");
const live = document.getElementById("live");
const keyPanel = document.getElementById("key-panel");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
const keyError = document.getElementById("key-error");
const keyBar = document.getElementById("key-bar");
const keyLabel = document.getElementById("key-label");

const LIVE_TEXT = {
  connecting: "Live updates: connecting…",
  live: "Live updates: on",
  retrying: "Live updates: reconnecting",
  stopped: "Live updates: off",
};

// Jobs the stream names but this tab has not read (made elsewhere, or older than the first page): one
// debounced read of the newest page fills in what the stream leaves out (created_at), however many arrive.
let refreshTimer = null;
const asked = new Set();
function refreshNewest(id) {
  if (asked.has(id)) return;
  asked.add(id);
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    try {
      for (const job of (await api("/api/jobs?limit=50")).items) putJob(job);
    } catch {
      // The stream's own fields are shown meanwhile.
    }
  }, 300);
}

const stream = new JobStream({
  key: getKey,
  since: versions,
  onJob: (msg) => {
    if (!applyMessage(msg)) refreshNewest(msg.job_id);
  },
  onState: (state, detail) => {
    live.dataset.state = state;
    live.textContent = detail ? `${LIVE_TEXT[state]} (${detail})` : LIVE_TEXT[state];
  },
});

let cleanup = () => {};

function route() {
  cleanup();
  cleanup = () => {};
  const hash = location.hash || "#/";
  for (const link of document.querySelectorAll("nav a")) {
    const current = (link.dataset.route === "status") === hash.startsWith("#/status");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!getKey()) {
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Sitewright"), h("p", {}, "Enter an API key above to see and submit jobs."));
    document.title = "Sign in · Sitewright";
    return;
  }
  const job = hash.match(/^#\/jobs\/([\w-]+)$/);
  if (job) cleanup = renderJob(main, job[1]);
  else if (hash.startsWith("#/status")) {
    document.title = "Status · Sitewright";
    cleanup = renderStatus(main);
  } else {
    document.title = "Jobs · Sitewright";
    cleanup = renderJobs(main);
  }
}

function focusHeading() {
  // After a view change, move focus to its heading so keyboard and screen-reader users start there.
  const heading = main.querySelector("h1");
  if (heading) heading.focus({ preventScroll: false });
}

function showKeyState(reason = "") {
  const key = getKey();
  keyPanel.hidden = Boolean(key);
  keyBar.hidden = !key;
  keyError.textContent = reason;
  keyLabel.textContent = key ? `Signed in with key ${key.slice(0, 6)}… (kept in this tab's sessionStorage only).` : "";
}

keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  keyError.textContent = "";
  if (!key) {
    keyError.textContent = "Paste the API key first.";
    keyInput.focus();
    return;
  }
  try {
    await api("/api/jobs?limit=1", { key }); // checks the key before keeping it
  } catch (err) {
    keyError.textContent = `This key does not work: ${err.message}`;
    keyInput.focus();
    return;
  }
  keyInput.value = "";
  setKey(key);
});

document.getElementById("forget-key").addEventListener("click", () => setKey(""));

onKeyChange((key, reason) => {
  stream.stop();
  clearJobs();
  showKeyState(reason);
  if (key) stream.start();
  route();
  if (!key) keyInput.focus();
  else focusHeading();
});

window.addEventListener("hashchange", () => {
  route();
  focusHeading();
});

showKeyState();
if (getKey()) stream.start();
route();
