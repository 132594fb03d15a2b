"""What every provider offers the generator, and the failures it may report."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from sitewright_contracts.models import CrawlContext, ErrorInfo


@dataclass(frozen=True)
class Part:
    """One provider call: the pages it covers and, for an LLM, the prompt and output limit."""

    crawl: CrawlContext
    language: str | None
    prompt: str = ""
    max_tokens: int = 0


@dataclass
class CallStats:
    """What one call cost and how it ended; the provider fills it in while it streams."""

    accepted: bool = False  # the provider took the request (HTTP 200): its input counts as spent
    tokens_in: int = 0
    tokens_out: int = 0
    hit_max_tokens: bool = False  # the model stopped at max_tokens: the answer is probably cut off
    # Seconds until the provider takes requests again, when its rate-limit headers say none is left.
    exhausted_for_s: float | None = None


class Provider(Protocol):
    name: str
    model: str
    # False for a provider that works from the crawl itself (offline): no prompt, no tokens, no parts.
    reads_prompt: bool

    def stream(self, part: Part, stats: CallStats) -> AsyncGenerator[str, None]:
        """Yield the answer's text as it is written; raise GenerationError when the call fails."""
        ...

    async def aclose(self) -> None: ...


class GenerationError(Exception):
    """An attempt that produced no usable result; `code` is for programs, `retryable` for the scheduler."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.message = message  # what the tenant reads (on the job and its events): plain, no vendor text
        self.detail = detail  # what the operator reads in the logs: the provider's own words, addresses
        self.retryable = retryable
        self.retry_after_s = retry_after_s

    def info(self) -> ErrorInfo:
        """What the job's events carry: the code and the plain message, never `detail`."""
        return ErrorInfo(
            code=self.code, message=self.message, retryable=self.retryable, retry_after_s=self.retry_after_s
        )


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of a text's tokens, without the vendor's tokenizer.

    English runs about four characters a token; other scripts run closer to one token a character,
    so each non-ASCII character counts as a whole token. Overestimating only makes prompts shorter.
    """
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars))
