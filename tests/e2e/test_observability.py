"""Metrics, alerts, dashboards and logs, against the whole stack and a real Prometheus (Debian's).

The embedded stack runs with Prometheus started from a temporary copy of
deploy/prometheus in which every alert's `for:` is rewritten to 1s, scraped and
evaluated every second, and with the stuck threshold and retry backoff in seconds:
the rules are production's, only the waiting is shortened so the test ends in a minute.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from sitewright_devstack import prometheus
from sitewright_devstack.sample_site import StaticSite
from sitewright_devstack.stack import Stack, StackConfig
from tests.e2e.test_pipeline import wait_finished, wait_ready
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
# Grafana's variables, as Grafana would fill them in for a one-hour view of every stage.
VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$stage": ".+"}


class HangingSite:
    """Accepts connections and never answers: a crawl of it makes no progress (a stuck job)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: every crawl of it fails."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if prometheus.binary() is None:
        pytest.fail("prometheus is not installed: `make setup` installs Debian's package (apt-get install prometheus)")
    home = tmp_path_factory.mktemp("observability")
    rules = home / "prometheus-config"
    shutil.copytree(prometheus.DEPLOY_PROMETHEUS, rules)
    for path in (rules / "rules").glob("*.yml"):
        path.write_text(re.sub(r"(\n\s+for: )\S+", r"\g<1>1s", path.read_text()))
    config = StackConfig(
        home=home,
        gateway_port=0,
        partitions=4,
        prometheus_dir=rules,
        prometheus_interval="1s",
        extra_env={
            "SITEWRIGHT_STUCK_AFTER_S": "4",
            "SITEWRIGHT_RETRY_BACKOFF_S": "[0.2]",
            "SITEWRIGHT_RETRY_MAX_ATTEMPTS": "2",
            "SITEWRIGHT_REQUEST_TIMEOUT_S": "120",  # the hanging site hangs until the crawl's own deadline
        },
    )
    stack = Stack(config)
    try:
        asyncio.run(stack.start())
    except BaseException:
        stack.stop()  # what did start (broker, database, services) must not outlive a failed start
        raise
    yield stack
    stack.stop()


async def query(prom: httpx.AsyncClient, expr: str) -> list[dict]:
    body = (await prom.get("/api/v1/query", params={"query": expr})).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with Grafana's variables filled in) for every panel target."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                found.append((path.stem, panel["title"], expr))
    return found


def job_log_lines(logs: Path, job_id: str) -> list[dict]:
    lines = []
    for path in logs.glob("*.log"):
        for raw in path.read_text(errors="replace").splitlines():
            if job_id in raw and raw.startswith("{"):
                lines.append(json.loads(raw))
    return lines


async def test_metrics_alerts_dashboards_and_traces(stack: Stack):
    assert stack.prometheus_url, "the stack should have started Prometheus"
    assert json.loads((stack.config.home / "stack.json").read_text())["prometheus"] == stack.prometheus_url
    hanging = HangingSite()
    try:
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=10) as api,
            httpx.AsyncClient(base_url=stack.prometheus_url, timeout=10) as prom,
        ):
            await wait_ready(api)

            async def all_targets_up() -> bool:
                targets = (await prom.get("/api/v1/targets")).json()["data"]["activeTargets"]
                return {t["labels"]["job"] for t in targets if t["health"] == "up"} >= {
                    "gateway",
                    "crawler",
                    "generator",
                    "notifier",
                }

            # Prometheus applies discovered targets some seconds after it starts. A counter first
            # scraped after its increments shows no increase, so its alert could never fire: the
            # monitoring must be watching before the failures happen, as it is in production.
            await eventually(all_targets_up, timeout=60, interval=0.5, what="Prometheus scraping every service")
            with StaticSite() as site:
                good = [(await api.post("/api/jobs", json={"url": site.url})).json()["id"] for _ in range(3)]
                bad = [(await api.post("/api/jobs", json={"url": closed_port_url()})).json()["id"] for _ in range(3)]
                stuck = (await api.post("/api/jobs", json={"url": hanging.url, "options": {"timeout_s": 60}})).json()[
                    "id"
                ]
                jobs = await wait_finished(api, good + bad, timeout=120)
            assert [jobs[i]["status"] for i in good] == ["completed"] * 3, jobs
            assert [jobs[i]["status"] for i in bad] == ["failed"] * 3, jobs

            # A message no consumer can decode: the projector dead-letters it.
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
            await producer.start()
            await producer.send_and_wait("jobs.events", b"{not json", key=b"garbage")
            await producer.stop()

            seen: set[str] = set()

            async def alerts_firing() -> set[str] | None:
                alerts = (await prom.get("/api/v1/alerts")).json()["data"]["alerts"]
                firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
                seen.clear()
                seen.update(firing)
                wanted = {"SitewrightJobsStuck", "SitewrightJobFailureRateHigh", "SitewrightDeadLetters"}
                return firing if wanted <= firing else None

            try:
                firing = await eventually(
                    alerts_firing, timeout=180, interval=0.5, what="stuck, failure-rate and DLQ alerts"
                )
            except AssertionError as exc:
                evidence = {
                    expr: [(r["metric"], r["value"][1]) for r in await query(prom, expr)]
                    for expr in (
                        "max_over_time(sitewright_jobs_stuck[5m])",
                        "sitewright_dlq_messages_total",
                        "increase(sitewright_dlq_messages_total[5m])",
                        "ALERTS",
                    )
                }
                raise AssertionError(f"{exc}; firing at the end: {sorted(seen)}; {evidence}") from None
            assert "SitewrightServiceDown" not in firing
            assert (await api.get(f"/api/jobs/{stuck}")).json()["status"] == "crawling"

            assert await all_targets_up()

            async def every_panel_has_data() -> list | None:
                empty = [(d, title, expr) for d, title, expr in panel_queries() if not await query(prom, expr)]
                return None if empty else ["ok"]

            try:
                await eventually(
                    every_panel_has_data, timeout=30, interval=1, what="every dashboard panel's query to return data"
                )
            except AssertionError:
                empty = [(d, t, e) for d, t, e in panel_queries() if not await query(prom, e)]
                raise AssertionError(f"panels without data: {empty}") from None
            lag_groups = {r["metric"]["group"] for r in await query(prom, "sitewright_consumer_lag")}
            assert {
                "sitewright-crawler",
                "sitewright-generator",
                "sitewright-notifier",
                "sitewright-projector",
            } <= lag_groups
            routes = {r["metric"]["route"] for r in await query(prom, "sitewright_http_requests_total")}
            assert "/api/jobs/{job_id}" in routes and not any(g in r for g in good for r in routes), routes
    finally:
        hanging.close()

    # One trace id per job, in the lines of all four services (the failed jobs' retries come from the scheduler).
    for job_id in (good[0], bad[0]):
        lines = job_log_lines(stack.logs, job_id)
        services = {line["service"] for line in lines}
        traces = {line.get("trace_id") for line in lines}
        expected = (
            {"gateway", "crawler", "generator", "notifier"} if job_id in good else {"gateway", "crawler", "notifier"}
        )
        assert services >= expected, (job_id, services)
        assert len(traces) == 1 and None not in traces, (job_id, traces, lines)
