"""GET /api/status and GET /api/debug/{id} against a real broker and database.

The jobs' histories are published on the log with chosen timestamps, so the
projector builds real documents whose durations the test knows exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sitewright_contracts import events as ev
from sitewright_contracts import uuid7
from sitewright_contracts.models import CrawlContext, ErrorInfo, PageSummary, SeoResult
from sitewright_runtime.kafka import Publisher
from tests.helpers import eventually
from tests.integration.test_gateway_api import gateway, gateway_settings

TENANT = "default"  # the test admin key's tenant
RESULT = SeoResult.model_validate(
    {
        "meta": {"title": "Chainline Bikes", "description": "Repairs and rentals in town."},
        "content": [{"heading": "Repairs", "body": "Same-day fixes."}, {"heading": "Rentals", "body": "By the hour."}],
        "faq": [{"question": "Open on Sundays?", "answer": "Yes, 10 to 4."}],
        "schema": {"@context": "https://schema.org", "@type": "LocalBusiness", "name": "Chainline"},
    }
)


class History:
    """Builds one job's events at chosen offsets (seconds) from `start`."""

    def __init__(self, start: datetime, url: str = "https://example.com/"):
        self.job_id = uuid7(int(start.timestamp() * 1000))  # job ids carry their creation time, as the gateway's do
        self.start = start
        self.url = url
        self.events: list[ev.Event] = []

    def add(self, cls: type[ev.Event], at_s: float, attempt: int = 1, **data: object) -> History:
        payload = cls.model_fields["data"].annotation
        self.events.append(
            cls(
                job_id=self.job_id,
                tenant=TENANT,
                attempt=attempt,
                producer="test",
                occurred_at=self.start + timedelta(seconds=at_s),
                **({"data": payload(**data)} if data or payload is not ev.Payload else {}),
            )
        )
        return self

    def requested(self) -> History:
        return self.add(ev.JobRequested, 0, url=self.url)

    def crawl(self, started_s: float, took_s: float, attempt: int = 1) -> History:
        self.add(ev.CrawlStarted, started_s, attempt, url=self.url)
        crawl = CrawlContext(start_url=self.url, pages=[PageSummary(url=self.url, title="Home")])
        return self.add(ev.CrawlSucceeded, started_s + took_s, attempt, crawl=crawl)

    def generate(self, started_s: float, took_s: float) -> History:
        self.add(ev.GenerationStarted, started_s, provider="offline", model="extractive-v1")
        self.add(ev.ParsingStarted, started_s + took_s - 0.1)
        return self.add(ev.JobCompleted, started_s + took_s, result=RESULT, pages_crawled=1, provider="offline")


def completed(start: datetime, crawl_s: float, generate_s: float) -> History:
    return History(start).requested().crawl(1, crawl_s).generate(1 + crawl_s, generate_s)


async def publish(settings, histories: list[History]) -> None:
    publisher = Publisher(settings.kafka_bootstrap, client_id="test", topics=settings.topics)
    await publisher.start()
    try:
        await publisher.publish([e for h in histories for e in h.events])
    finally:
        await publisher.stop()


async def wait_statuses(api, expected: dict[str, str]) -> None:
    async def projected():
        got = {i: (await api.get(f"/api/jobs/{i}")).json().get("status") for i in expected}
        return got == expected or None

    await eventually(projected, timeout=30, what=f"statuses {expected}")


def settings_for(kafka_bootstrap, mongo_url, unique):
    # The scheduler ticks once at start and keeps its lease: it must not re-drive the stuck job under test.
    return gateway_settings(
        kafka_bootstrap, mongo_url, unique, scheduler_interval_s=3600, lease_ttl_s=3600, stuck_after_s=600
    )


async def test_status_sums_up_the_last_hour_of_the_callers_jobs(kafka_bootstrap, mongo_url, unique, monkeypatch):
    monkeypatch.setenv("SITEWRIGHT_GENERATOR_PROVIDER", "anthropic")
    monkeypatch.setenv("SITEWRIGHT_ANTHROPIC_API_KEY", "sk-ant-this-must-never-be-shown")
    monkeypatch.delenv("SITEWRIGHT_GENERATOR_API_KEY", raising=False)
    monkeypatch.delenv("SITEWRIGHT_OPENAI_API_KEY", raising=False)
    settings = settings_for(kafka_bootstrap, mongo_url, unique)
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=5)
    done = [completed(recent, c, g) for c, g in ((1, 0.5), (2, 1.0), (3, 1.5), (10, 2.0))]
    failed = History(recent).requested().add(ev.CrawlStarted, 1, url="https://example.com/")
    failed.add(ev.CrawlFailed, 2, error=ErrorInfo(code="dns_failed", message="no such host", retryable=False))
    failed.add(ev.JobFailed, 2.5, stage="crawl", error=ErrorInfo(code="dns_failed", message="no such host"))
    cancelled = History(recent).requested().add(ev.JobCancelled, 3)
    active = History(now - timedelta(seconds=30)).requested().add(ev.CrawlStarted, 1, url="https://example.com/")
    stuck = History(now - timedelta(minutes=30)).requested().add(ev.CrawlStarted, 60, url="https://example.com/")
    old = completed(now - timedelta(hours=3), 1, 1)  # outside the window: counted nowhere
    everything = [*done, failed, cancelled, active, stuck, old]

    async with gateway(settings) as api:
        assert (await api.get("/api/status", headers={"Authorization": ""})).status_code == 401
        await publish(settings, everything)
        await wait_statuses(
            api,
            {
                h.job_id: s
                for h, s in [
                    *((d, "completed") for d in done),
                    (failed, "failed"),
                    (cancelled, "cancelled"),
                    (active, "crawling"),
                    (stuck, "crawling"),
                    (old, "completed"),
                ]
            },
        )
        response = await api.get("/api/status")
        assert response.status_code == 200, response.text
        assert "sk-ant-this-must-never-be-shown" not in response.text
        s = response.json()

        assert s["totals"] == {"created": 8, "finished": 6, "completed": 4, "failed": 1, "cancelled": 1}
        assert s["by_status"] == {"crawling": 2, "completed": 4, "failed": 1, "cancelled": 1}
        assert s["completion_rate"] == 0.8 and s["failed"] == 1 and s["stuck"] == 1
        assert s["top_errors"] == [{"code": "dns_failed", "count": 1}]
        assert s["timings"]["crawl"] == {"count": 4, "avg_s": 4.0, "p95_s": 10.0}
        assert s["timings"]["generate"] == {"count": 4, "avg_s": 1.25, "p95_s": 2.0}
        assert s["timings"]["wait"] == {"count": 4, "avg_s": 1.0, "p95_s": 1.0}
        assert s["timings"]["total"]["p95_s"] == 13.0

        chart = s["throughput"]
        assert len(chart["completed"]) == len(chart["failed"]) == len(chart["created"]) == 60
        assert (sum(chart["completed"]), sum(chart["failed"]), sum(chart["created"])) == (4, 1, 8)
        busy = [i for i, n in enumerate(chart["completed"]) if n]
        assert busy and min(busy) >= 53, busy  # they finished about 5 minutes ago

        checks = {c["name"]: c for c in s["config"]["checks"]}
        assert all(checks[n]["ok"] for n in ("broker", "database", "projector", "scheduler", "provider")), checks
        assert s["config"]["provider"]["provider"] == "anthropic"
        assert s["config"]["provider"]["keys"]["SITEWRIGHT_ANTHROPIC_API_KEY"] == "set"
        assert s["config"]["provider"]["keys"]["SITEWRIGHT_OPENAI_API_KEY"] == "not set"
        advice = " ".join(r["text"] for r in s["recommendations"])
        assert "1 active job has had no event for more than 600 s" in advice
        assert "1 job failed in the last hour" in advice

        monkeypatch.setenv("SITEWRIGHT_GENERATOR_PROVIDER", "openai")
        s = (await api.get("/api/status")).json()
        provider = next(c for c in s["config"]["checks"] if c["name"] == "provider")
        assert not provider["ok"] and "SITEWRIGHT_OPENAI_API_KEY" in provider["detail"]
        assert any(r["level"] == "warning" and "Generator provider" in r["text"] for r in s["recommendations"])

        monkeypatch.delenv("SITEWRIGHT_GENERATOR_PROVIDER")
        other = (await api.post("/api/admin/keys", json={"tenant": f"other-{unique}", "name": "t"})).json()["key"]
        theirs = (await api.get("/api/status", headers={"Authorization": f"Bearer {other}"})).json()
        assert theirs["totals"]["created"] == 0 and theirs["stuck"] == 0 and theirs["by_status"] == {}
        levels = [r["level"] for r in theirs["recommendations"]]
        assert levels[0] == "ok" and "warning" not in levels, theirs["recommendations"]
        assert any("No jobs in the last hour" in r["text"] for r in theirs["recommendations"])


async def test_debug_tells_the_whole_story_of_one_job(kafka_bootstrap, mongo_url, unique):
    settings = settings_for(kafka_bootstrap, mongo_url, unique)
    h = History(datetime.now(UTC) - timedelta(minutes=2)).requested()
    h.add(ev.CrawlStarted, 1, url=h.url)
    h.add(ev.CrawlFailed, 4, error=ErrorInfo(code="timeout", message="the site did not answer in 3 s", retryable=True))
    h.add(ev.JobRetryRequested, 10, attempt=2, stage="crawl", reason="backoff over")
    h.crawl(11, 2.5, attempt=2).generate(14, 3)

    async with gateway(settings) as api:
        await publish(settings, [h])
        await wait_statuses(api, {h.job_id: "completed"})
        r = await api.get(f"/api/debug/{h.job_id}")
        assert r.status_code == 200, r.text
        d = r.json()

        assert d["job"]["status"] == "completed" and d["job"]["version"] >= 2
        types = [e["type"] for e in d["events"]]
        assert types == [e.type for e in h.events]
        offsets = [e["offset"] for e in d["events"]]
        assert offsets == sorted(offsets) and len({e["partition"] for e in d["events"]}) == 1
        assert all(e["occurred_at"] and e["data_bytes"] > 0 for e in d["events"])

        attempts = [(a["stage"], a["attempt"], a["outcome"], a["duration_s"]) for a in d["attempts"]]
        assert attempts == [
            ("crawl", 1, "failed", 3.0),
            ("crawl", 2, "succeeded", 3.5),
            ("generate", 1, "succeeded", 3.0),
        ]
        assert [(e["code"], e["attempt"], e["retryable"], e["stage"]) for e in d["errors"]] == [
            ("timeout", 1, True, "crawl")
        ]
        assert d["timings"]["crawl_s"] == 2.5 and d["timings"]["generate_s"] == 3.0 and d["timings"]["total_s"] == 17.0
        assert d["timings"]["wait_s"] == 1.0 and abs(d["timings"]["parse_s"] - 0.1) < 1e-6

        result = d["result"]
        assert result["stored"] and result["sections"] == 2 and result["faq"] == 1
        assert result["bytes"]["schema"] == len(json.dumps(RESULT.schema_, ensure_ascii=False).encode())
        assert d["diagnosis"] == ["Completed."]

        assert (await api.get("/api/debug/no-such-job")).status_code == 404

        # The dashboard itself needs no key (it asks for one), and its modules are served as JavaScript.
        page = await api.get("/", headers={"Authorization": ""})
        assert page.status_code == 200 and '<script type="module" src="/static/app.js"></script>' in page.text
        for name in ("app.js", "stream.js", "app.css"):
            asset = await api.get(f"/static/{name}", headers={"Authorization": ""})
            assert asset.status_code == 200 and (
                "javascript" in asset.headers["content-type"] or name.endswith(".css")
            ), name
        other = (await api.post("/api/admin/keys", json={"tenant": f"other-{unique}", "name": "t"})).json()["key"]
        foreign = await api.get(f"/api/debug/{h.job_id}", headers={"Authorization": f"Bearer {other}"})
        assert foreign.status_code == 404 and h.job_id in foreign.json()["detail"]
