"""One generation attempt: plan the calls within the token cap, stream them, parse and merge the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from sitewright_contracts.models import CrawlContext, SeoResult
from sitewright_runtime.metrics import LLM_CALLS_IN_FLIGHT, LLM_CALLS_WAITING, LLM_CONCURRENCY_LIMIT, LLM_THROTTLED

from .config import GeneratorSettings
from .limiter import ProviderLimit
from .parse import OutputInvalid, parse_output
from .plan import merge, plan_parts
from .provider import CallStats, GenerationError, Part, Provider, estimate_tokens

# Below this many output tokens per call no useful answer fits: refuse rather than pay for a cut-off one.
MIN_OUTPUT_TOKENS = 1_500


@dataclass
class Call:
    part: Part
    stats: CallStats = field(default_factory=CallStats)
    chunks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def tokens(self) -> tuple[int, int]:
        """(in, out): the provider's counts, or estimates when it took the request but did not say."""
        if not self.stats.accepted:
            return 0, 0
        tokens_in = self.stats.tokens_in or estimate_tokens(self.part.prompt)
        tokens_out = self.stats.tokens_out or (estimate_tokens(self.text) if self.chunks else 0)
        return tokens_in, tokens_out


@dataclass
class GenerationRun:
    """One attempt of the generate stage: its LLM calls, their text and tokens."""

    calls: list[Call] = field(default_factory=list)

    @property
    def tokens_in(self) -> int:
        return sum(call.tokens[0] for call in self.calls)

    @property
    def tokens_out(self) -> int:
        return sum(call.tokens[1] for call in self.calls)

    @property
    def chars(self) -> int:
        return sum(len(chunk) for call in self.calls for chunk in call.chunks)


# Failures that mean "slower", not "wrong": the call is tried again after the wait, at a lower limit.
THROTTLED = frozenset({"rate_limited", "provider_overloaded"})


class Generator:
    """Runs attempts against one provider; calls in flight are bounded over all jobs and parts by `limit`."""

    def __init__(self, provider: Provider, settings: GeneratorSettings) -> None:
        self.provider = provider
        self.settings = settings
        self.limit = ProviderLimit(
            ceiling=settings.generator_concurrency, initial=settings.generator_concurrency_initial
        )
        limit = self.limit
        LLM_CONCURRENCY_LIMIT.labels(provider.name).set_function(lambda: int(limit.limit))
        LLM_CALLS_IN_FLIGHT.labels(provider.name).set_function(lambda: limit.in_flight)
        LLM_CALLS_WAITING.labels(provider.name).set_function(lambda: limit.waiting)

    async def plan(self, crawl: CrawlContext, *, language: str | None, tokens_spent: int = 0) -> GenerationRun:
        """The calls of one attempt, each with a prompt and an output limit that keep the job under its cap."""
        if not self.provider.reads_prompt:
            return GenerationRun([Call(Part(crawl, language))])  # nothing to plan: no thread needed
        # Prompts for a 200-page crawl take a good fraction of a second: keep the event loop free.
        return await asyncio.to_thread(self._plan, crawl, language, tokens_spent)

    def _plan(self, crawl: CrawlContext, language: str | None, tokens_spent: int) -> GenerationRun:
        s = self.settings
        left = s.generator_job_token_cap - tokens_spent
        budget = min(s.generator_prompt_tokens, left - MIN_OUTPUT_TOKENS)
        try:
            parts = (
                plan_parts(crawl, language=language, budget_tokens=budget, max_parts=s.generator_max_parts)
                if budget > 0
                else []
            )
        except GenerationError:
            if budget == s.generator_prompt_tokens:
                raise  # the configured budget itself is too small: say so, not that the job is out of tokens
            parts = []
        tokens_in = sum(estimate_tokens(part.prompt) for part in parts)
        per_call = min(s.generator_max_output_tokens, (left - tokens_in) // max(len(parts), 1))
        if not parts or per_call < MIN_OUTPUT_TOKENS:
            raise GenerationError(
                "token_cap_exceeded",
                f"the job has spent {tokens_spent} of its {s.generator_job_token_cap} tokens; another attempt needs "
                f"about {tokens_in + MIN_OUTPUT_TOKENS * max(len(parts), 1)} (SITEWRIGHT_GENERATOR_JOB_TOKEN_CAP)",
                retryable=False,
            )
        return GenerationRun([Call(replace(part, max_tokens=per_call)) for part in parts])

    async def write(
        self, attempt: GenerationRun, on_text: Callable[[GenerationRun], Awaitable[None]], *, tenant: str = ""
    ) -> None:
        """Stream every call of `attempt` (in parallel, within the tenant's turn for slots); the first failure
        cancels the rest."""
        tasks = [asyncio.create_task(self._call(call, attempt, on_text, tenant)) for call in attempt.calls]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _call(
        self, call: Call, attempt: GenerationRun, on_text: Callable[[GenerationRun], Awaitable[None]], tenant: str
    ) -> None:
        """One call in a provider slot; a throttled one (no tokens spent) waits and goes again, a few times."""
        for tries in range(self.settings.generator_throttle_retries + 1):
            async with self.limit.slot(tenant) as ticket:
                try:
                    await self._stream(call, attempt, on_text)
                except GenerationError as exc:
                    if exc.code not in THROTTLED or call.stats.accepted:
                        raise
                    ticket.done("throttled", exc.retry_after_s)
                    LLM_THROTTLED.labels(self.provider.name).inc()
                    if tries == self.settings.generator_throttle_retries:
                        raise
                    continue
                ticket.done("ok")
                if call.stats.exhausted_for_s is not None:
                    self.limit.pause(call.stats.exhausted_for_s)
                return

    async def _stream(
        self, call: Call, attempt: GenerationRun, on_text: Callable[[GenerationRun], Awaitable[None]]
    ) -> None:
        stream = self.provider.stream(call.part, call.stats)
        try:
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    # An event of a shape the provider's API does not have: a broken proxy or server.
                    raise GenerationError(
                        "provider_protocol_error",
                        f"unexpected answer from {self.provider.name}: {exc!r}",
                        retryable=True,
                    ) from None
                call.chunks.append(chunk)
                await on_text(attempt)
        finally:
            await stream.aclose()  # closes the HTTP response now, also when another part failed

    def finish(self, attempt: GenerationRun) -> SeoResult:
        """Parse and validate every answer and merge them; a bad answer fails the attempt, it is never stored."""
        results = []
        for call in attempt.calls:
            try:
                results.append(parse_output(call.text))
            except OutputInvalid as exc:
                if call.stats.hit_max_tokens:
                    capped = call.part.max_tokens < self.settings.generator_max_output_tokens
                    code, limit = (
                        ("token_cap_exceeded", "SITEWRIGHT_GENERATOR_JOB_TOKEN_CAP")
                        if capped
                        else ("output_truncated", "SITEWRIGHT_GENERATOR_MAX_OUTPUT_TOKENS")
                    )
                    raise GenerationError(
                        code,
                        f"the answer stopped at max_tokens={call.part.max_tokens} and is incomplete ({exc.message}); "
                        f"raise {limit}",
                        retryable=False,
                    ) from None
                raise GenerationError(exc.code, exc.message, retryable=True) from None
        return merge(results)
