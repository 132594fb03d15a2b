"""The load generator, in its own process so that its CPU is not the harness's or the gateway's.

    python -m bench.loadgen SPEC.json OUT.json

SPEC: {"gateway": url, "api_key": key, "phases": [phase, ...]}, phases run in order:
  {"kind": "post", "n": N, "concurrency": C, "site": url}       closed loop, as fast as accepted
  {"kind": "post", "rate": R, "duration": D, "site": url}        open loop at R/s for D s
  {"kind": "get", "rate": R, "duration": D, "ids": [...]}        open loop GET /api/jobs/{id}
  {"kind": "bulk", "n": N, "chunk": B, "concurrency": C, "item": {...}}
                                                   POST /api/jobs/bulk, N jobs in bodies of B, C requests at once
  {"kind": "parallel", "phases": [phase, ...]}     the phases at the same time; one entry each in OUT
OUT: one entry per phase: {"requests": [[t_due, latency_s, status, job_id], ...], "max_lag_ms", "cpu_s"}
(bulk: "requests" are [t_sent, latency_s, status, accepted, refused], plus "ids" of the accepted jobs and
"errors", the first refused items). `cpu_s`: this process's CPU time during the phase.

Open loop means request i is due at start + i/R whatever happened before (like the peers'
producers); its latency counts from that due time, so a slow answer cannot hide queueing
behind it (no coordinated omission). A small HTTP/1.1 client over keep-alive connections
keeps the generator's own cost per request far below an HTTP library's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import orjson
import uvloop

# The server closes keep-alive connections idle for 5 s (uvicorn's default); drop ours well before.
IDLE_S = 2.0


class Connections:
    """Keep-alive connections to the gateway, reused; a new one opens when all are busy."""

    def __init__(self, host: str, port: int, headers: bytes):
        self.host, self.port, self.headers = host, port, headers
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """A connection and whether it was reused (kept alive from an earlier request)."""
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < IDLE_S:
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body); status 0 when the connection failed. A kept-alive connection the server has
        closed meanwhile is retried once on a new one, as HTTP clients do."""
        while True:
            try:
                reader, writer, reused = await self._connection()
            except OSError:
                return 0, b""
            try:
                return await self._exchange(reader, writer, method, path, body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                if not reused:
                    return 0, b""

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: bytes | None
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n".encode() + self.headers
        if body is not None:
            head += b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode() + b"\r\n"
        writer.write(head + b"\r\n" + (body or b""))
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await reader.readexactly(length) if length else b""
        self.idle.append((reader, writer, time.monotonic()))
        return status, payload


async def post_job(conns: Connections, site: str) -> tuple[int, str | None]:
    body = orjson.dumps({"url": site, "options": {"max_pages": 1, "max_depth": 0}})
    status, payload = await conns.request("POST", "/api/jobs", body)
    return status, orjson.loads(payload).get("id") if status in (200, 202) else None


async def closed_loop(conns: Connections, phase: dict) -> dict:
    n, out = phase["n"], []
    counter = iter(range(n))

    async def client() -> None:
        for _ in counter:
            t0 = time.time()
            status, job_id = await post_job(conns, phase["site"])
            out.append([t0, time.time() - t0, status, job_id])

    await asyncio.gather(*(client() for _ in range(phase["concurrency"])))
    return {"requests": out, "max_lag_ms": 0.0}


async def bulk(conns: Connections, phase: dict) -> dict:
    """Closed loop over POST /api/jobs/bulk: `concurrency` requests in flight, each of `chunk` copies of `item`."""
    n, chunk = phase["n"], phase["chunk"]
    sizes = [min(chunk, n - start) for start in range(0, n, chunk)]
    bodies = {size: orjson.dumps({"jobs": [phase["item"]] * size}) for size in set(sizes)}
    pending = iter(sizes)
    out: list[list] = []
    ids: list[str] = []
    errors: list[dict] = []

    async def client() -> None:
        for size in pending:
            t0 = time.time()
            status, payload = await conns.request("POST", "/api/jobs/bulk", bodies[size])
            latency = time.time() - t0
            accepted = 0
            if status == 200:
                for item in orjson.loads(payload)["items"]:
                    if item["status"] == 202:
                        ids.append(item["id"])
                        accepted += 1
                    elif len(errors) < 20:
                        errors.append(item)
            elif len(errors) < 20:
                errors.append({"status": status, "error": payload[:500].decode(errors="replace")})
            out.append([t0, latency, status, accepted, size - accepted])

    await asyncio.gather(*(client() for _ in range(phase["concurrency"])))
    return {"requests": out, "ids": ids, "errors": errors, "max_lag_ms": 0.0}


async def open_loop(conns: Connections, phase: dict) -> dict:
    rate, n = phase["rate"], int(phase["rate"] * phase["duration"])
    ids = phase.get("ids") or []
    out: list[list] = []
    max_lag = 0.0

    async def one(i: int, due: float) -> None:
        if phase["kind"] == "post":
            status, job_id = await post_job(conns, phase["site"])
        else:
            job_id = ids[i % len(ids)]
            status, _ = await conns.request("GET", f"/api/jobs/{job_id}")
        out.append([due, time.time() - due, status, job_id])

    tasks = []
    start = time.time() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, time.time() - due)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return {"requests": out, "max_lag_ms": round(max_lag * 1000, 1)}


def _run(conns: Connections, phase: dict):
    return (bulk if phase["kind"] == "bulk" else closed_loop if "n" in phase else open_loop)(conns, phase)


async def main(spec_path: str, out_path: str) -> None:
    spec = json.load(open(spec_path))
    url = urlsplit(spec["gateway"])
    headers = f"authorization: Bearer {spec['api_key']}\r\n".encode() if spec.get("api_key") else b""
    conns = Connections(url.hostname or "127.0.0.1", url.port or 80, headers)
    results = []
    for phase in spec["phases"]:
        cpu = time.process_time()
        if phase["kind"] == "parallel":
            together = await asyncio.gather(*(_run(conns, p) for p in phase["phases"]))
            for result in together:  # one process: the CPU of the phases together, on each
                result["cpu_s"] = round(time.process_time() - cpu, 3)
            results += together
            continue
        result = await _run(conns, phase)
        result["cpu_s"] = round(time.process_time() - cpu, 3)
        results.append(result)
    with open(out_path, "wb") as f:
        f.write(orjson.dumps(results))


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2]))
