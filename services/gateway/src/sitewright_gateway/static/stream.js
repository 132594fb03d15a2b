// One WebSocket for every job of the tenant (WS /api/jobs/stream). Protocol: auth message first, then
// subscribe {all: true, since: {job: version}}; a reconnect sends what it has seen, so nothing is missed.

const MAX_BACKOFF_MS = 15000;
// Close codes after which reconnecting with the same key cannot help.
const FINAL = { 4401: "the API key was refused", 4403: "this page's origin is not allowed" };

export class JobStream {
  /**
   * @param {object} o
   * @param {() => string} o.key          the API key to authenticate with
   * @param {() => object} o.since        {job_id: last version seen}
   * @param {(msg) => void} o.onJob        each `job` message
   * @param {(state, detail) => void} o.onState  "connecting" | "live" | "retrying" | "stopped"
   */
  constructor({ key, since, onJob, onState }) {
    Object.assign(this, { key, since, onJob, onState });
    this.ws = null;
    this.backoff = 1000;
    this.timer = null;
    this.stopped = true;
    this.lastError = "";
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "page closed the stream");
    this.ws = null;
    this.onState("stopped", "");
  }

  connect() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/jobs/stream`);
    this.ws = ws;
    this.onState("connecting", "");
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "auth", key: this.key() }));
      ws.send(JSON.stringify({ type: "subscribe", all: true, since: this.since() }));
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === "job") this.onJob(msg);
      else if (msg.type === "ready") {
        this.backoff = 1000;
        this.onState("live", "");
      } else if (msg.type === "error") this.lastError = msg.message || msg.code || "";
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FINAL[event.code]) {
        this.stopped = true;
        this.onState("stopped", this.lastError || FINAL[event.code]);
        return;
      }
      // Jitter, so that many tabs do not reconnect at the same moment after a gateway restart.
      const wait = this.backoff * (0.5 + Math.random() / 2);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.onState("retrying", this.lastError || `connection closed (${event.code}); retrying in ${Math.round(wait / 1000)} s`);
      this.lastError = "";
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }
}
