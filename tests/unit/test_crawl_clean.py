"""A hostile page cannot break the crawl or the events and documents that carry it (`clean.py`)."""

from __future__ import annotations

import json

import bson
import pytest

from sitewright_contracts import decode, encode
from sitewright_contracts import events as ev
from sitewright_contracts.models import CrawlContext
from sitewright_crawler.clean import MAX_JSON_DEPTH, MAX_WARNINGS, clean_json, clean_text, warn
from sitewright_crawler.extract import extract_page


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


FIRST = '{"@context": "https://schema.org", "bad\\u0000key": 1, "name": "lone \\ud800 here"}'
HOSTILE = f"""<!doctype html><html><head><title>Caf\x00e</title>
<script type="application/ld+json">{FIRST}</script>
<script type="application/ld+json">{nested(300)}</script>
<script type="application/ld+json">{{"@type": "Thing", "big": {10**30}}}</script>
</head><body><main><h1>Hello\x00 world</h1><p>Some text.</p></main></body></html>"""


def test_a_hostile_page_is_kept_clean_and_what_was_dropped_is_said():
    # As parsed, its structured data could not be stored: a NUL in a key is what wedged the projector.
    with pytest.raises(bson.InvalidDocument):
        bson.encode({"json_ld": json.loads('{"bad\\u0000key": 1}')})

    warnings: list[str] = []
    page, _, _ = extract_page("https://site.example/", HOSTILE, depth=0, warnings=warnings)

    bson.encode({"page": page.model_dump()})  # storable now
    context = CrawlContext(start_url="https://site.example/", pages=[page], warnings=warnings)
    event = ev.CrawlSucceeded(job_id="j1", tenant="t", data=ev.CrawlSucceededData(crawl=context))
    _, value, _ = encode(event)
    assert decode(value) == event  # and it travels

    [first, thing] = page.json_ld
    assert first == {"@context": "https://schema.org", "badkey": 1, "name": "lone \ufffd here"}
    assert thing == {"@type": "Thing", "big": str(10**30)}  # past 64 bits: BSON has no such integer
    assert all("\x00" not in s for s in (page.title, page.text, *(h.text for h in page.headings)))
    assert warnings == [f"https://site.example/: JSON-LD block 2 dropped (nested deeper than {MAX_JSON_DEPTH} levels)"]


def test_clean_text_keeps_what_is_valid_and_replaces_only_what_is_not():
    assert clean_text("plain") == "plain"
    assert clean_text("é😀") == "é😀"
    assert clean_text("a\ud800b\x00c") == "a\ufffdbc"
    json.dumps(clean_text("\udfff")).encode()  # encodes


def test_clean_json_bounds_depth_and_size():
    deep: object = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        clean_json(deep)
    with pytest.raises(ValueError, match="values"):
        clean_json(list(range(10_000)))
    assert clean_json({"a\x00": ["x\x00", 1.5, True, None]}) == {"a": ["x", 1.5, True, None]}


def test_warnings_are_bounded():
    warnings: list[str] = []
    for i in range(3 * MAX_WARNINGS):
        warn(warnings, f"w{i}" + "x" * 1000)
    assert len(warnings) == MAX_WARNINGS and all(len(w) <= 300 for w in warnings)
