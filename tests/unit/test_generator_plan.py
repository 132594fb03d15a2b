"""Prompt budgeting, splitting a large site into parts, merging the parts' answers: pure logic."""

from __future__ import annotations

from sitewright_contracts.models import CrawlContext, PageSummary, SeoResult
from sitewright_generator.plan import fit_prompt, merge, plan_parts
from sitewright_generator.provider import estimate_tokens

START = "https://big.example/"


def site(pages: int, words: int = 400, word: str = "sourdough") -> CrawlContext:
    return CrawlContext(
        start_url=START,
        pages=[
            PageSummary(
                url=START + (f"page-{i}" if i else ""), depth=min(i, 1), title=f"Page {i}", text=f"{word}{i} " * words
            )
            for i in range(pages)
        ],
    )


def answer(tag: str, sections: list[str], questions: list[str]) -> SeoResult:
    return SeoResult.model_validate(
        {
            "meta": {"title": f"Title {tag}", "description": f"About {tag}"},
            "content": [{"heading": h, "body": f"{h} body"} for h in sections],
            "faq": [{"question": q, "answer": "Yes."} for q in questions],
            "schema": {"@context": "https://schema.org", "@type": "WebSite", "name": tag},
        }
    )


def test_token_estimate_is_high_for_non_latin_text():
    assert estimate_tokens("abcd" * 100) == 100
    assert estimate_tokens("パン屋さん") == 5


def test_a_small_site_is_one_part_with_every_page():
    parts = plan_parts(site(3, 50), language="en", budget_tokens=30_000, max_parts=4)
    assert len(parts) == 1 and all(f"page-{i}" in parts[0].prompt for i in (1, 2))


def test_a_large_site_is_split_most_useful_pages_first_and_each_prompt_fits():
    parts = plan_parts(site(30), language="en", budget_tokens=4_000, max_parts=3)
    assert len(parts) == 3
    assert parts[0].crawl.pages[0].url == START
    assert all(estimate_tokens(p.prompt) <= 4_000 for p in parts)
    assert [p.prompt.count("part ") >= 1 for p in parts] == [True] * 3
    # Nothing is written twice: every page is in one part at most.
    urls = [page.url for p in parts for page in p.crawl.pages]
    assert len(urls) == len(set(urls))


def test_fit_prompt_trims_text_in_scripts_that_cost_more_tokens():
    crawl = site(2, 3000, word="パン")
    prompt = fit_prompt(crawl, language="ja", budget_tokens=3_000)
    assert estimate_tokens(prompt) <= 3_000 and START in prompt


def test_merge_takes_meta_from_the_first_part_and_interleaves_without_repeats():
    merged = merge(
        [
            answer("one", ["Bread", "Cakes", "Coffee"], ["Open?", "Vegan?"]),
            answer("two", ["Workshops", "bread ", "Catering"], ["Open?", "Parking?"]),
        ]
    )
    assert merged.meta.title == "Title one" and merged.schema_["name"] == "one"
    assert [s.heading for s in merged.content] == ["Bread", "Workshops", "Cakes", "Coffee", "Catering"]
    assert [f.question for f in merged.faq] == ["Open?", "Vegan?", "Parking?"]
