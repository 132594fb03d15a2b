"""The crawler against the generated fixture site on loopback: one test per rule of issue 3."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from sitewright_contracts.models import CrawlContext
from sitewright_crawler.crawl import CrawlError, CrawlLimits, crawl
from sitewright_crawler.robots import RobotsCache
from sitewright_devstack.fixture_site import FixtureSite
from sitewright_runtime.netguard import AddressGuard

USER_AGENT = "SitewrightBot/0.1 (+https://sitewright.test/bot)"
LOOPBACK = AddressGuard(allow_cidrs=["127.0.0.0/8"])


@pytest.fixture
def site() -> Iterator[FixtureSite]:
    """A small copy of the site (two sections of five pages) keeps most tests fast."""
    with FixtureSite(sections=2, pages_per_section=5, orphans=2, slow_s=0.2) as site:
        yield site


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env off: a proxy from the environment must not sit between the test and loopback.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def run(
    site: FixtureSite,
    path: str,
    client: httpx.AsyncClient,
    *,
    guard: AddressGuard = LOOPBACK,
    user_agent: str = USER_AGENT,
    **limits: Any,
) -> CrawlContext:
    limits.setdefault("retry_backoff_s", 0.05)
    return await crawl(site.url(path), CrawlLimits(**limits), client=client, guard=guard, user_agent=user_agent)


async def fails(site: FixtureSite, path: str, client: httpx.AsyncClient, **limits: Any) -> CrawlError:
    with pytest.raises(CrawlError) as caught:
        await run(site, path, client, **limits)
    assert caught.value.message  # every failure says what happened
    return caught.value


def paths(context: CrawlContext) -> list[str]:
    return [
        urlsplit(p.url).path + (f"?{urlsplit(p.url).query}" if urlsplit(p.url).query else "") for p in context.pages
    ]


# -- the walk ------------------------------------------------------------------


async def test_breadth_first_over_the_same_host(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=2, use_sitemap=False)
    found = paths(context)
    assert found[:4] == ["/", "/section/0/", "/section/1/", "/about"]  # depth 0, then depth 1 in link order
    depths = [p.depth for p in context.pages]
    assert depths == sorted(depths)
    assert "/section/0/page/0" in found and "/section/0/page/0/detail" not in found  # depth 3 is too deep
    assert all(p.url.startswith(site.base) for p in context.pages)
    assert {r.host for r in site.requests} == {f"127.0.0.1:{site.port}"}  # elsewhere.invalid never asked
    assert site.hits("/about") == 1  # /about, /about#team and /old-about's target are one page
    assert {r.user_agent for r in site.requests} == {USER_AGENT}


async def test_a_few_hundred_pages(client: httpx.AsyncClient) -> None:
    with FixtureSite(slow_s=0.1) as site:
        context = await run(site, "/", client, max_pages=1000, max_depth=5, concurrency=8, timeout_s=120)
    expected = set(site.section_pages()) | set(site.orphan_pages())
    assert expected <= set(paths(context))
    assert len(context.pages) > 300


async def test_page_limit(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=5, use_sitemap=False)
    assert len(context.pages) == 5
    # Links that turn out not to be pages (redirects, errors, files) are tried too, but no
    # more pages are fetched than the limit.
    pages = set(site.section_pages())
    assert len([p for p in site.paths() if p in pages]) <= 5


async def test_depth_limit(site: FixtureSite, client: httpx.AsyncClient) -> None:
    assert paths(await run(site, "/", client, max_depth=0)) == ["/"]
    shallow = await run(site, "/", client, max_depth=1, max_pages=100, use_sitemap=False)
    assert {p.depth for p in shallow.pages} == {0, 1}
    assert not any("/page/" in p for p in site.paths())


async def test_sitemap_pages_are_crawled(site: FixtureSite, client: httpx.AsyncClient) -> None:
    with_sitemap = await run(site, "/", client, max_pages=200, max_depth=1)
    assert {"/orphan/0", "/orphan/1"} <= set(paths(with_sitemap))  # linked from nowhere
    assert site.hits("/sitemap.xml") == 1 and site.hits("/sitemap-pages.xml") == 1  # the index, then its sitemap

    without = await run(site, "/", client, max_pages=200, max_depth=1, use_sitemap=False)
    assert not {"/orphan/0", "/orphan/1"} & set(paths(without))


async def test_total_time_limit_returns_the_pages_so_far(client: httpx.AsyncClient) -> None:
    with FixtureSite(sections=2, pages_per_section=5, page_delay_s=0.4) as site:
        started = time.monotonic()
        context = await run(site, "/", client, timeout_s=1.5, max_pages=100, concurrency=1, use_sitemap=False)
        elapsed = time.monotonic() - started
    assert paths(context)[0] == "/" and 1 <= len(context.pages) < 5
    assert elapsed < 3


async def test_total_time_limit_without_a_page_fails(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/hang", client, timeout_s=0.5, request_timeout_s=10)
    assert (error.code, error.retryable) == ("timeout", True)


# -- robots.txt and page directives --------------------------------------------------


async def test_robots_rules_for_the_sitewright_agent(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=1, use_sitemap=False)
    assert site.hits("/private/area") == 0
    assert site.hits("/not-for-sitewright/area") == 0  # SitewrightBot's own group applies
    assert context.skipped["robots_disallowed"] == 2
    assert site.hits("/robots.txt") == 1


async def test_another_agent_gets_the_star_group(site: FixtureSite, client: httpx.AsyncClient) -> None:
    await run(site, "/", client, user_agent="OtherBot/2.0", max_pages=100, max_depth=1, use_sitemap=False)
    assert site.hits("/private/area") == 0
    assert site.hits("/not-for-sitewright/area") == 1


async def test_start_url_disallowed_by_robots(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/private/area", client)
    assert (error.code, error.retryable) == ("robots_disallowed", False)
    assert site.paths() == ["/robots.txt"]


async def test_crawl_delay_spaces_requests(client: httpx.AsyncClient) -> None:
    with FixtureSite(sections=2, pages_per_section=2, crawl_delay=0.3) as site:
        await run(site, "/", client, max_pages=4, max_depth=1, concurrency=4, use_sitemap=False)
    times = [r.at for r in site.requests if r.path != "/robots.txt"]
    assert len(times) >= 4
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.25, gaps


async def test_later_crawls_reuse_robots_txt_and_still_honour_its_crawl_delay(client: httpx.AsyncClient) -> None:
    cache = RobotsCache(ttl_s=60)
    with FixtureSite(sections=2, pages_per_section=2, crawl_delay=0.3) as site:
        for _ in range(2):
            await crawl(
                site.url("/"),
                CrawlLimits(max_pages=3, max_depth=1, concurrency=4, use_sitemap=False),
                client=client,
                guard=LOOPBACK,
                user_agent=USER_AGENT,
                robots_cache=cache,
            )
        assert site.hits("/robots.txt") == 1
        second = [r.at for r in site.requests if r.path != "/robots.txt"][3:]
        assert len(second) >= 3 and min(b - a for a, b in zip(second, second[1:])) >= 0.25
        # Another agent's rules are its own, and an expired entry is asked for again.
        await crawl(
            site.url("/"),
            CrawlLimits(max_pages=1, use_sitemap=False),
            client=client,
            guard=LOOPBACK,
            user_agent="OtherBot/2.0",
            robots_cache=cache,
        )
        assert site.hits("/robots.txt") == 2
        await crawl(
            site.url("/"),
            CrawlLimits(max_pages=1, use_sitemap=False),
            client=client,
            guard=LOOPBACK,
            user_agent=USER_AGENT,
            robots_cache=RobotsCache(ttl_s=0),
        )
        assert site.hits("/robots.txt") == 3


async def test_noindex_pages_are_left_out_but_followed(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=2, use_sitemap=False)
    found = paths(context)
    assert "/noindex" not in found and "/header-noindex" not in found  # meta tag and X-Robots-Tag
    assert "/behind-noindex" in found
    assert context.skipped["noindex"] == 2


async def test_nofollow_pages_and_links_are_not_followed(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=2, use_sitemap=False)
    assert "/nofollow" in paths(context)  # indexed, but its links are not followed
    assert site.hits("/behind-nofollow") == 0
    assert site.hits("/rel-nofollowed") == 0  # rel="nofollow" on the link


async def test_duplicates_by_query_string_and_canonical(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=1, use_sitemap=False)
    found = paths(context)
    assert [p for p in found if p.startswith("/products")] == ["/products?id=1", "/products?id=2"]
    assert site.hits("/products?id=1&utm_source=newsletter") == 0  # tracking parameters dropped
    assert site.hits("/products?id=2&utm_campaign=spring") == 0
    assert site.hits("/products?id=1&sort=price") == 1  # fetched; its canonical is /products?id=1
    assert site.hits("/products?id=2&view=grid") == 1  # fetched; same content as /products?id=2
    assert context.skipped["duplicate"] >= 2


# -- limits on size ------------------------------------------------------------------


async def test_pages_over_the_size_limit_are_skipped(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=1, use_sitemap=False)
    assert "/huge" not in paths(context) and context.skipped["too_large"] == 1
    error = await fails(site, "/huge", client)  # declared Content-Length over the limit
    assert (error.code, error.retryable) == ("too_large", False)
    error = await fails(site, "/huge-stream", client, max_bytes_per_page=200_000)  # no length: counted as it comes
    assert (error.code, error.retryable) == ("too_large", False)


async def test_job_byte_budget_stops_the_crawl(site: FixtureSite, client: httpx.AsyncClient) -> None:
    full = await run(site, "/", client, max_pages=100, max_depth=2, use_sitemap=False)
    capped = await run(site, "/", client, max_pages=100, max_depth=2, use_sitemap=False, max_total_bytes=40_000)
    assert capped.bytes_fetched <= 40_000 + 70_000  # at most the pages in flight when it ran out
    assert 1 <= len(capped.pages) < len(full.pages)


async def test_non_html_is_skipped_and_counted(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=100, max_depth=1, use_sitemap=False)
    assert context.skipped["not_html"] == 2  # /data.json and /feed, known only by their Content-Type
    assert site.hits("/files/guide.pdf") == 0  # known by its name: never fetched
    assert (await fails(site, "/data.json", client)).code == "not_html"


# -- politeness: concurrency, delay, retries -------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_per_host_concurrency(client: httpx.AsyncClient, concurrency: int) -> None:
    with FixtureSite(sections=6, pages_per_section=2, page_delay_s=0.15) as site:
        await run(site, "/", client, max_pages=8, max_depth=1, concurrency=concurrency, use_sitemap=False)
    assert site.peak_in_flight == concurrency


async def test_per_host_delay(site: FixtureSite, client: httpx.AsyncClient) -> None:
    await run(site, "/", client, max_pages=4, max_depth=1, concurrency=4, delay_s=0.2, use_sitemap=False)
    times = [r.at for r in site.requests if r.path != "/robots.txt"]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.15


async def test_5xx_is_retried_with_backoff(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/flaky", client, max_depth=0, max_retries=2)  # 503, 503, then 200
    assert paths(context) == ["/flaky"] and site.hits("/flaky") == 3


async def test_retries_run_out(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/error", client, max_retries=2)
    assert (error.code, error.retryable) == ("http_error", True)
    assert site.hits("/error") == 3


async def test_429_waits_for_retry_after(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await run(site, "/ratelimited", client, max_depth=0)
    assert paths(context) == ["/ratelimited"]
    first, second = [r.at for r in site.requests if r.path == "/ratelimited"]
    assert second - first >= 0.95  # Retry-After: 1


async def test_408_is_retried(site: FixtureSite, client: httpx.AsyncClient) -> None:
    assert paths(await run(site, "/request-timeout", client, max_depth=0)) == ["/request-timeout"]
    assert site.hits("/request-timeout") == 2


async def test_404_is_not_retried(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/missing", client)
    assert (error.code, error.retryable) == ("http_error", False)
    assert site.hits("/missing") == 1


# -- redirects and schemes -----------------------------------------------------------


async def test_redirects_are_followed(site: FixtureSite, client: httpx.AsyncClient) -> None:
    assert paths(await run(site, "/old-about", client, max_depth=0)) == ["/about"]
    assert paths(await run(site, "/chain/3", client, max_depth=0, max_redirects=5)) == ["/about"]


async def test_redirects_past_the_limit_fail(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/chain/9", client, max_redirects=5)
    assert (error.code, error.retryable) == ("too_many_redirects", False)
    assert site.hits("/chain/4") == 1 and site.hits("/chain/3") == 0  # six requests, then it stopped


async def test_redirect_loops_fail(site: FixtureSite, client: httpx.AsyncClient) -> None:
    assert (await fails(site, "/loop/a", client)).code == "too_many_redirects"
    assert site.hits("/loop/a") == 1 and site.hits("/loop/b") == 1


async def test_only_http_and_https(site: FixtureSite, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await crawl("ftp://127.0.0.1/", CrawlLimits(), client=client, guard=LOOPBACK, user_agent=USER_AGENT)
    assert caught.value.code == "unsupported_scheme"
    error = await fails(site, "/to-private?target=" + quote("file:///etc/passwd", safe=""), client)
    assert error.code == "unsupported_scheme"  # nor may a redirect lead elsewhere


# -- failure classes -----------------------------------------------------------------


async def test_unreachable_host(client: httpx.AsyncClient) -> None:
    # A bound socket that never listens refuses connections, and holds its port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        with pytest.raises(CrawlError) as caught:
            await crawl(url, CrawlLimits(), client=client, guard=LOOPBACK, user_agent=USER_AGENT)
    assert (caught.value.code, caught.value.retryable) == ("unreachable", True)


async def test_dns_failure(client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await crawl("http://no-such-host.invalid/", CrawlLimits(), client=client, guard=LOOPBACK, user_agent=USER_AGENT)
    assert (caught.value.code, caught.value.retryable) == ("dns_failure", True)


async def test_request_timeout(site: FixtureSite, client: httpx.AsyncClient) -> None:
    error = await fails(site, "/slow/1", client, request_timeout_s=0.05, max_retries=0)
    assert (error.code, error.retryable) == ("timeout", True)


# -- SSRF: the guard decides every connection ---------------------------------------------


def fixed_resolver(answers: dict[str, str], calls: list[str] | None = None):
    """A resolver that answers from `answers` (for names that must resolve without DNS)."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [answers[host]]

    return resolve


async def test_connects_to_the_address_that_was_checked(site: FixtureSite, client: httpx.AsyncClient) -> None:
    """The name is resolved once and every request goes to that address: a DNS answer that
    changes afterwards (rebinding to a private address) is never used."""
    calls: list[str] = []
    answers = {"shop.sitewright.test": "127.0.0.1"}
    resolve = fixed_resolver(answers, calls)

    async def rebinding(host: str, port: int) -> list[str]:
        result = await resolve(host, port)
        answers[host] = "10.0.0.9"  # the next answer would point inside the network
        return result

    guard = AddressGuard(allow_cidrs=["127.0.0.1/32"], resolver=rebinding)
    context = await crawl(
        f"http://shop.sitewright.test:{site.port}/",
        CrawlLimits(max_depth=1, max_pages=6, use_sitemap=False),
        client=client,
        guard=guard,
        user_agent=USER_AGENT,
    )
    assert len(context.pages) == 6
    assert calls == ["shop.sitewright.test"]
    assert {r.host for r in site.requests} == {f"shop.sitewright.test:{site.port}"}


async def test_robots_txt_redirect_to_a_private_address_is_refused(client: httpx.AsyncClient) -> None:
    with FixtureSite(robots_redirect="http://169.254.169.254/latest/meta-data/") as site:
        with pytest.raises(CrawlError) as caught:
            await run(site, "/", client, guard=AddressGuard(allow_cidrs=["127.0.0.1/32"]))
        assert site.paths() == ["/robots.txt"]  # the start page itself was never fetched
    assert (caught.value.code, caught.value.retryable) == ("blocked_address", False)


async def test_a_large_page_is_parsed_off_the_event_loop(site: FixtureSite, client: httpx.AsyncClient, monkeypatch):
    """A 3 MB page holds the loop for a second or more while it is parsed: long enough to miss the consumer
    group's heartbeats and hold up every other crawl. Pages over PARSE_INLINE_BYTES go to a thread."""
    import threading

    from sitewright_crawler import crawl as crawl_module

    parsed_on: dict[str, str] = {}
    original = crawl_module._parse

    def recording(body: bytes, charset: str | None, url: str, **options: Any):
        parsed_on[urlsplit(url).path] = threading.current_thread().name
        return original(body, charset, url, **options)

    monkeypatch.setattr(crawl_module, "_parse", recording)
    await run(site, "/huge", client, max_pages=1, max_bytes_per_page=site.huge_bytes + 100_000)
    await run(site, "/", client, max_pages=1, max_depth=0)
    main = threading.current_thread().name
    assert site.huge_bytes > crawl_module.PARSE_INLINE_BYTES
    assert parsed_on["/huge"] != main and parsed_on["/"] == main
