// Small DOM helpers. Every value from the API goes in as text (never as HTML): results hold crawled text.

/** h("p", {class: "x", onclick: fn}, "text", child) builds an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children.flat()) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

/** "12 s", "4 min", "3 h", "2 d": how long ago `iso` was. */
export function age(iso, now = Date.now()) {
  if (!iso) return "";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

export function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

export function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function timeOfDay(iso) {
  const d = new Date(iso);
  return `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** A progress bar screen readers announce: role=progressbar with aria-valuenow. */
export function progressBar(value, label) {
  const fill = h("span", { class: "bar-fill" });
  const text = h("span", { class: "bar-text" });
  const bar = h("div", {
    class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": label,
  }, h("span", { class: "bar-track" }, fill), text);
  setProgress(bar, value);
  return bar;
}

export function setProgress(bar, value) {
  const pct = Math.max(0, Math.min(100, Math.round(Number(value) || 0)));
  if (bar.getAttribute("aria-valuenow") === String(pct)) return;
  bar.setAttribute("aria-valuenow", pct);
  bar.setAttribute("aria-valuetext", `${pct} %`);
  // CSSOM, not a style attribute: allowed under a style-src 'self' policy.
  bar.querySelector(".bar-fill").style.width = `${pct}%`;
  bar.querySelector(".bar-text").textContent = `${pct} %`;
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

/** Copy `text`, telling `announce` (a role=status element) how it went. */
export async function copyText(text, announce, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (a page served over plain http from another host): the old way.
    const area = h("textarea", { class: "offscreen", "aria-hidden": "true", tabindex: "-1" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) {
      announce.textContent = `Could not copy ${what}: select it and copy by hand.`;
      return;
    }
  }
  announce.textContent = `Copied ${what}.`;
}
