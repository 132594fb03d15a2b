"""Jobs through the generator worker and the gateway (projector, scheduler) with a real broker and database,
each LLM provider played by a loopback server with its real streaming API: status, error code and retries."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext, PageSummary
from sitewright_generator.config import GeneratorSettings
from sitewright_generator.main import create_app as generator_app
from tests.helpers import eventually
from tests.integration.test_gateway_api import gateway, gateway_settings
from tests.integration.test_workers import publish
from tests.llm_servers import FakeLLM

RETRY_AFTER_S = 3
# host: (what the fake provider does on each call, final status, generate attempts, failure codes in order, calls)
SCENARIOS: dict[str, tuple[list[str], str, int, list[str], int]] = {
    "ok.example": (["ok"], "completed", 1, [], 1),
    "chatty.example": (["repairable"], "completed", 1, [], 1),
    # A 429 costs no tokens and no attempt: the call goes again after its Retry-After, in the same attempt.
    "ratelimited.example": ([f"rate_limit:{RETRY_AFTER_S}", "ok"], "completed", 1, [], 2),
    "slow.example": (["stall:30", "ok"], "completed", 2, ["provider_timeout"], 2),
    "cut.example": (["truncate", "ok"], "completed", 2, ["stream_truncated"], 2),
    "broken.example": (["error500"], "failed", 3, ["provider_error"] * 3, 3),
    "garbled.example": (["malformed"], "failed", 3, ["output_not_json"] * 3, 3),
    "denied.example": (["auth"], "failed", 1, ["auth_failed"], 1),
}


def crawl_of(host: str) -> CrawlContext:
    url = f"https://{host}/"
    return CrawlContext(
        start_url=url,
        pages=[
            PageSummary(
                url=url,
                title="Crumb & Co | Bakery",
                text="Crumb & Co bakes sourdough bread every morning in Portland. " * 30,
            )
        ],
    )


def tokens_counted(provider: str, direction: str) -> float:
    return (
        REGISTRY.get_sample_value("sitewright_llm_tokens_total", {"provider": provider, "direction": direction}) or 0.0
    )


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
async def test_each_provider_outcome_shows_on_the_job(kafka_bootstrap, mongo_url, unique, flavour):
    gw = gateway_settings(
        kafka_bootstrap,
        mongo_url,
        unique,
        retry_backoff_s=[0.5, 0.5, 0.5],
        retry_max_attempts=3,
        scheduler_interval_s=0.2,
        stuck_after_s=120,
    )
    tokens_before = tokens_counted(flavour, "in"), tokens_counted(flavour, "out")
    with FakeLLM(flavour, {host: steps for host, (steps, *_) in SCENARIOS.items()}) as llm:
        gen = GeneratorSettings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=gw.topic_prefix,
            topic_partitions=gw.topic_partitions,
            env="local",
            generator_group=f"generator-{unique}",
            progress_interval_s=0,
            generator_provider=flavour,
            generator_base_url=llm.base_url,
            generator_api_key="sk-test",
            generator_model="test-model",
            generator_timeout_s=1.5,
        )
        async with gateway(gw) as api, generator_app(gen).running():
            jobs: dict[str, str] = {}
            for host in SCENARIOS:
                created = await api.post("/api/jobs", json={"url": f"https://{host}/"})
                assert created.status_code == 202, created.text
                jobs[host] = created.json()["id"]
            # The crawler's part, played here: the generator starts from each job's crawl.
            await publish(
                kafka_bootstrap,
                gw.topic_prefix,
                *[
                    ev.CrawlSucceeded(job_id=job_id, data=ev.CrawlSucceededData(crawl=crawl_of(host)))
                    for host, job_id in jobs.items()
                ],
            )

            async def all_finished():
                views = {host: (await api.get(f"/api/jobs/{job_id}")).json() for host, job_id in jobs.items()}
                done = all(v["status"] in ("completed", "failed") for v in views.values())
                return done and views or None

            views = await eventually(all_finished, timeout=120, interval=0.5, what="every job to finish")
            events = {host: (await api.get(f"/api/jobs/{job_id}/events")).json() for host, job_id in jobs.items()}

    for host, (_steps, status, attempts, codes, calls) in SCENARIOS.items():
        view, trail = views[host], events[host]
        failures = [e["data"]["error"] for e in trail if e["type"] == "generation.failed"]
        assert (view["status"], view["attempts"]["generate"]) == (status, attempts), (host, view["log"])
        assert [f["code"] for f in failures] == codes, host
        assert len(llm.requests_for(host)) == calls, host
        if status == "failed":
            assert view["error"]["code"] == codes[-1] and view["error"]["stage"] == "generate", host
            assert view["error"]["retryable"] == (codes[-1] != "auth_failed"), host
        else:
            assert view["error"] is None and view["progress"] == 100, host
            result = view["result_summary"]
            assert result["schema_type"] == "Bakery" and len(result["title"]) <= 70, host
        # What the attempts cost is on the job; requests the provider turned away cost nothing.
        if host in ("broken.example", "denied.example"):
            assert view["tokens"] is None, host
        else:
            assert view["tokens"]["in"] > 0, (host, view["tokens"])

    # In log order: the API sorts by time, and events written in the same millisecond may tie.
    ok = sorted(events["ok.example"], key=lambda e: e["offset"])
    progress = [e["data"]["progress"] for e in ok if e["type"] == "generation.progress"]
    assert len(progress) >= 3 and progress == sorted(progress) and 40 <= progress[0] and progress[-1] == 80
    assert [e["type"] for e in ok][-2:] == ["parsing.started", "job.completed"]
    assert views["ok.example"]["tokens"]["out"] > 0

    # The 429's Retry-After held the call back, within the attempt: no generation.failed, one attempt.
    first, second = llm.requests_for("ratelimited.example")
    assert second["at"] - first["at"] >= RETRY_AFTER_S

    total_in = sum((v["tokens"] or {}).get("in", 0) for v in views.values())
    assert tokens_counted(flavour, "in") - tokens_before[0] == total_in > 0
    assert tokens_counted(flavour, "out") > tokens_before[1]


async def test_a_cancel_closes_the_llm_stream_within_a_second_and_nothing_more_is_emitted(kafka_bootstrap, unique):
    """The generator follows cancels: a cancelled job stops spending tokens at once."""
    from sitewright_contracts import Topics, uuid7
    from sitewright_runtime.kafka import ensure_topics
    from tests.helpers import read_topic
    from tests.integration.test_workers import of_job

    prefix = f"c{unique}."
    await ensure_topics(kafka_bootstrap, Topics(prefix).all, 1)  # one partition: one order for every event
    with FakeLLM("openai", delta_chars=4, delta_delay_s=0.05) as llm:  # a reply streamed over many seconds
        gen = GeneratorSettings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=prefix,
            env="local",
            generator_group=f"generator-{unique}",
            generator_provider="openai",
            generator_base_url=llm.base_url,
            generator_api_key="sk-test",
            generator_model="test-model",
        )
        job_id = uuid7()
        async with generator_app(gen).running():
            await publish(
                kafka_bootstrap,
                prefix,
                ev.CrawlSucceeded(job_id=job_id, data=ev.CrawlSucceededData(crawl=crawl_of("ok.example"))),
            )

            async def streaming() -> bool:
                return llm.in_flight == 1

            await eventually(streaming, timeout=60, what="the LLM stream to start")
            await publish(kafka_bootstrap, prefix, ev.JobCancelRequested(job_id=job_id))
            cancelled_at = time.monotonic()

            async def closed() -> bool:
                return llm.in_flight == 0

            await eventually(closed, timeout=10, interval=0.02, what="the LLM stream to close")
            stopped_after = time.monotonic() - cancelled_at
            await asyncio.sleep(1)  # a generation that went on would emit within this
            marker = ev.JobCancelRequested(job_id=uuid7())
            await publish(kafka_bootstrap, prefix, marker)
            records = await read_topic(
                kafka_bootstrap,
                Topics(prefix).events,
                until=lambda rs: any(r.key == marker.job_id.encode() for r in rs),
            )
            types = of_job(job_id)
    assert stopped_after < 1.0, stopped_after
    assert len(llm.requests_for("ok.example")) == 1
    emitted = types(records)
    assert "generation.started" in emitted and "job.completed" not in emitted and "parsing.started" not in emitted
