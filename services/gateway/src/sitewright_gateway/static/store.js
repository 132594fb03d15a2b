// The jobs this tab knows, kept current by REST reads and the job stream. Views subscribe to changes.

const jobs = new Map();
const listeners = new Set();

export function allJobs() {
  return [...jobs.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)); // ids are UUIDv7: newest first
}

export function getJob(id) {
  return jobs.get(id);
}

// A stream follows at most 1000 listed jobs; `since` names the newest of those known, and `all` brings
// the current version of every other active one.
const MAX_SINCE = 900;

/** The version of the newest known jobs, for the stream's `since` (so a reconnect misses nothing). */
export function versions() {
  const out = {};
  for (const job of allJobs().slice(0, MAX_SINCE)) out[job.id] = job.version;
  return out;
}

/** A job as `GET /api/jobs/{id}` returns it; an older version than the one held is ignored. */
export function putJob(view) {
  const held = jobs.get(view.id);
  if (held && held.version > view.version) return;
  jobs.set(view.id, { ...held, ...view });
  emit(view.id);
}

/** A `{"type": "job"}` stream message; returns false when the job is unknown here (the caller fetches it). */
export function applyMessage(msg) {
  const held = jobs.get(msg.job_id);
  if (held && held.version >= msg.version) return true;
  const update = {
    id: msg.job_id, version: msg.version, status: msg.status, stage: msg.stage, progress: msg.progress,
    attempt: msg.attempt, error: msg.error || null, updated_at: msg.occurred_at, last_event: msg.event_type,
  };
  if (msg.url) update.url = msg.url;
  jobs.set(msg.job_id, { ...held, ...update });
  emit(msg.job_id);
  return Boolean(held && held.created_at);
}

export function clearJobs() {
  jobs.clear();
  emit(null);
}

/** fn(jobId | null) on every change; returns the unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(id) {
  for (const fn of listeners) fn(id);
}
