"""What the scenarios share: the running stack, the load generator, completion watching, statistics."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import AsyncMongoClient

from sitewright_devstack.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parent.parent


def quantile(values: list[float], q: float) -> float | None:
    """Nearest rank, as the peers' harness computes it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def rss_mib(pid: int) -> float | None:
    """Resident memory of one process, from /proc (no psutil in the workspace)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_spent(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    """CPU seconds each process used between two `Bench.cpu()` readings (those alive at both)."""
    return {name: after[name] - was for name, was in before.items() if was is not None and after.get(name) is not None}


@dataclass
class Bench:
    """One running stack with its sites, and the handles scenarios use."""

    stack: Stack
    api_key: str
    sites: dict[str, str]
    mongo: AsyncMongoClient
    work: Path
    site_proc: subprocess.Popen
    watcher: Completions = field(init=False)

    @property
    def jobs(self):
        return self.mongo["sitewright"]["jobs"]

    def service_pids(self) -> dict[str, int]:
        return {name: child.proc.pid for name, child in self.stack.children.items()}

    def memory(self) -> dict[str, float | None]:
        return {name: rss_mib(pid) for name, pid in self.service_pids().items()}

    def cpu(self) -> dict[str, float | None]:
        return {name: cpu_s(pid) for name, pid in self.service_pids().items()}

    async def load(self, phases: list[dict], timeout_s: float = 600) -> list[dict]:
        """Run the load generator process with `phases`; return its per-phase results."""
        spec = self.work / f"spec-{time.monotonic_ns()}.json"
        out = spec.with_suffix(".out.json")
        spec.write_text(json.dumps({"gateway": self.stack.gateway_url, "api_key": self.api_key, "phases": phases}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(spec), str(out), cwd=ROOT
        )
        try:
            code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(f"the load generator did not finish within {timeout_s:g}s") from None
        if code != 0:
            raise RuntimeError(f"the load generator exited with code {code}")
        return json.loads(out.read_text())


class Completions:
    """When each job became `completed` in the read model, seen through a change stream on `jobs`.

    The time a job turns completed for a reader is the time the projector's write lands, so
    that is what submit-to-completed latency ends on (the peers end theirs on the status write too).
    """

    def __init__(self, bench: Bench):
        self.bench = bench
        self.seen: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())
        await asyncio.wait_for(self._ready.wait(), 30)

    async def _watch(self) -> None:
        pipeline = [{"$match": {"operationType": "update", "updateDescription.updatedFields.status": "completed"}}]
        async with await self.bench.jobs.watch(pipeline) as stream:
            self._ready.set()
            async for change in stream:
                now = time.time()
                job_id = change["documentKey"]["_id"]
                self.seen.setdefault(job_id, now)
                finished = change["updateDescription"]["updatedFields"].get("finished_at")
                if finished is not None:
                    self.finished_at[job_id] = finished.timestamp()

    async def wait_for(self, ids: list[str], timeout_s: float) -> bool:
        """Wait until every job in `ids` is completed; False when the deadline passed first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._task is not None and self._task.done():
                self._task.result()  # the change stream died: say why
            if all(i in self.seen for i in ids):
                return True
            await asyncio.sleep(0.1)
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# The no-work crawler and generator of Tier A (`bench/noop_stages.py`), started in place of the product's.
NOOP_STAGE_COMMANDS = {name: [sys.executable, "-m", "bench.noop_stages", name] for name in ("crawler", "generator")}


async def start_bench(
    extra_env: dict[str, str] | None = None,
    *,
    noop_stages: bool = False,
    prometheus: bool = True,
    admission: bool = False,
    warm: bool = True,
) -> Bench:
    """Start the embedded stack (free ports, data in a temporary folder) and the one-page sites.

    `noop_stages`: the crawler and the generator are `bench.noop_stages` (handlers that do no work), the
    gateway and the notifier the product's. `prometheus`: also start Prometheus when it is installed.
    `admission`: admission control and load shedding at the product's defaults (off otherwise).
    `warm`: push `warm_up`'s 50 jobs through the fast site; False leaves the warm-up to the caller
    (Tier C warms up against the fake servers it measures against), with `bench.watcher` running."""
    work = Path(tempfile.mkdtemp(prefix="sitewright-bench-"))
    api_key = "sw_bench_" + secrets.token_hex(16)
    env = {
        # The slow site of the head-of-line scenario answers after 20 s; let that crawl finish.
        "SITEWRIGHT_REQUEST_TIMEOUT_S": "30",
        "SITEWRIGHT_LOG_LEVEL": "WARNING",
        # The benchmark measures the pipeline, not the per-key admission limit (10 jobs/s by default).
        "SITEWRIGHT_RATE_JOBS_PER_S": "0",
        **(extra_env or {}),
    }
    if not admission:
        # Nor admission control (429 past a number of unfinished jobs per tenant and in all; 0 turns each off):
        # the throughput scenarios submit the peers' job count at once, faster than it finishes, as the peers do.
        # And the gateway's own load shedding (429 past a number of requests in progress), for the same reason.
        env |= {
            "SITEWRIGHT_ADMISSION_MAX_ACTIVE_PER_TENANT": "0",
            "SITEWRIGHT_ADMISSION_MAX_ACTIVE": "0",
            "SITEWRIGHT_HTTP_MAX_IN_FLIGHT": "0",
        }
    commands: dict[str, list[str]] = {}
    if noop_stages:
        commands = NOOP_STAGE_COMMANDS
        # `python -m bench.noop_stages` imports the repository's `bench` package, from wherever the bench runs.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    config = StackConfig(
        home=work / "stack", gateway_port=0, api_key=api_key, extra_env=env, commands=commands, prometheus=prometheus
    )
    stack = Stack(config)
    port_file = work / "site.json"
    site_proc = subprocess.Popen([sys.executable, "-m", "bench.site", str(port_file), "20"], cwd=ROOT)
    await stack.start()
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark site did not start")
        await asyncio.sleep(0.05)
    ports = json.loads(port_file.read_text())
    sites = {k: f"http://127.0.0.1:{p}/" for k, p in ports.items()}
    mongo = AsyncMongoClient(stack.env()["SITEWRIGHT_MONGO_URL"])
    bench = Bench(stack=stack, api_key=api_key, sites=sites, mongo=mongo, work=work, site_proc=site_proc)
    bench.watcher = Completions(bench)
    await bench.watcher.start()
    if warm:
        await warm_up(bench)
    return bench


async def warm_up(bench: Bench, n: int = 50) -> None:
    """A few jobs through every stage first, so that connections, caches and groups are settled."""
    [phase] = await bench.load([{"kind": "post", "n": n, "concurrency": 8, "site": bench.sites["fast"]}])
    ids = [r[3] for r in phase["requests"] if r[3]]
    if len(ids) != n or not await bench.watcher.wait_for(ids, 120):
        raise RuntimeError(f"warm-up failed: {len(ids)}/{n} accepted, logs in {bench.stack.logs}")


async def stop_bench(bench: Bench) -> None:
    await bench.watcher.stop()
    await bench.mongo.close()
    bench.site_proc.terminate()
    bench.site_proc.wait(10)
    await asyncio.to_thread(bench.stack.stop)
    if os.environ.get("BENCH_KEEP") != "1":
        import shutil

        shutil.rmtree(bench.work, ignore_errors=True)
