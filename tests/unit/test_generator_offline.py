"""The offline provider and the prompt: useful, valid, deterministic output from a crawl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sitewright_contracts.models import CrawlContext, Heading, PageSummary
from sitewright_generator.offline import OfflineProvider, build_result
from sitewright_generator.output_format import FORMAT_INSTRUCTIONS, build_prompt
from sitewright_generator.parse import parse_output
from sitewright_generator.provider import Part

SAMPLE_SITE = Path(__file__).resolve().parents[2] / "tools/devstack/src/sitewright_devstack/sample_site"
START = "https://crumbandco.example/"


def page(path: str, depth: int, title: str, text: str, **fields: Any) -> PageSummary:
    headings = [Heading(level=int(h[1]), text=h[3:]) for h in fields.pop("headings", [])]
    return PageSummary(url=START + path, depth=depth, title=title, text=text, headings=headings, **fields)


def bakery() -> CrawlContext:
    """A small bakery's site, as the crawler hands it over: one line per block of text."""
    return CrawlContext(
        start_url=START,
        pages=[
            page(
                "about",
                1,
                "Our story | Crumb & Co",
                "Our story\n"
                "Crumb & Co was started in 2016 by Lena Park, a pastry chef who trained in Lyon "
                "before coming home to Portland. She opened the bakery with one oven and a "
                "sourdough starter she had kept alive for ten years.\n"
                "Today a team of nine bakers works through the night so that the shelves are full "
                "when the doors open at seven.\n"
                "Local flour\n"
                "All of our flour is milled by Camas Valley Mills, less than sixty miles away. "
                "Using fresh, stone-ground flour gives our bread a deeper flavour and a better "
                "crust.",
                headings=["h1 Our story", "h2 Local flour"],
            ),
            page(
                "",
                0,
                "Crumb & Co | Home",
                "Sourdough bakery in the heart of Portland\n"
                "Crumb & Co is a neighbourhood bakery on Alder Street baking naturally leavened "
                "bread, croissants and celebration cakes every morning. Every loaf rises slowly "
                "for eighteen hours, which gives our sourdough its open crumb and gentle tang.\n"
                "Bread baked every morning\n"
                "Our country sourdough, seeded rye and spelt loaves come out of the oven before "
                "seven each day. Bread that is not sold by closing time goes to the Alder Street "
                "food pantry.\n"
                "Pastries and cakes\n"
                "Croissants and pain au chocolat are laminated by hand with cultured butter. "
                "Celebration cakes can be ordered with two days' notice in three sizes.\n"
                "Is the bakery open on Sundays?\n"
                "Yes. We are open every day from 7am to 3pm, including Sundays and most public "
                "holidays.",
                description="Naturally leavened sourdough, hand-made croissants and celebration "
                "cakes, baked fresh every morning at our Portland bakery on Alder Street.",
                language="en",
                headings=[
                    "h1 Sourdough bakery in the heart of Portland",
                    "h2 Bread baked every morning",
                    "h2 Pastries and cakes",
                    "h2 Is the bakery open on Sundays?",
                ],
                open_graph={"og:site_name": "Crumb & Co"},
            ),
            page(
                "menu",
                1,
                "Menu and prices | Crumb & Co",
                "Menu and prices\n"
                "Bread\n"
                "A country sourdough loaf costs $8 and a seeded rye loaf costs $9. Spelt and "
                "whole wheat loaves are baked on Tuesdays, Thursdays and Saturdays.\n"
                "Pastries\n"
                "Croissants cost $4 and pain au chocolat costs $4.50. Our morning buns with "
                "orange zest and cinnamon sell out early on weekends.\n"
                "Cakes to order\n"
                "Celebration cakes start at $45 for a six-inch cake that serves eight people. "
                "Please order at least two days in advance by phone or in the shop.",
                headings=["h1 Menu and prices", "h2 Bread", "h2 Pastries", "h2 Cakes to order"],
            ),
            page(
                "contact",
                1,
                "Contact | Crumb & Co",
                "Visit us\n"
                "You will find Crumb & Co at 412 Alder Street, Portland, across from Lownsdale "
                "Square. Street parking is free before nine in the morning.\n"
                "Opening hours\n"
                "The bakery is open every day from 7am to 3pm. On public holidays we may close "
                "early once the bread has sold out.\n"
                "Call us on (503) 555-0199 or email hello@crumbandco.example to order a cake.",
                headings=["h1 Visit us", "h2 Opening hours"],
            ),
        ],
    )


def test_output_parses_and_respects_the_limits() -> None:
    result = parse_output(json.dumps(build_result(bakery())))
    assert 1 <= len(result.meta.title) <= 60
    assert 50 <= len(result.meta.description) <= 170
    assert 3 <= len(result.content) <= 8
    assert 3 <= len(result.faq) <= 8


def test_output_is_extracted_from_the_site() -> None:
    result = build_result(bakery())
    assert result["meta"]["title"].startswith("Crumb & Co")
    assert "Home" not in result["meta"]["title"]
    assert result["meta"]["description"] == bakery().pages[1].description
    headings = [section["heading"] for section in result["content"]]
    assert "Sourdough bakery in the heart of Portland" in headings
    assert "Our story" in headings or "Local flour" in headings
    text = " ".join(section["body"] for section in result["content"])
    assert "eighteen hours" in text
    questions = [item["question"] for item in result["faq"]]
    assert questions[0] == "What is Crumb & Co?"
    assert "Is the bakery open on Sundays?" in questions
    answers = {item["question"]: item["answer"] for item in result["faq"]}
    assert answers["Is the bakery open on Sundays?"].startswith("Yes. We are open every day")
    assert any("$" in answer for answer in answers.values())


def test_json_ld_is_a_graph_with_website_organization_and_faq() -> None:
    result = build_result(bakery())
    schema = result["schema"]
    assert schema["@context"] == "https://schema.org"
    nodes = {node["@type"]: node for node in schema["@graph"]}
    assert set(nodes) == {"WebSite", "Organization", "FAQPage"}
    assert nodes["Organization"]["name"] == "Crumb & Co"
    assert nodes["Organization"]["url"] == START
    assert nodes["WebSite"]["publisher"] == {"@id": nodes["Organization"]["@id"]}
    faq = nodes["FAQPage"]["mainEntity"]
    assert [q["name"] for q in faq] == [item["question"] for item in result["faq"]]
    assert all(q["@type"] == "Question" and q["acceptedAnswer"]["text"] for q in faq)


def test_existing_json_ld_type_is_reused() -> None:
    crawl = bakery()
    start = crawl.pages[1].model_copy(
        update={
            "json_ld": [
                {
                    "@context": "https://schema.org",
                    "@graph": [
                        {"@type": "WebPage", "name": "Home"},
                        {"@type": "Bakery", "name": "Crumb & Co Bakery", "telephone": "+1-503"},
                    ],
                }
            ]
        }
    )
    crawl = crawl.model_copy(update={"pages": [crawl.pages[0], start, *crawl.pages[2:]]})
    result = build_result(crawl)
    types = [node["@type"] for node in result["schema"]["@graph"]]
    assert types == ["WebSite", "Bakery", "FAQPage"]
    bakery_node = result["schema"]["@graph"][1]
    assert bakery_node["telephone"] == "+1-503"
    assert "@context" not in bakery_node
    assert result["meta"]["title"].startswith("Crumb & Co Bakery")


def test_output_is_deterministic_across_processes() -> None:
    crawl = bakery()
    here = json.dumps(build_result(crawl), ensure_ascii=False)
    assert json.dumps(build_result(crawl), ensure_ascii=False) == here
    script = (
        "import json, sys\n"
        "from sitewright_contracts.models import CrawlContext\n"
        "from sitewright_generator.offline import build_result\n"
        "crawl = CrawlContext.model_validate_json(sys.stdin.read())\n"
        "sys.stdout.write(json.dumps(build_result(crawl), ensure_ascii=False))\n"
    )
    # Another hash seed changes set and dict-of-str iteration order, which must not leak out.
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=crawl.model_dump_json(),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        assert done.stdout == here


async def test_stream_yields_several_chunks_of_one_valid_document() -> None:
    provider = OfflineProvider()
    assert (provider.name, provider.model) == ("offline", "extractive-v1")
    chunks = [chunk async for chunk in provider.stream(Part(bakery(), "en"))]
    assert len(chunks) >= 5
    text = "".join(chunks)
    assert json.loads(text) == build_result(bakery(), language="en")
    assert parse_output(text).meta.title.startswith("Crumb & Co")
    again = "".join([chunk async for chunk in provider.stream(Part(bakery(), "en"))])
    assert again == text


@pytest.mark.parametrize(
    "pages",
    [
        [],
        [PageSummary(url="https://www.tiny.example/")],
        [PageSummary(url="https://www.tiny.example/", title="Home", text="Welcome")],
        [PageSummary(url="https://www.tiny.example/", title="x" * 300, text="y" * 4000)],
        [PageSummary(url="https://www.tiny.example/", text="word " * 800)],
    ],
)
def test_near_empty_crawls_still_give_valid_output(pages: list[PageSummary]) -> None:
    crawl = CrawlContext(start_url="https://www.tiny.example/", pages=pages)
    result = parse_output("".join(_chunks(crawl)))
    assert result.meta.title and result.meta.description and result.content
    if not pages or not pages[0].title.strip("x"):
        assert "tiny.example" in result.meta.title + result.meta.description


def _chunks(crawl: CrawlContext) -> list[str]:
    from sitewright_generator.offline import render_chunks

    return list(render_chunks(build_result(crawl)))


def test_shared_navigation_and_footer_are_not_used_as_content() -> None:
    nav = "Crumb & Co Home Menu Story Contact "
    footer = "\n© 2025 Crumb & Co. All rights reserved. 412 Alder Street, Portland."
    crawl = bakery()
    glued = [p.model_copy(update={"text": nav + p.text + footer}) for p in crawl.pages]
    result = build_result(crawl.model_copy(update={"pages": glued}))
    everything = json.dumps(result["content"]) + json.dumps(result["faq"])
    assert "Home Menu Story" not in everything
    assert "All rights reserved" not in everything
    assert parse_output(json.dumps(result)).content


def test_language_shapes_the_added_words_only() -> None:
    crawl = CrawlContext(
        start_url="https://baeckerei.example/",
        pages=[
            PageSummary(
                url="https://baeckerei.example/",
                language="de",
                title="Bäckerei Müller | Startseite",
                text="Wir backen jeden Morgen frisches Brot aus regionalem Mehl. "
                "Das Roggenbrot reift achtzehn Stunden im Sauerteig.",
            )
        ],
    )
    result = build_result(crawl)
    assert result["faq"][0]["question"] == "Was ist Bäckerei Müller?"
    assert result["schema"]["@graph"][0]["inLanguage"] == "de"
    assert "Roggenbrot" in result["content"][0]["body"]


# --- the sample site shipped for the demo -----------------------------------------------------


class _Page(HTMLParser):
    """Just enough HTML reading to turn a sample page into what the crawler would send."""

    BLOCKS = frozenset("p h1 h2 h3 li div header footer nav main section title".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.json_ld: list[dict[str, Any]] = []
        self.headings: list[Heading] = []
        self.lines: list[str] = []
        self.title = ""
        self.lang: str | None = None
        self._open: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "meta" and values.get("content"):
            self.meta[values.get("name") or values.get("property", "")] = values["content"]
        if tag in self.BLOCKS or tag == "script":
            self._flush()
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        text = self._flush()
        if tag in ("h1", "h2", "h3") and text:
            self.headings.append(Heading(level=int(tag[1]), text=text))
        if tag == "title":
            self.title = text
        if tag == "script" and text:
            self.json_ld.append(json.loads(text))
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def _flush(self) -> str:
        text = " ".join("".join(self._text).split())
        self._text.clear()
        if text and self._open and self._open[-1] not in ("title", "script"):
            self.lines.append(text)
        return text


def sample_crawl() -> CrawlContext:
    base = "http://127.0.0.1:8400/"
    pages = []
    names = ["index.html", "about.html", "services.html", "faq.html", "contact.html"]
    for depth, name in enumerate(names):
        parsed = _Page()
        parsed.feed((SAMPLE_SITE / name).read_text(encoding="utf-8"))
        pages.append(
            PageSummary(
                url=base if name == "index.html" else base + name,
                depth=min(depth, 1),
                title=parsed.title,
                description=parsed.meta.get("description", ""),
                language=parsed.lang,
                headings=parsed.headings,
                text="\n".join(parsed.lines),
                json_ld=parsed.json_ld,
                open_graph={k: v for k, v in parsed.meta.items() if k.startswith("og:")},
            )
        )
    return CrawlContext(start_url=base, pages=pages)


def test_sample_site_is_complete() -> None:
    names = {path.name for path in SAMPLE_SITE.iterdir()}
    assert {"index.html", "about.html", "services.html", "faq.html", "contact.html"} <= names
    assert {"robots.txt", "sitemap.xml"} <= names
    assert "Allow: /" in (SAMPLE_SITE / "robots.txt").read_text()
    index = (SAMPLE_SITE / "index.html").read_text()
    for name in ("about.html", "services.html", "faq.html", "contact.html"):
        assert f'href="{name}"' in index


def test_sample_site_gives_good_offline_output() -> None:
    result = parse_output("".join(_chunks(sample_crawl())))
    assert result.meta.title.startswith("Chainline Bike Works")
    assert len(result.content) >= 3 and len(result.faq) >= 3
    questions = [item.question for item in result.faq]
    assert "Do I need to book a repair in advance?" in questions
    answers = {item.question: item.answer for item in result.faq}
    assert "9am to 6pm" in answers["When is Chainline Bike Works open?"]
    everything = json.dumps(result.model_dump())
    assert "All rights reserved" not in everything
    types = [node["@type"] for node in result.model_dump()["schema"]["@graph"]]
    assert types == ["WebSite", "BikeStore", "FAQPage"]


# --- the prompt -------------------------------------------------------------------------------


def big_crawl() -> CrawlContext:
    pages = [
        PageSummary(
            url=f"{START}page-{i}",
            depth=1 + i % 3,
            title=f"Page {i}",
            text=f"Page {i} text. " * 400,
        )
        for i in range(12)
    ]
    # The start page is short and listed last: it must still come first and survive trimming.
    pages.append(PageSummary(url=START, depth=0, title="Crumb & Co | Home", text="Start page."))
    return CrawlContext(start_url=START, pages=pages)


@pytest.mark.parametrize("budget", [6_000, 12_000, 48_000, 200_000])
def test_prompt_fits_the_budget_and_keeps_the_start_page(budget: int) -> None:
    prompt = build_prompt(big_crawl(), language="en", budget_chars=budget)
    assert len(prompt) <= budget
    assert FORMAT_INSTRUCTIONS in prompt
    assert f"### Page 1: {START}\n" in prompt
    assert "Start page." in prompt
    assert "this language: en" in prompt


def test_prompt_trims_the_least_useful_pages_first() -> None:
    prompt = build_prompt(big_crawl(), language=None, budget_chars=20_000)
    # Shallow pages are kept; the deepest pages are the ones left out.
    assert f"{START}page-0\n" in prompt and f"{START}page-3\n" in prompt
    assert f"{START}page-2\n" not in prompt
    assert "further pages omitted" in prompt


def test_prompt_with_room_for_everything_includes_every_page() -> None:
    crawl = bakery()
    prompt = build_prompt(crawl, language=None)
    for p in crawl.pages:
        assert p.url + "\n" in prompt
    assert prompt.index(f"### Page 1: {START}\n") < prompt.index(f"{START}menu\n")
    assert "Write in the language of the pages (en)." in prompt
    assert "omitted" not in prompt


def test_prompt_shortens_a_huge_start_page_rather_than_dropping_it() -> None:
    crawl = CrawlContext(start_url=START, pages=[PageSummary(url=START, title="Huge", text="Bread. " * 20_000)])
    prompt = build_prompt(crawl, language=None, budget_chars=8_000)
    assert len(prompt) <= 8_000
    assert "Bread. Bread." in prompt


def test_prompt_budget_smaller_than_the_instructions_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_prompt(bakery(), language=None, budget_chars=500)
