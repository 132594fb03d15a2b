"""What the crawler keeps of a page must be safe to carry on the log and store: it cleans it here.

A crawled page can hold anything. Strings lose NUL characters and lone surrogates, which neither
BSON nor UTF-8 can carry. Structured data (JSON-LD) is kept to a bounded depth and number of values,
and integers past 64 bits become strings. A block that cannot be kept is dropped and said in the
crawl's warnings; nothing here is fatal to the crawl.
"""

from __future__ import annotations

import re
from typing import Any

from sitewright_contracts.models import PageSummary

MAX_JSON_DEPTH = 16  # levels below a JSON-LD block's root; real schema.org graphs use a handful
MAX_JSON_VALUES = 5_000  # values in one block
MAX_WARNINGS = 20
_INT64 = 2**63
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unkeepable(Exception):
    pass


def clean_text(value: str) -> str:
    """`value` without NUL characters, its lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    # A Python string holds a valid pair as one code point: any surrogate code point is a lone one.
    return _SURROGATE.sub("\ufffd", value)


def clean_json(block: Any) -> Any:
    """A copy of one JSON-LD block with clean strings and keys; raises `ValueError` past the bounds."""
    budget = [MAX_JSON_VALUES]

    def walk(value: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _Unkeepable(f"more than {MAX_JSON_VALUES} values")
        if isinstance(value, str):
            return clean_text(value)
        if isinstance(value, bool) or value is None or isinstance(value, float):
            return value
        if isinstance(value, int):
            return value if -_INT64 <= value < _INT64 else str(value)
        if depth >= MAX_JSON_DEPTH:
            raise _Unkeepable(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            return {clean_text(str(k)): walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, depth + 1) for v in value]
        raise _Unkeepable(f"a value of type {type(value).__name__}")

    try:
        return walk(block, 0)
    except _Unkeepable as exc:
        raise ValueError(str(exc)) from None


def clean_blocks(url: str, blocks: list[Any], warnings: list[str]) -> list[dict[str, Any]]:
    """The JSON-LD blocks of the page at `url` that can be kept, cleaned; what is dropped goes to `warnings`."""
    kept = []
    for index, block in enumerate(blocks):
        try:
            kept.append(clean_json(block))
        except ValueError as exc:
            warn(warnings, f"{clean_text(url)}: JSON-LD block {index + 1} dropped ({exc})")
    return kept


def clean_strings(page: PageSummary) -> PageSummary:
    """`page` with every string clean (its JSON-LD is cleaned before: `clean_blocks`)."""
    return page.model_copy(
        update={
            "url": clean_text(page.url),
            "title": clean_text(page.title),
            "description": clean_text(page.description),
            "canonical": clean_text(page.canonical) if page.canonical is not None else None,
            "language": clean_text(page.language) if page.language is not None else None,
            "text": clean_text(page.text),
            "headings": [h.model_copy(update={"text": clean_text(h.text)}) for h in page.headings],
            "open_graph": {clean_text(k): clean_text(v) for k, v in page.open_graph.items()},
        }
    )


def warn(warnings: list[str], message: str) -> None:
    """Add a warning, keeping at most `MAX_WARNINGS` of them (the event that carries them stays small)."""
    if len(warnings) < MAX_WARNINGS:
        warnings.append(message[:300])
