"""Keep the crawl context small: it travels in one event, under the broker's message limit."""

from __future__ import annotations

import json
from typing import Any

from sitewright_contracts.models import CrawlContext, Heading, PageSummary
from sitewright_crawler.extract import trim_text

# What one page may add besides its text, once it is in the context: the first
# pages keep what extraction found, later pages only what they add.
CONTEXT_HEADINGS_PER_PAGE = 20
CONTEXT_JSON_LD_PER_PAGE = 3
CONTEXT_JSON_LD_CHARS = 8_000
CONTEXT_OPEN_GRAPH_PER_PAGE = 10
CONTEXT_OPEN_GRAPH_CHARS = 300


def fit_to_budget(pages: list[PageSummary], budget_chars: int) -> list[PageSummary]:
    """Drop text blocks, headings, JSON-LD and Open Graph seen on earlier pages, cap each page's
    metadata, then trim the longest texts to fit."""
    seen_blocks: set[str] = set()
    seen_json_ld: set[str] = set()
    seen_headings: set[tuple[int, str]] = set()
    seen_open_graph: set[tuple[str, str]] = set()
    deduped: list[PageSummary] = []
    for page in pages:
        # Site-wide chrome that survived extraction (a cookie notice, a call to action)
        # repeats on every page; the first copy is enough.
        blocks = []
        for block in page.text.split("\n"):
            if block not in seen_blocks:
                seen_blocks.add(block)
                blocks.append(block)
        json_ld: list[dict[str, Any]] = []
        for item in page.json_ld:
            key = json.dumps(item, sort_keys=True, default=str)
            if (
                key not in seen_json_ld
                and len(key) <= CONTEXT_JSON_LD_CHARS
                and len(json_ld) < CONTEXT_JSON_LD_PER_PAGE
            ):
                seen_json_ld.add(key)
                json_ld.append(item)
        headings: list[Heading] = []
        for heading in page.headings:
            heading_key = (heading.level, heading.text)
            if heading_key not in seen_headings and len(headings) < CONTEXT_HEADINGS_PER_PAGE:
                seen_headings.add(heading_key)
                headings.append(heading)
        open_graph: dict[str, str] = {}
        for key, value in page.open_graph.items():
            if (key, value) not in seen_open_graph and len(open_graph) < CONTEXT_OPEN_GRAPH_PER_PAGE:
                seen_open_graph.add((key, value))  # og:site_name and the like, once per site
                open_graph[key] = value[:CONTEXT_OPEN_GRAPH_CHARS]
        update = {"text": "\n".join(blocks), "json_ld": json_ld, "headings": headings, "open_graph": open_graph}
        deduped.append(page.model_copy(update=update))

    cap = _water_level([len(p.text) for p in deduped], budget_chars)
    return [p if len(p.text) <= cap else p.model_copy(update={"text": trim_text(p.text, cap)}) for p in deduped]


def _water_level(lengths: list[int], budget: int) -> int:
    """The largest cap such that sum(min(length, cap)) <= budget: short texts stay whole."""
    if sum(lengths) <= budget:
        return max(lengths, default=0)
    remaining, ordered = max(budget, 0), sorted(lengths)
    for i, length in enumerate(ordered):
        share = remaining // (len(ordered) - i)
        if length > share:
            return share
        remaining -= length
    return ordered[-1]


def bound_context(context: CrawlContext, max_bytes: int) -> CrawlContext:
    """`context` with its last (deepest) pages dropped until its JSON fits in `max_bytes`.

    The text budget usually suffices; this is the backstop for pages heavy in
    metadata, so the event can never exceed what the broker accepts.
    """
    size = len(context.model_dump_json().encode())
    if size <= max_bytes:
        return context
    pages = list(context.pages)
    skipped = dict(context.skipped)
    while len(pages) > 1 and size > max_bytes:
        dropped = pages.pop()
        size -= len(dropped.model_dump_json().encode()) + 1
        skipped["over_context_budget"] = skipped.get("over_context_budget", 0) + 1
    if size > max_bytes:  # one page alone is too big: keep its essentials
        first = pages[0]
        pages = [first.model_copy(update={"json_ld": [], "open_graph": {}, "headings": first.headings[:5]})]
    dropped_count = len(context.pages) - len(pages)
    return context.model_copy(
        update={"pages": pages, "skipped": skipped, "pages_skipped": context.pages_skipped + dropped_count}
    )
