"""Pure crawl rules: robots.txt matching, sitemaps, URL identity, scope and the context budget."""

from __future__ import annotations

import gzip

from sitewright_contracts.models import CrawlContext, Heading, PageSummary
from sitewright_crawler.budget import bound_context, fit_to_budget
from sitewright_crawler.robots import Robots, parse_sitemap
from sitewright_crawler.urls import Scope, normalize_url

UA = "SitewrightBot/0.1 (+https://sitewright.test/bot)"

ROBOTS = """
# comments and odd spacing are fine
User-agent: *
Disallow: /

User-agent: OtherBot
User-agent: SitewrightBot
Disallow: /shop/
Allow: /shop/public
Disallow: /*.php$
Disallow: /search?
Crawl-delay: 2

Sitemap: https://a.test/sitemap.xml
"""


def test_robots_longest_match_wins_and_allow_wins_ties() -> None:
    robots = Robots.parse(ROBOTS, UA)
    assert robots.allowed("https://a.test/")  # the * group's "Disallow: /" is not ours
    assert not robots.allowed("https://a.test/shop/cart")
    assert robots.allowed("https://a.test/shop/public/item")  # longer Allow beats shorter Disallow
    assert not robots.allowed("https://a.test/index.php")
    assert robots.allowed("https://a.test/index.php?x=1")  # $ anchors the end
    assert not robots.allowed("https://a.test/search?q=x")
    assert robots.allowed("https://a.test/robots.txt")
    assert robots.crawl_delay == 2
    assert robots.sitemaps == ["https://a.test/sitemap.xml"]


def test_robots_star_group_when_none_names_us() -> None:
    robots = Robots.parse(ROBOTS, "SomeoneElse/1.0")
    assert not robots.allowed("https://a.test/anything")
    assert Robots.parse("", UA).allowed("https://a.test/anything")
    assert Robots.parse("User-agent: *\nDisallow:\n", UA).allowed("https://a.test/x")  # empty Disallow allows


def test_robots_percent_encoding_is_compared_decoded() -> None:
    robots = Robots.parse("User-agent: *\nDisallow: /café\n", UA)
    assert not robots.allowed("https://a.test/caf%C3%A9/menu")


def test_sitemap_urlset_index_and_gzip() -> None:
    urlset = (
        b"<urlset><url><loc> https://a.test/a?x=1&amp;y=2 </loc></url><url><loc>https://a.test/b</loc></url></urlset>"
    )
    assert parse_sitemap(urlset, 10_000) == parse_sitemap(gzip.compress(urlset), 10_000)
    parsed = parse_sitemap(urlset, 10_000)
    assert parsed.urls == ["https://a.test/a?x=1&y=2", "https://a.test/b"] and not parsed.is_index
    index = parse_sitemap(b"<sitemapindex><sitemap><loc>https://a.test/s1.xml</loc></sitemap></sitemapindex>", 10_000)
    assert index.is_index and index.urls == ["https://a.test/s1.xml"]


def test_a_gzip_bomb_is_cut_at_the_limit() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"<loc>https://a.test/late</loc></urlset>")
    assert parse_sitemap(bomb, 100_000).urls == []


def test_normalize_url() -> None:
    assert normalize_url("HTTP://Example.COM:80/a?b=1#frag") == "http://example.com/a?b=1"
    assert normalize_url("https://example.com:443") == "https://example.com/"
    assert normalize_url("https://example.com:8443/x") == "https://example.com:8443/x"
    # Tracking parameters go, the rest is sorted: one page, one request.
    assert normalize_url("https://a.test/p?utm_source=x&id=1&gclid=abc&sort=asc") == "https://a.test/p?id=1&sort=asc"
    assert normalize_url("https://a.test/p?sort=asc&id=1") == "https://a.test/p?id=1&sort=asc"


def test_scope_host_and_domain() -> None:
    host = Scope("https://www.shop.test/", "host")
    assert host.contains("https://www.shop.test/a") and not host.contains("https://blog.shop.test/")
    domain = Scope("https://www.shop.test/", "domain")
    assert domain.contains("https://blog.shop.test/") and domain.contains("https://shop.test/")
    assert not domain.contains("https://evilshop.test/") and not domain.contains("https://shop.test.evil/")
    assert not Scope("https://shop.test:8443/", "domain").contains("https://shop.test/")  # another port


def test_context_budget_dedupes_then_trims_the_longest() -> None:
    banner = "We use cookies to improve your experience."
    pages = [
        PageSummary(url="https://a.test/", text=f"{banner}\nShort home page."),
        PageSummary(url="https://a.test/long", text=f"{banner}\n" + "Long sentence here. " * 100),
        PageSummary(url="https://a.test/mid", text=f"{banner}\n" + "Mid words. " * 20),
    ]
    fitted = fit_to_budget(pages, 500)
    assert fitted[0].text == f"{banner}\nShort home page."  # short texts stay whole
    assert banner not in fitted[1].text and banner not in fitted[2].text
    assert fitted[2].text == pages[2].text.split("\n", 1)[1]
    assert sum(len(p.text) for p in fitted) <= 500
    assert fitted[1].text.endswith("here.")


def test_context_stays_under_the_byte_budget_however_heavy_the_pages() -> None:
    """200 pages each with 60 headings, 10 JSON-LD blocks and 40 Open Graph tags."""
    pages = [
        PageSummary(
            url=f"https://a.test/{i}",
            text=f"Page {i}. " + "Words " * 2000,
            headings=[Heading(level=2, text=f"Heading {i}.{h} " + "x" * 200) for h in range(60)],
            json_ld=[{"@type": "Thing", "name": f"{i}.{j}", "description": "y" * 4000} for j in range(10)],
            open_graph={f"og:k{k}": "z" * 900 for k in range(40)},
        )
        for i in range(200)
    ]
    context = CrawlContext(start_url="https://a.test/", pages=fit_to_budget(pages, 60_000))
    bounded = bound_context(context, 256_000)
    assert len(bounded.model_dump_json().encode()) <= 256_000
    assert bounded.pages[0].url == "https://a.test/0" and len(bounded.pages) >= 5
    assert bounded.skipped["over_context_budget"] == 200 - len(bounded.pages)


def test_every_limit_is_a_job_option_with_a_default_and_a_hard_cap() -> None:
    import pytest
    from pydantic import ValidationError

    from sitewright_contracts.models import JobOptions
    from sitewright_crawler.crawl import CrawlLimits

    limits = CrawlLimits.from_options(JobOptions(), request_timeout_s=5)
    assert (limits.max_pages, limits.max_depth, limits.concurrency, limits.delay_s, limits.scope) == (
        10,
        2,
        4,
        0,
        "host",
    )
    assert limits.request_timeout_s == 5
    for option, too_much in {
        "max_pages": 201,
        "max_depth": 6,
        "timeout_s": 601,
        "max_bytes_per_page": 10_000_001,
        "max_total_bytes": 200_000_001,
        "concurrency": 17,
        "delay_s": 11,
        "max_redirects": 11,
        "max_retries": 6,
    }.items():
        with pytest.raises(ValidationError, match=option):
            JobOptions(**{option: too_much})
