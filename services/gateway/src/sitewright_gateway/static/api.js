// The REST API with the caller's key. The key lives in sessionStorage: this tab only, gone when it closes.

const KEY = "sitewright.apiKey";
const listeners = new Set();

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key, reason = "") {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(key, reason);
}

/** Called with the new key (or "") and why, whenever it changes, including when the API refuses it. */
export function onKeyChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The sentence a person can act on, from any error body the gateway sends. */
export function errorMessage(status, body, fallback) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  return fallback || `HTTP ${status}`;
}

/** fetch() a gateway route as JSON; throws ApiError with the API's own message on failure. */
export async function api(path, { method = "GET", body, key = getKey(), signal } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The gateway did not answer: check that it is running, then try again.", null);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, errorMessage(response.status, data, `${response.status} ${response.statusText}`), data);
    if (response.status === 401 && key === getKey()) setKey("", error.message);
    throw error;
  }
  return data;
}
