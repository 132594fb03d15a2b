"""The whole system as a user runs it: every service its own process, over the embedded broker and database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sitewright_devstack.sample_site import SAMPLE_SITE, StaticSite
from sitewright_devstack.stack import Stack, StackConfig
from tests.helpers import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e")
    stack = Stack(StackConfig(home=home, gateway_port=0, partitions=4, extra_env={"SITEWRIGHT_STUCK_AFTER_S": "20"}))
    asyncio.run(stack.start())
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[StaticSite]:
    with StaticSite() as s:
        yield s


class _SlowHandler(SimpleHTTPRequestHandler):
    """The sample site, answering each page after a delay, so jobs are mid-crawl when services die."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(SAMPLE_SITE), **kwargs)

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(0.4)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


async def wait_ready(api: httpx.AsyncClient) -> None:
    async def ready():
        try:
            return (await api.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=60, what="gateway ready")


async def wait_finished(api: httpx.AsyncClient, ids: list[str], timeout: float = 120) -> dict[str, dict]:
    async def all_done():
        jobs = {i: (await api.get(f"/api/jobs/{i}")).json() for i in ids}
        return jobs if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs.values()) else None

    return await eventually(all_done, timeout=timeout, interval=0.25, what=f"{len(ids)} jobs to finish")


async def test_jobs_complete_through_all_four_services(stack: Stack, site: StaticSite):
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=10) as api:
        await wait_ready(api)
        hook_server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        threading.Thread(target=hook_server.serve_forever, daemon=True).start()
        hook = f"http://127.0.0.1:{hook_server.server_address[1]}/"
        ids = []
        for _ in range(5):
            r = await api.post("/api/jobs", json={"url": site.url, "notify": [{"channel": "webhook", "target": hook}]})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        jobs = await wait_finished(api, ids)
        for job_id, job in jobs.items():
            assert job["status"] == "completed" and job["progress"] == 100, job
            assert job["pages_crawled"] >= 3
            types = [e["type"] for e in (await api.get(f"/api/jobs/{job_id}/events")).json()]
            for expected in (
                "job.requested",
                "crawl.started",
                "crawl.succeeded",
                "generation.started",
                "parsing.started",
                "job.completed",
            ):
                assert expected in types, (expected, types)
            assert types.index("crawl.started") < types.index("crawl.succeeded") < types.index("generation.started")
            assert types.index("parsing.started") < types.index("job.completed")
            result = (await api.get(f"/api/jobs/{job_id}/result")).json()
            assert set(result) >= {"meta", "content", "faq", "schema"}
            assert "Chainline" in result["meta"]["title"]
        await eventually(lambda: _all_notified(ids), what="a webhook per job")
        hook_server.shutdown()
        metrics = (await api.get("/metrics")).text
        assert 'sitewright_jobs_finished_total{status="completed"}' in metrics


class _Hook(SimpleHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        import json

        type(self).received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def _all_notified(ids: list[str]) -> bool:
    got = [p["data"]["job_id"] for p in _Hook.received]
    return all(got.count(i) == 1 for i in ids)


async def test_restarting_the_gateway_and_workers_mid_run_loses_no_job(stack: Stack):
    slow = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{slow.server_address[1]}/"
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=10) as api:
            await wait_ready(api)
            ids = [
                (await api.post("/api/jobs", json={"url": url, "options": {"max_pages": 6}})).json()["id"]
                for _ in range(8)
            ]

            async def some_crawling():
                statuses = [(await api.get(f"/api/jobs/{i}")).json()["status"] for i in ids]
                return "crawling" in statuses

            await eventually(some_crawling, what="jobs mid-crawl")

            # A crash (SIGKILL) of the workers, and a clean restart of the gateway.
            for name in ("crawler", "generator", "notifier"):
                stack.children[name].kill()
            stack.children["gateway"].stop()
            for name in ("gateway", "crawler", "generator", "notifier"):
                stack.start_service(name)
            await wait_ready(api)
            jobs = await wait_finished(api, ids, timeout=180)
        assert {j["status"] for j in jobs.values()} == {"completed"}, {
            i: (j["status"], j["error"]) for i, j in jobs.items()
        }
    finally:
        slow.shutdown()
