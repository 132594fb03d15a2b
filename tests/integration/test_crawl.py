"""The crawler against a real HTTP server on loopback, on a port chosen at run time."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sitewright_contracts.models import CrawlContext, PageSummary
from sitewright_crawler.crawl import (
    CrawlError,
    CrawlLimits,
    crawl,
    fit_to_budget,
    normalize_url,
)
from sitewright_runtime.netguard import AddressGuard

USER_AGENT = "SitewrightTest/1.0 (+https://sitewright.test/bot)"
LOOPBACK = AddressGuard(allow_cidrs=["127.0.0.0/8"])


def page(title: str, *links: str, head: str = "", body: str = "") -> bytes:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return (
        f"<!doctype html><html lang='en'><head><title>{title}</title>{head}</head>"
        f"<body><nav>{anchors}</nav><main><h1>{title}</h1><p>Text of {title}.</p>{body}</main>"
        "</body></html>"
    ).encode()


HTML = "text/html; charset=utf-8"

# path -> (status, headers, body)
SITE: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private\n"),
    "/": (
        200,
        {"Content-Type": HTML},
        page(
            "Home",
            "/about",
            "/about#team",
            "/private/secret",
            "/data.json",
            "/old",
            "/broken",
            "/hidden",
            "/level1",
            "https://elsewhere.test/",
            "/logo.png",
            body='<a href="/nofollowed" rel="nofollow">skip me</a>',
        ),
    ),
    "/about": (200, {"Content-Type": HTML}, page("About", "/")),
    "/contact": (200, {"Content-Type": HTML}, page("Contact")),
    "/old": (301, {"Location": "/contact"}, b""),
    "/broken": (500, {"Content-Type": HTML}, b"<h1>oops</h1>"),
    "/missing": (404, {"Content-Type": HTML}, b"<h1>not found</h1>"),
    "/hidden": (
        200,
        {"Content-Type": HTML},
        page("Hidden", "/from-hidden", head='<meta name="robots" content="noindex">'),
    ),
    "/from-hidden": (200, {"Content-Type": HTML}, page("From hidden")),
    "/data.json": (200, {"Content-Type": "application/json"}, b'{"not": "html"}'),
    "/level1": (200, {"Content-Type": HTML}, page("Level 1", "/level2")),
    "/level2": (200, {"Content-Type": HTML}, page("Level 2", "/level3")),
    "/level3": (200, {"Content-Type": HTML}, page("Level 3")),
    "/private/secret": (200, {"Content-Type": HTML}, page("Secret")),
    "/nofollowed": (200, {"Content-Type": HTML}, page("Nofollowed")),
    "/redirect-start": (302, {"Location": "/"}, b""),
    "/loop-a": (302, {"Location": "/loop-b"}, b""),
    "/loop-b": (302, {"Location": "/loop-a"}, b""),
    "/big": (200, {"Content-Type": HTML}, page("Big", body="<p>" + "x" * 50_000 + "</p>")),
    "/closed": (
        200,
        {"Content-Type": HTML},
        page("Closed", "/about", head='<meta name="robots" content="nofollow">'),
    ),
    "/partial": (200, {"Content-Type": HTML}, page("Partial", "/hang", "/about")),
}


@dataclass
class Site:
    base: str
    requests: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def site() -> Iterator[Site]:
    release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Site(base=f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            state.hosts.append(self.headers.get("Host", ""))
            state.agents.add(self.headers.get("User-Agent", ""))
            if self.path == "/hang":
                # Held until the test ends: the crawler must give up on its own.
                release.wait(timeout=30)
                return
            status, headers, body = SITE.get(
                self.path, (404, {"Content-Type": HTML}, b"no such page")
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env off: a proxy from the environment must not sit between the test and loopback.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def run(
    site: Site, path: str, client: httpx.AsyncClient, guard: AddressGuard = LOOPBACK, **limits: Any
) -> CrawlContext:
    limits_ = CrawlLimits(**limits)
    return await crawl(site.url(path), limits_, client=client, guard=guard, user_agent=USER_AGENT)


def paths(context: CrawlContext) -> list[str]:
    return [urlsplit(p.url).path for p in context.pages]


async def test_crawls_the_site_breadth_first(site: Site, client: httpx.AsyncClient) -> None:
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, estimated: int) -> None:
        progress.append((done, estimated))

    context = await crawl(
        site.url("/"),
        CrawlLimits(max_pages=20, max_depth=2),
        client=client,
        guard=LOOPBACK,
        user_agent=USER_AGENT,
        on_progress=on_progress,
    )

    assert paths(context) == ["/", "/about", "/contact", "/level1", "/from-hidden", "/level2"]
    home = context.pages[0]
    assert (home.title, home.depth, home.language) == ("Home", 0, "en")
    assert home.text == "Home\nText of Home.\nskip me"
    assert context.pages[2].url == site.url("/contact")  # reached through the /old redirect
    # Skipped: /private/secret (robots), /data.json (not HTML), /broken (500), /hidden (noindex).
    assert context.pages_skipped == 4
    assert context.bytes_fetched > 0 and context.duration_s > 0
    assert context.start_url == site.url("/")

    assert "/private/secret" not in site.requests  # robots.txt honoured without a request
    assert "/nofollowed" not in site.requests  # rel=nofollow link
    assert "/logo.png" not in site.requests  # never HTML, never fetched
    assert "/level3" not in site.requests  # beyond max_depth
    assert site.requests.count("/robots.txt") == 1
    assert site.requests.count("/about") == 1  # the #team fragment is the same page
    assert site.agents == {USER_AGENT}

    assert progress[0][0] == 1 and progress[-1][0] == 7  # seven HTML pages, /hidden included
    assert all(done <= estimated <= 20 for done, estimated in progress)


async def test_page_limit(site: Site, client: httpx.AsyncClient) -> None:
    context = await run(site, "/", client, max_pages=2)
    assert paths(context) == ["/", "/about"]
    html_pages = [
        p for p in site.requests if p not in ("/robots.txt", "/data.json", "/broken", "/old")
    ]
    assert len(html_pages) == 2


async def test_depth_limit(site: Site, client: httpx.AsyncClient) -> None:
    assert paths(await run(site, "/level1", client, max_depth=0)) == ["/level1"]
    assert paths(await run(site, "/level1", client, max_depth=1)) == ["/level1", "/level2"]
    assert "/level3" not in site.requests


async def test_nofollow_page_links_are_not_followed(site: Site, client: httpx.AsyncClient) -> None:
    assert paths(await run(site, "/closed", client)) == ["/closed"]
    assert "/about" not in site.requests


async def test_start_url_disallowed_by_robots(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/private/secret", client)
    assert (caught.value.code, caught.value.retryable) == ("robots_disallowed", False)
    assert site.requests == ["/robots.txt"]


async def test_start_redirect_is_followed(site: Site, client: httpx.AsyncClient) -> None:
    context = await run(site, "/redirect-start", client, max_depth=0)
    assert [p.url for p in context.pages] == [site.url("/")]


async def test_redirect_loop_fails(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/loop-a", client)
    assert caught.value.code == "too_many_redirects"


@pytest.mark.parametrize(
    ("path", "code", "retryable"),
    [
        ("/broken", "http_error", True),
        ("/missing", "http_error", False),
        ("/data.json", "not_html", False),
    ],
)
async def test_start_page_errors(
    site: Site, client: httpx.AsyncClient, path: str, code: str, retryable: bool
) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, path, client)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    info = caught.value.info()
    assert (info.code, info.retryable) == (code, retryable) and info.message


async def test_start_page_timeout(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/hang", client, request_timeout_s=0.3)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


async def test_overall_deadline_without_pages(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/hang", client, timeout_s=0.3, request_timeout_s=10)
    assert (caught.value.code, caught.value.retryable) == ("timeout", True)


async def test_overall_deadline_returns_pages_so_far(site: Site, client: httpx.AsyncClient) -> None:
    context = await run(site, "/partial", client, timeout_s=2, max_depth=1)
    assert paths(context) == ["/partial", "/about"]


async def test_unreachable_start(client: httpx.AsyncClient) -> None:
    # A bound socket that never listens refuses connections, and holds its port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        with pytest.raises(CrawlError) as caught:
            await crawl(url, CrawlLimits(), client=client, guard=LOOPBACK, user_agent=USER_AGENT)
    assert (caught.value.code, caught.value.retryable) == ("unreachable", True)


async def test_dns_failure(client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await crawl(
            "http://no-such-host.invalid/",
            CrawlLimits(),
            client=client,
            guard=LOOPBACK,
            user_agent=USER_AGENT,
        )
    assert (caught.value.code, caught.value.retryable) == ("dns_failure", True)


async def test_oversized_pages(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/big", client, max_bytes_per_page=10_000)
    assert (caught.value.code, caught.value.retryable) == ("too_large", False)


async def test_loopback_is_refused_unless_allowed(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError) as caught:
        await run(site, "/", client, guard=AddressGuard())
    assert (caught.value.code, caught.value.retryable) == ("blocked_address", False)
    assert site.requests == []

    context = await run(
        site, "/", client, guard=AddressGuard(allow_cidrs=["127.0.0.0/8"]), max_depth=0
    )
    assert paths(context) == ["/"]


async def test_connects_to_the_address_the_guard_checked(
    site: Site, client: httpx.AsyncClient
) -> None:
    """A name the guard resolved is not looked up again, so DNS rebinding cannot swap addresses."""

    class PinnedGuard(AddressGuard):
        async def resolve(self, url: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            self.split(url)
            return [ipaddress.ip_address("127.0.0.1")]

    port = site.base.rsplit(":", 1)[1]
    context = await crawl(
        f"http://shop.sitewright.invalid:{port}/level1",
        CrawlLimits(max_depth=1),
        client=client,
        guard=PinnedGuard(),
        user_agent=USER_AGENT,
    )
    assert [p.url for p in context.pages] == [
        f"http://shop.sitewright.invalid:{port}/level1",
        f"http://shop.sitewright.invalid:{port}/level2",
    ]
    assert set(site.hosts) == {f"shop.sitewright.invalid:{port}"}


def test_normalize_url() -> None:
    assert normalize_url("HTTP://Example.COM:80/a?b=1#frag") == "http://example.com/a?b=1"
    assert normalize_url("https://example.com:443") == "https://example.com/"
    assert normalize_url("https://example.com:8443/x") == "https://example.com:8443/x"


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
