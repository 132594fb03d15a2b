"""The offline provider itself: builds the whole result from the crawl and streams it as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from sitewright_contracts.models import CrawlContext

from ..output_format import pages_by_usefulness
from ..provider import CallStats, Part
from .content import _faq, _sections
from .jsonld import _schema
from .model import _phrases
from .naming import _description, _site_name, _title
from .reading import _analyse

# Crawls with at most this much text are built on the event loop, where they take a few milliseconds;
# bigger crawls would hold the loop too long and are built in a thread (timings: `bench/README.md`).
INLINE_TEXT_CHARS = 4_000


class OfflineProvider:
    """Deterministic extractive provider, the default when no LLM is configured."""

    name = "offline"
    model = "extractive-v1"
    reads_prompt = False

    async def stream(self, part: Part, stats: CallStats | None = None) -> AsyncGenerator[str, None]:
        """Yield the JSON document in chunks: meta, each section, each FAQ pair, then the schema."""
        # A large crawl takes a second or two of CPU: keep the event loop (and the consumer's
        # heartbeats and other jobs) running meanwhile. A small one costs less than the hop to a
        # thread and back is worth (INLINE_TEXT_CHARS), so it runs here.
        if _text_chars(part.crawl) <= INLINE_TEXT_CHARS:
            result = build_result(part.crawl, language=part.language)
        else:
            result = await asyncio.to_thread(build_result, part.crawl, language=part.language)
        for chunk in render_chunks(result):
            yield chunk

    async def aclose(self) -> None:
        pass


def render_chunks(result: dict[str, Any]) -> Iterable[str]:
    """The result as JSON text in pieces that concatenate to one valid document."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    yield '{"meta": ' + dump(result["meta"]) + ',\n"content": ['
    for i, section in enumerate(result["content"]):
        yield ("," if i else "") + "\n  " + dump(section)
    yield '\n],\n"faq": ['
    for i, item in enumerate(result["faq"]):
        yield ("," if i else "") + "\n  " + dump(item)
    yield '\n],\n"schema": ' + dump(result["schema"]) + "}\n"


def _text_chars(crawl: CrawlContext) -> int:
    return sum(len(page.text) for page in crawl.pages)


def build_result(crawl: CrawlContext, *, language: str | None = None) -> dict[str, Any]:
    """The whole result as a plain dict in the output format, built only from the crawl."""
    site = _analyse(pages_by_usefulness(crawl))
    home = crawl.start_url
    start = site.pages[0] if site.pages else None
    in_language = language or (start.language if start else None)
    words = _phrases(in_language)
    name = _site_name(site.pages, home)
    description = _description(site, name, home, words)
    title = _title(site.pages, name)
    content = _sections(site, name, description, words)
    faq = _faq(site, name, description, words)
    schema = _schema(site.pages, home, name, description, faq, in_language)
    return {
        "meta": {"title": title, "description": description},
        "content": content,
        "faq": faq,
        "schema": schema,
    }
