"""Tier C, the product's real shape: N jobs through the default stack against the peers' fake servers.

The stack is the product's as `start_bench` starts it (gateway, real crawler, real generator, notifier,
broker, database; no Prometheus, as for Tier A), its generator on the OpenAI-compatible provider
(`SITEWRIGHT_GENERATOR_PROVIDER=openai`) pointed at the fake LLM. The generator's concurrency and the
workers' in-flight limits stay at the product's defaults: they are what is measured.

- Fake servers: the peers' `run.sh serve-fakes` (site, streamed LLM, webhook sink), started fresh per run on
  a free port with `LlmKnobs` (the peers' defaults: 5 pages, 50 ms a page, 3 s an answer in 20 chunks) and
  `bench/llm_reply.json` as the LLM's answer, a valid one in Sitewright's output format. The peers' llm run
  gets the same knobs and reply.
- A job: `POST /api/jobs/bulk` items of `job_item`: the fakes' `/site/` for every job (the pages the peers
  fetch: the root and its K linked pages; the fakes' sitemap lists the same ones), `max_pages` 1 + K and
  `max_depth` 1, a webhook to the fakes' `/hook`; other options at their defaults (robots.txt and the
  sitemap are read, as the product does; they are counted apart from the pages).
- Warm-up: `WARMUP` jobs of the same shape through the same fakes, waited for (read model and webhooks),
  then `POST /stats/reset` on the fakes. The stack's own 50-job warm-up against the local one-page site is
  skipped (it would warm a site and an LLM path that the run does not use).
- Measured as Tier A measures (`framework`: bulk submission from the load generator process, completion
  counted at most once a second, no change stream in the window, times read from the documents after the
  run), except the end: a peer counts a job done once its webhook was answered, so the window ends at the
  later of the read model's last completion and the last webhook delivered (`finished_at` of the notifier's
  `deliveries` documents, written once the sink answered, read after the run); `end_source` says which.
  After the read model shows every job completed, the fakes' `/stats` is polled every `HOOKS_POLL_S` until
  `hook_posts` reaches N (`hooks_seen_all_s`, an upper bound, is a cross-check of the deliveries' times);
  the CPU window closes then.
- Honesty check, as the peers' harness applies it: the fakes' counters after the run must show
  `page_gets >= N (1 + K)`, `llm_completed >= N` and `hook_posts >= N`; a run that made fewer calls is not
  complete (`calls_short`). robots.txt and sitemap.xml reads are in `fakes_stats`, apart.
- Every `SAMPLE_S` during the window: each service's RSS (`peak_rss_mib`, and the peak of their sum as
  `total`) and the fakes' LLM calls in flight (`llm_in_flight_sampled`: their mean and max);
  `llm_peak_in_flight` is the fakes' own peak. CPU ms per job by Sitewright process; the harness's and the
  fakes' apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ..common import Bench, start_bench, stop_bench
from ..peers import PEERS_DIR, LlmKnobs
from . import framework

WARMUP = 200  # the peers' PEER_WARMUP
SAMPLE_S = 0.5
HOOKS_POLL_S = 0.1
HOOKS_WAIT_S = 60.0
READY = re.compile(r"^READY (http://\S+)$", re.M)


def stack_env(fakes_url: str) -> dict[str, str]:
    """The generator on the OpenAI-compatible provider, pointed at the fake LLM (which takes any key)."""
    return {
        "SITEWRIGHT_GENERATOR_PROVIDER": "openai",
        "SITEWRIGHT_GENERATOR_BASE_URL": f"{fakes_url}/v1",
        "SITEWRIGHT_GENERATOR_API_KEY": "sk-bench-fake",
    }


def job_item(fakes_url: str, site_pages: int) -> dict[str, Any]:
    """One job of the bulk body: the peers' crawl (the root page and its `site_pages` linked pages) and a webhook."""
    return {
        "url": f"{fakes_url}/site/",
        "options": {"max_pages": 1 + site_pages, "max_depth": 1},
        "notify": [{"channel": "webhook", "target": f"{fakes_url}/hook"}],
    }


def check_calls(stats: Mapping[str, Any], n: int, site_pages: int) -> dict[str, Any]:
    """The peers' honesty check: the calls `n` jobs must have made, against what the fake servers counted."""
    need = {"page_gets": n * (1 + site_pages), "llm_completed": n, "hook_posts": n}
    out: dict[str, Any] = {
        "fakes_stats": dict(stats),
        "calls_required": need,
        "llm_peak_in_flight": stats.get("llm_peak_in_flight"),
    }
    short = {k: f"{stats.get(k, 0)}/{v}" for k, v in need.items() if stats.get(k, 0) < v}
    if short:
        out["calls_short"] = short
    return out


def window_end(read_model_end: float, webhooks_end: float | None, hooks_seen_at: float | None) -> tuple[float, str]:
    """The later of the read model's last completion and the last webhook's delivery, and which one it was.

    `webhooks_end`: the last delivery's own time (None when not every job has one); else `hooks_seen_at`, when
    a poll of the fakes first saw every webhook (later than the delivery by up to a poll)."""
    hook: float | None = webhooks_end if webhooks_end is not None else hooks_seen_at
    source = (
        "webhook delivered (deliveries.finished_at)"
        if webhooks_end is not None
        else "webhooks counted (poll of the fakes' /stats)"
    )
    if hook is not None and hook > read_model_end:
        return hook, source
    return read_model_end, "read model"


class PeakRss:
    """The peak RSS of each process over samples, and the peak of their sum (`total`); Prometheus left out."""

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}

    def add(self, sample: Mapping[str, float | None]) -> None:
        values = {k: v for k, v in sample.items() if v is not None and k != "prometheus"}
        for k, v in values.items():
            self.peak[k] = max(self.peak.get(k, 0.0), v)
        if values:
            self.peak["total"] = max(self.peak.get("total", 0.0), round(sum(values.values()), 1))


class Fakes:
    """The peers' fake servers (`<PEERS_DIR>/run.sh serve-fakes`) in a process group of their own."""

    def __init__(self, knobs: LlmKnobs):
        self.knobs = knobs
        self.work = Path(tempfile.mkdtemp(prefix="sitewright-fakes-"))
        self.log = self.work / "fakes.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.client: httpx.AsyncClient | None = None

    async def start(self, timeout_s: float = 120) -> None:
        """Start them on a free port and wait for `READY <url>` (run.sh runs the peers' setup.sh first)."""
        cmd = [str(PEERS_DIR / "run.sh"), "serve-fakes", "--port", "0", *self.knobs.args()]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while not (ready := READY.search(self.log.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the fake servers did not start (exit {self.proc.poll()}): {tail}")
            await asyncio.sleep(0.05)
        self.url = ready[1]
        # No proxies from the environment: the fakes are on loopback.
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10, trust_env=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # run.sh execs fake_servers.py: the same process

    async def stats(self) -> dict[str, Any]:
        assert self.client is not None
        response = await self.client.get("/stats")
        response.raise_for_status()
        return response.json()

    async def reset(self) -> None:
        assert self.client is not None
        (await self.client.post("/stats/reset")).raise_for_status()

    async def wait_hooks(self, n: int, timeout_s: float) -> float | None:
        """When a poll first saw `hook_posts` >= n (None: not within `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await self.stats()
            if stats["hook_posts"] >= n:
                return time.time()
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(HOOKS_POLL_S)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 8)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self.proc.wait)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(self.work, ignore_errors=True)


class Sampler:
    """Every SAMPLE_S, in this process: each service's RSS and the fakes' LLM calls in flight."""

    def __init__(self, bench: Bench, fakes: Fakes):
        self.bench, self.fakes = bench, fakes
        self.rss = PeakRss()
        self.in_flight: list[int] = []
        self._task: asyncio.Task | None = None

    async def _loop(self) -> None:
        while True:
            self.rss.add(self.bench.memory())
            with contextlib.suppress(httpx.HTTPError):
                self.in_flight.append((await self.fakes.stats())["llm_in_flight"])
            await asyncio.sleep(SAMPLE_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.rss.add(self.bench.memory())

    def in_flight_figures(self) -> dict[str, Any]:
        """The samples' mean (evenly spaced in time: the average number of calls in flight over the window, which
        is jobs/s times an answer's time when every job makes one call) and their max."""
        values = self.in_flight
        return {
            "samples": len(values),
            "mean": round(statistics.fmean(values), 1) if values else None,
            "max": max(values) if values else None,
        }


async def warm_up(bench: Bench, fakes: Fakes, item: Mapping[str, Any], n: int, timeout_s: float) -> None:
    """`n` jobs of the measured shape through the same fakes, waited for to their webhooks; then zero the fakes'
    counters. `bench.watcher` (the stack's change stream) waits for them: the window has not started."""
    if n > 0:
        [phase] = await bench.load(
            [{"kind": "bulk", "n": n, "chunk": framework.CHUNK, "concurrency": 1, "item": dict(item)}],
            timeout_s=timeout_s,
        )
        ids = phase["ids"]
        if len(ids) != n or not await bench.watcher.wait_for(ids, timeout_s):
            raise RuntimeError(f"warm-up failed: {len(ids)}/{n} accepted, logs in {bench.stack.logs}")
        if await fakes.wait_hooks(n, HOOKS_WAIT_S) is None:
            raise RuntimeError(f"warm-up failed: fewer than {n} webhooks reached the fakes, logs in {bench.stack.logs}")
    await fakes.reset()


async def webhook_times(bench: Bench, ids: list[str]) -> dict[str, datetime]:
    """When each job's webhook was delivered: `finished_at` of its `sent` delivery, read after the run."""
    wanted = set(ids)
    sent: dict[str, datetime] = {}
    deliveries = bench.mongo["sitewright"]["deliveries"]
    async for d in deliveries.find({}, {"job_id": 1, "state": 1, "channel": 1, "finished_at": 1}):
        job = d.get("job_id")
        if job in wanted and d.get("state") == "sent" and d.get("channel") == "webhook" and d.get("finished_at"):
            sent[job] = min(sent.get(job, d["finished_at"]), d["finished_at"])
    return sent


def timeout_for(n: int, knobs: LlmKnobs) -> float:
    """How long the run may take: generous even at 4 LLM calls at once (the generator's old default)."""
    return float(os.environ.get("BENCH_TIER_C_TIMEOUT_S", 240 + n * knobs.llm_latency_s / 4))


async def run(
    bench: Bench,
    fakes: Fakes,
    n: int,
    knobs: LlmKnobs,
    chunk: int = framework.CHUNK,
    concurrency: int = framework.CONCURRENCY,
    timeout_s: float | None = None,
) -> dict:
    """Submit `n` jobs in bulk against the fakes, wait for them and their webhooks, measure."""
    timeout_s = timeout_s if timeout_s is not None else timeout_for(n, knobs)
    item = job_item(fakes.url, knobs.site_pages)
    baseline = await framework.settle(bench)
    cpu = framework.CpuWindow(bench, {"site": bench.site_proc.pid}, {"fakes": fakes.pid})
    sampler = Sampler(bench, fakes)
    sampler.start()
    cpu.open()
    sub = await framework.submit(bench, n, item, chunk, concurrency, timeout_s)
    polled = await framework.poll_completed(bench, baseline, len(sub.ids), sub.first_sent, time.monotonic() + timeout_s)
    hooks_seen_at = await fakes.wait_hooks(len(sub.ids), HOOKS_WAIT_S)
    cpu.close()
    await sampler.stop()
    memory = bench.memory()

    # After the measured window: the fakes' counters, the documents and the deliveries, for the times.
    calls = check_calls(await fakes.stats(), n, knobs.site_pages)
    times = await framework.read_model_times(bench, sub.ids, polled)
    sent = await webhook_times(bench, sub.ids)
    result = framework.report(n, chunk, concurrency, sub, polled, times, cpu)
    result |= {
        "jobs_per_s_read_model": times["jobs_per_s"],
        "read_model_end_source": times["end_source"],
        "webhooks_sent": len(sent),
        "webhooks_after_read_model_s": None,
        "hooks_seen_all_s": None,
    }
    measured = times["measured"]
    if times["completed"]:
        first, read_end = measured["first_created_at"], measured["last_completed_at"]
        webhooks_end = max(framework.timestamp(t) for t in sent.values()) if len(sent) >= times["completed"] else None
        end, source = window_end(read_end, webhooks_end, hooks_seen_at)
        result |= {
            "jobs_per_s": round(times["completed"] / (end - first), 1) if end > first else None,
            "window_s": round(end - first, 3),
            "end_source": source,
            "webhooks_after_read_model_s": round(webhooks_end - read_end, 3) if webhooks_end is not None else None,
            "hooks_seen_all_s": round(hooks_seen_at - first, 3) if hooks_seen_at is not None else None,
        }
    result |= calls
    result["complete"] = result["complete"] and "calls_short" not in calls and len(sent) == n
    result |= {
        "peak_rss_mib": sampler.rss.peak,
        "llm_in_flight_sampled": sampler.in_flight_figures(),
        "rss_mib_after": memory,
        "knobs": knobs.as_dict(),
    }
    return result


async def tier_c(n: int, knobs: LlmKnobs, warmup: int = WARMUP) -> dict:
    """Tier C on a fresh stack and fresh fakes: start both, warm up, run `n` jobs, stop both."""
    fakes = Fakes(knobs)
    try:
        await fakes.start()
        bench = await start_bench(stack_env(fakes.url), prometheus=False, warm=False)
        try:
            await warm_up(bench, fakes, job_item(fakes.url, knobs.site_pages), warmup, timeout_for(warmup, knobs))
            result = await run(bench, fakes, n, knobs)
            result["warmup"] = warmup
            result["failed_services"] = bench.stack.failed()
        finally:
            await stop_bench(bench)
    finally:
        await fakes.stop()
    return result
