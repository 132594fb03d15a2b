"""Fit a crawl into prompts within a token budget, splitting a large site into parts, and merge the answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sitewright_contracts.models import CrawlContext, PageSummary, SeoResult

from .output_format import FAQS, PAGE_TEXT_CAP, SECTIONS, build_prompt, pages_by_usefulness
from .provider import GenerationError, Part, estimate_tokens

# What a page costs in a prompt besides its text: its URL, title, description and headings lines.
_PAGE_OVERHEAD_TOKENS = 60
_FIT_TRIES = 6


def plan_parts(crawl: CrawlContext, *, language: str | None, budget_tokens: int, max_parts: int) -> list[Part]:
    """One prompt per part, each within `budget_tokens`; more parts only when one cannot hold the useful pages."""
    whole = build_prompt(crawl, language=language, budget_chars=10**9)
    if estimate_tokens(whole) <= budget_tokens or max_parts == 1 or len(crawl.pages) < 2:
        return [Part(crawl, language, fit_prompt(crawl, language=language, budget_tokens=budget_tokens))]
    groups = _split(crawl, budget_tokens, max_parts)
    n = len(groups)
    parts = []
    for k, pages in enumerate(groups, start=1):
        sub = crawl.model_copy(update={"pages": pages})
        parts.append(Part(sub, language, fit_prompt(sub, language=language, budget_tokens=budget_tokens, part=(k, n))))
    return parts


def fit_prompt(
    crawl: CrawlContext, *, language: str | None, budget_tokens: int, part: tuple[int, int] | None = None
) -> str:
    """The prompt for `crawl` whose estimated tokens fit `budget_tokens`, trimming the least useful pages first."""
    budget_chars = budget_tokens * 4
    for _ in range(_FIT_TRIES):
        try:
            prompt = build_prompt(crawl, language=language, budget_chars=budget_chars, part=part)
        except ValueError as exc:
            raise GenerationError(
                "context_exhausted",
                f"the prompt cannot fit {budget_tokens} tokens: {exc}; raise SITEWRIGHT_GENERATOR_PROMPT_TOKENS",
                retryable=False,
            ) from None
        tokens = estimate_tokens(prompt)
        if tokens <= budget_tokens:
            return prompt
        # Text in other scripts runs more tokens a character: shrink in proportion and try again.
        budget_chars = int(budget_chars * budget_tokens / tokens * 0.95)
    raise GenerationError("context_exhausted", f"the prompt does not fit {budget_tokens} tokens", retryable=False)


def _split(crawl: CrawlContext, budget_tokens: int, max_parts: int) -> list[list[PageSummary]]:
    """Pages, most useful first, packed into at most `max_parts` groups that each fit the budget.

    Whatever does not fit goes into the last group, where prompt building trims it, least useful first.
    """
    room = budget_tokens - estimate_tokens(build_prompt(crawl.model_copy(update={"pages": []}), language=None))
    groups: list[list[PageSummary]] = [[]]
    used = 0
    for page in pages_by_usefulness(crawl):
        cost = _page_tokens(page)
        if groups[-1] and used + cost > room and len(groups) < max_parts:
            groups.append([])
            used = 0
        groups[-1].append(page)
        used += cost
    return groups


def _page_tokens(page: PageSummary) -> int:
    headings = " ".join(h.text for h in page.headings[:40])
    return estimate_tokens(page.text[:PAGE_TEXT_CAP] + page.title + page.description + headings) + _PAGE_OVERHEAD_TOKENS


def merge(results: list[SeoResult]) -> SeoResult:
    """One result from the parts' answers: meta and schema from the first part (it has the start page),
    sections and questions taken in turn from each part so that every part is represented, without repeats."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    content = _interleave([r.content for r in results], key=lambda s: s.heading, limit=SECTIONS[1])
    faq = _interleave([r.faq for r in results], key=lambda f: f.question, limit=FAQS[1])
    return first.model_copy(update={"content": content, "faq": faq})


T = TypeVar("T")


def _interleave(lists: Sequence[Sequence[T]], *, key: Callable[[T], str], limit: int) -> list[T]:
    seen: set[str] = set()
    out: list[T] = []
    for i in range(max(map(len, lists), default=0)):
        for items in lists:
            if i < len(items) and len(out) < limit:
                k = " ".join(key(items[i]).casefold().split())
                if k not in seen:
                    seen.add(k)
                    out.append(items[i])
    return out
