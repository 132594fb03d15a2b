"""Each LLM provider against a loopback server speaking its real streaming API: answers, failures, costs."""

from __future__ import annotations

import asyncio
import json

import pytest

from sitewright_contracts.models import CrawlContext, PageSummary
from sitewright_generator.config import GeneratorSettings
from sitewright_generator.generate import GenerationRun, Generator
from sitewright_generator.main import create_provider
from sitewright_generator.provider import GenerationError
from tests.llm_servers import GOOD_ANSWER, FakeLLM

FLAVOURS = ["anthropic", "openai"]


def crawl(host: str, pages: int = 1, text: str = "We bake sourdough bread every morning in Portland. ") -> CrawlContext:
    start = f"https://{host}/"
    return CrawlContext(
        start_url=start,
        pages=[
            PageSummary(url=start + (f"p{i}" if i else ""), depth=min(i, 1), title=f"Page {i}", text=text * 20)
            for i in range(pages)
        ],
    )


def settings(llm: FakeLLM, **extra: object) -> GeneratorSettings:
    return GeneratorSettings(
        kafka_bootstrap="unused:9092",
        env="local",
        generator_provider=llm.flavour,
        generator_base_url=llm.base_url,
        generator_api_key="sk-test",
        generator_model="test-model",
        generator_timeout_s=1,
        **extra,
    )


async def attempt(llm: FakeLLM, host: str, *, pages: int = 1, **extra: object) -> tuple[GenerationRun, object]:
    """Run one generation attempt; return it with its result or the GenerationError it raised."""
    provider = create_provider(settings(llm, **extra))
    generator = Generator(provider, settings(llm, **extra))
    run = GenerationRun()
    seen: list[int] = []

    async def on_text(progress: GenerationRun) -> None:
        seen.append(progress.chars)

    try:
        run = await generator.plan(crawl(host, pages), language="en")
        await generator.write(run, on_text)
        outcome: object = generator.finish(run)
    except GenerationError as exc:
        outcome = exc
    finally:
        await provider.aclose()
    assert seen == sorted(seen)
    return run, outcome


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_streamed_answer_becomes_a_result_with_its_token_counts(flavour):
    with FakeLLM(flavour) as llm:
        run, result = await attempt(llm, "ok.example")
    assert not isinstance(result, GenerationError), result
    assert result.model_dump() == GOOD_ANSWER
    request = llm.requests[0]
    body = request["body"]
    assert body["stream"] is True and body["temperature"] == 0.2 and body["model"] == "test-model"
    assert body["max_tokens"] == 12_000
    assert "(host ok.example)" in body["messages"][0]["content"]
    if flavour == "anthropic":
        assert request["headers"]["x-api-key"] == "sk-test" and request["headers"]["anthropic-version"] == "2023-06-01"
    else:
        assert request["headers"]["authorization"] == "Bearer sk-test"
        assert body["stream_options"] == {"include_usage": True}
    prompt = body["messages"][0]["content"]
    assert run.tokens_in == len(prompt) // 4 and run.tokens_out == len(json.dumps(GOOD_ANSWER)) // 4
    assert run.chars == len(json.dumps(GOOD_ANSWER))


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("step", "code", "retryable"),
    [
        ("rate_limit:7", "rate_limited", True),
        ("quota", "quota_exhausted", False),
        ("error500", "provider_error", True),
        ("overloaded", "provider_overloaded", True),
        ("stall:5", "provider_timeout", True),
        ("truncate", "stream_truncated", True),
        ("early_end", "stream_truncated", True),
        ("midstream_error", "provider_overloaded", True),
        ("bad_sse", "provider_protocol_error", True),
        ("malformed", "output_not_json", True),
        ("auth", "auth_failed", False),
        ("context", "context_exhausted", False),
        ("refusal", "content_refused", False),
        ("max_tokens", "output_truncated", False),
    ],
)
async def test_failures_have_a_code_and_say_whether_a_retry_can_help(flavour, step, code, retryable):
    with FakeLLM(flavour, {"site.example": [step]}) as llm:
        # No throttle retries inside the attempt: what a 429 or an overloaded answer fails with once they run out.
        run, failure = await attempt(llm, "site.example", generator_throttle_retries=0)
    assert isinstance(failure, GenerationError), failure
    assert (failure.code, failure.retryable) == (code, retryable), failure
    assert failure.retry_after_s == (7 if step.startswith("rate_limit") else None)
    if code == "auth_failed":  # the operator learns what to fix; the tenant only that the provider refused
        assert "SITEWRIGHT_GENERATOR_API_KEY" in (failure.detail or "") and "SITEWRIGHT" not in failure.message
    # Refused requests cost nothing; accepted ones cost their prompt, even when the answer is lost.
    accepted = step not in ("rate_limit:7", "quota", "error500", "overloaded", "auth", "context")
    assert (run.tokens_in > 0) == accepted


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_repairable_answer_is_repaired(flavour):
    with FakeLLM(flavour, {"chatty.example": ["repairable"]}) as llm:
        _, result = await attempt(llm, "chatty.example")
    assert not isinstance(result, GenerationError), result
    assert len(result.meta.title) <= 70 and result.meta.title.startswith("Crumb & Co Bakery")
    assert result.schema_["@type"] == "Bakery"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_large_site_is_split_into_parts_within_the_budget_and_merged(flavour):
    with FakeLLM(flavour, delta_delay_s=0.02) as llm:
        run, result = await attempt(
            llm,
            "big.example",
            pages=24,
            generator_prompt_tokens=3_000,
            generator_max_parts=3,
            generator_concurrency=2,
        )
    assert not isinstance(result, GenerationError), result
    assert len(run.calls) == 3 and len(llm.requests) == 3
    assert llm.max_in_flight == 2, "parts run in parallel, no more than the concurrency at once"
    prompts = [r["body"]["messages"][0]["content"] for r in llm.requests]
    assert all("part " in p and " of 3" in p for p in prompts)
    assert all(len(p) // 4 <= 3_000 for p in prompts)
    # Every part answered the same sections here: merged without repeats.
    assert [s.heading for s in result.content] == [s["heading"] for s in GOOD_ANSWER["content"]]


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_job_token_cap_limits_the_output_and_refuses_a_spent_job(flavour):
    with FakeLLM(flavour, {"capped.example": ["max_tokens"]}) as llm:
        _, failure = await attempt(llm, "capped.example", generator_job_token_cap=6_000)
        assert llm.requests[0]["body"]["max_tokens"] < 6_000
        assert isinstance(failure, GenerationError) and failure.code == "token_cap_exceeded" and not failure.retryable
        provider = create_provider(settings(llm))
        generator = Generator(provider, settings(llm, generator_job_token_cap=10_000))
        with pytest.raises(GenerationError) as refused:
            await generator.plan(crawl("capped.example"), language="en", tokens_spent=9_000)
        await provider.aclose()
        assert refused.value.code == "token_cap_exceeded" and len(llm.requests) == 1


def test_production_refuses_an_api_key_provider_without_a_key():
    from sitewright_runtime.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as refused:
        load_settings(GeneratorSettings, kafka_bootstrap="k:9092", env="production", generator_provider="anthropic")
    assert "SITEWRIGHT_GENERATOR_API_KEY" in str(refused.value)
    offline = load_settings(GeneratorSettings, kafka_bootstrap="k:9092", env="production")
    assert offline.generator_provider == "offline" and offline.api_key == ""


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_one_failed_part_fails_the_attempt_and_stops_the_others(flavour):
    with FakeLLM(flavour, {"big.example": ["ok", "error500", "ok"]}, delta_delay_s=0.05) as llm:
        run, failure = await attempt(
            llm,
            "big.example",
            pages=24,
            generator_prompt_tokens=3_000,
            generator_max_parts=3,
            generator_concurrency=3,
        )
    assert isinstance(failure, GenerationError) and failure.code == "provider_error" and failure.retryable
    assert len(run.calls) == 3
    # The parts that were streaming were cut short, not finished: a ~1,000-character answer each at 40 a delta.
    assert all(len(call.text) < 1_000 for call in run.calls)
    assert run.tokens_in > 0  # the accepted parts read their prompts


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_throttled_call_waits_its_retry_after_and_goes_again_at_a_lower_limit(flavour):
    with FakeLLM(flavour, {"busy.example": ["rate_limit:1", "overloaded", "ok"]}) as llm:
        provider = create_provider(settings(llm))
        generator = Generator(provider, settings(llm, generator_concurrency=8, generator_concurrency_initial=8))
        run = await generator.plan(crawl("busy.example"), language="en")
        await generator.write(run, lambda _: asyncio.sleep(0), tenant="t1")
        result = generator.finish(run)
        await provider.aclose()
    assert result.schema_["@type"] == "Bakery"
    first, second, third = llm.requests_for("busy.example")
    assert second["at"] - first["at"] >= 1, "the 429's Retry-After held the call back"
    # Two throttles in two rounds: two cuts; the throttled calls spent nothing.
    assert generator.limit.throttles == 2 and generator.limit.limit == 2
    assert run.tokens_in > 0 and len(run.calls) == 1
