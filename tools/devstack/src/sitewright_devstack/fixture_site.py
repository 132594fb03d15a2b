"""A generated website with every behaviour a crawler must cope with, served on loopback.

The crawler's tests and its benchmark crawl the same site, so what the tests
prove and what the benchmark measures are the same pages. A few hundred pages
in nested sections, a sitemap index (with pages only the sitemap knows),
robots.txt rules (one group for SitewrightBot, one for everyone), redirects,
redirect chains and loops, slow pages, 404/500/503/408/429 (with Retry-After),
non-HTML files, huge pages, noindex/nofollow pages and duplicate content
reached through query strings (with and without a canonical link).

    with FixtureSite() as site:
        site.url("/")        # http://127.0.0.1:<port>/
        site.hits("/flaky")  # how often a path was requested

`python -m sitewright_devstack.fixture_site` serves it until interrupted and
prints its base URL on the first line (the benchmark runs it that way, in its
own process, so the server's work does not count against either crawler).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

HTML = "text/html; charset=utf-8"
BOT = "SitewrightBot"
_WORDS = (
    "garden tools seeds soil compost spade rake watering can hose pots bulbs roses herbs tomatoes "
    "shade sun frost spring summer autumn winter pruning mulch lawn hedge orchard greenhouse"
).split()


@dataclass(frozen=True)
class Request:
    """One request the site answered, for tests to assert on."""

    path: str
    host: str
    user_agent: str
    at: float


@dataclass
class FixtureSite:
    """The site's shape; `start()` serves it on a free loopback port."""

    sections: int = 10
    pages_per_section: int = 25
    orphans: int = 10  # pages linked from nowhere, listed only in the sitemap
    slow_s: float = 1.0
    crawl_delay: float | None = None
    huge_bytes: int = 3_000_000
    flaky_failures: int = 2  # /flaky answers 503 this many times, then 200
    page_delay_s: float = 0.0  # added to every content page, to make a whole site slow
    robots_redirect: str | None = None  # robots.txt redirects here instead of answering
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    _hits: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)
    _pages: dict[str, tuple[dict[str, str], bytes] | None] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0  # most requests (other than robots.txt) being answered at once

    # -- serving -----------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self._server is not None, "start() the site first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the site first"
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return self.base + path

    def start(self) -> FixtureSite:
        self._server = ThreadingHTTPServer((self.host, 0), functools.partial(_Handler, self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()  # unblock /hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FixtureSite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def hits(self, path: str) -> int:
        """Requests for `path` (with its query string, if any) so far."""
        with self._lock:
            return self._hits[path]

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def _record(self, request: Request) -> int:
        with self._lock:
            self.requests.append(request)
            self._hits[request.path] += 1
            return self._hits[request.path]

    # -- what the site holds ------------------------------------------------------

    def section_pages(self) -> list[str]:
        """Every page reachable by links from the home page (no errors, no traps)."""
        pages = ["/", "/about"]
        for s in range(self.sections):
            pages.append(f"/section/{s}/")
            for i in range(self.pages_per_section):
                pages.append(f"/section/{s}/page/{i}")
                if i % 5 == 0:
                    pages.append(f"/section/{s}/page/{i}/detail")
        return pages

    def orphan_pages(self) -> list[str]:
        return [f"/orphan/{k}" for k in range(self.orphans)]

    def robots_txt(self) -> str:
        delay = f"Crawl-delay: {self.crawl_delay:g}\n" if self.crawl_delay else ""
        return (
            "User-agent: *\nDisallow: /private/\n\n"
            f"User-agent: {BOT}\nDisallow: /private/\nDisallow: /not-for-sitewright/\n{delay}\n"
            f"Sitemap: {self.base}/sitemap.xml\n"
        )

    def respond(self, path: str, hit: int) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one request; `hit` counts requests for this path so far."""
        parts = urlsplit(path)
        route, query = parts.path, dict(parse_qsl(parts.query))
        if route == "/robots.txt" and self.robots_redirect:
            return 301, {"Location": self.robots_redirect}, b""
        if route == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, self.robots_txt().encode()
        if route == "/sitemap.xml":
            return 200, {"Content-Type": "application/xml"}, self._sitemap_index()
        if route == "/sitemap-pages.xml":
            return 200, {"Content-Type": "application/xml"}, self._sitemap(self.section_pages() + self.orphan_pages())
        if route in _REDIRECTS:
            return 301, {"Location": _REDIRECTS[route]}, b""
        if route.startswith("/chain/"):  # /chain/n redirects n more times, then lands on /about
            n = int(route.rsplit("/", 1)[1])
            return 302, {"Location": f"/chain/{n - 1}" if n > 0 else "/about"}, b""
        if route == "/to-private":
            return 302, {"Location": query.get("target", "http://169.254.169.254/latest/meta-data/")}, b""
        if route == "/error":
            return 500, {"Content-Type": HTML}, _page("Server error", "")
        if route == "/flaky":
            if hit <= self.flaky_failures:
                return 503, {"Content-Type": HTML, "Retry-After": "0"}, _page("Unavailable", "")
            return 200, {"Content-Type": HTML}, _page("Flaky", _text("flaky", 3))
        if route == "/ratelimited":
            if hit == 1:
                return 429, {"Content-Type": HTML, "Retry-After": "1"}, _page("Slow down", "")
            return 200, {"Content-Type": HTML}, _page("Rate limited", _text("ratelimited", 3))
        if route == "/request-timeout":
            if hit == 1:
                return 408, {"Content-Type": HTML}, _page("Request timeout", "")
            return 200, {"Content-Type": HTML}, _page("Request timeout page", _text("request-timeout", 3))
        if route == "/data.json":
            return 200, {"Content-Type": "application/json"}, b'{"not": "html"}'
        if route == "/feed":  # not HTML, and nothing in the URL says so
            return 200, {"Content-Type": "application/rss+xml"}, b"<rss version='2.0'></rss>"
        if route.startswith("/files/"):
            return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 fixture"
        if route == "/huge":
            filler = "<p>" + "huge page filler text " * (self.huge_bytes // 22) + "</p>"
            return 200, {"Content-Type": HTML}, _page("Huge", filler)
        if route.startswith("/slow/"):
            time.sleep(self.slow_s)
            return 200, {"Content-Type": HTML}, _page(f"Slow {route[6:]}", _text(route, 3))
        if route == "/products":
            return self._product(query)
        page = self._content_page(route)
        if page is not None and self.page_delay_s:
            time.sleep(self.page_delay_s)
        if page is None:
            return 404, {"Content-Type": HTML}, _page("Not found", "<p>No such page.</p>")
        return 200, {"Content-Type": HTML, **page[0]}, page[1]

    def _sitemap_index(self) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{self.base}/sitemap-pages.xml</loc></sitemap>"
            "</sitemapindex>"
        ).encode()

    def _sitemap(self, paths: list[str]) -> bytes:
        urls = "".join(f"<url><loc>{html.escape(self.base + p)}</loc></url>" for p in paths)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        ).encode()

    def _product(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        # The same product under many URLs: tracking and sort parameters change nothing.
        product = query.get("id", "1")
        canonical = "" if product == "2" else f'<link rel="canonical" href="/products?id={product}">'
        # Sorting changes a line of the page, so only the canonical link says it is the same page.
        sort = f"<p>Sorted by {html.escape(query['sort'])}.</p>" if "sort" in query else ""
        body = _text(f"product-{product}", 4) + sort
        return 200, {"Content-Type": HTML}, _page(f"Product {product}", body, head=canonical)

    def _content_page(self, route: str) -> tuple[dict[str, str], bytes] | None:
        # Built once per path: the server's own work should not weigh on a benchmark.
        if route not in self._pages:
            self._pages[route] = self._build_page(route)
        return self._pages[route]

    def _build_page(self, route: str) -> tuple[dict[str, str], bytes] | None:
        if route == "/":
            return {}, self._home()
        if route == "/about":
            return {}, _page("About", _text("about", 4), links=["/"])
        if route == "/noindex":
            return {}, _page(
                "Noindex", _text("noindex", 2), links=["/behind-noindex"], head='<meta name="robots" content="noindex">'
            )
        if route == "/behind-noindex":
            return {}, _page("Behind noindex", _text("behind-noindex", 2))
        if route == "/nofollow":
            return {}, _page(
                "Nofollow",
                _text("nofollow", 2),
                links=["/behind-nofollow"],
                head='<meta name="robots" content="nofollow">',
            )
        if route == "/header-noindex":
            return {"X-Robots-Tag": "noindex"}, _page("Header noindex", _text("header-noindex", 2))
        if route in ("/behind-nofollow", "/rel-nofollowed", "/private/area", "/not-for-sitewright/area"):
            return {}, _page(route.strip("/").replace("/", " ").title(), _text(route, 2))
        if route.startswith("/orphan/"):
            return {}, _page(f"Orphan {route[8:]}", _text(route, 3), links=["/"])
        parts = route.strip("/").split("/")
        if parts[0] != "section" or not parts[1].isdigit() or int(parts[1]) >= self.sections:
            return None
        s = int(parts[1])
        if len(parts) == 2:
            links = ["/"] + [f"/section/{s}/page/{i}" for i in range(self.pages_per_section)]
            return {}, _page(f"Section {s}", _text(route, 3), links=links)
        if len(parts) < 4 or parts[2] != "page" or not parts[3].isdigit():
            return None
        i = int(parts[3])
        if i >= self.pages_per_section:
            return None
        if len(parts) == 5 and parts[4] == "detail" and i % 5 == 0:
            return {}, _page(f"Detail {s}.{i}", _text(route, 5), links=[f"/section/{s}/page/{i}"])
        if len(parts) != 4:
            return None
        links = [f"/section/{s}/", f"/section/{s}/page/{(i + 1) % self.pages_per_section}"]
        if i % 5 == 0:
            links.append(f"/section/{s}/page/{i}/detail")
        return {}, _page(f"Page {s}.{i}", _text(route, 6), links=links)

    def _home(self) -> bytes:
        links = [f"/section/{s}/" for s in range(self.sections)] + [
            "/about",
            "/about#team",
            "/old-about",
            "/chain/3",
            "/chain/9",
            "/loop/a",
            "/private/area",
            "/not-for-sitewright/area",
            "/error",
            "/missing",
            "/flaky",
            "/ratelimited",
            "/request-timeout",
            "/data.json",
            "/feed",
            "/files/guide.pdf",
            "/huge",
            "/slow/1",
            "/slow/2",
            "/noindex",
            "/nofollow",
            "/header-noindex",
            "/products?id=1",
            "/products?id=1&utm_source=newsletter",
            "/products?sort=price&id=1",
            "/products?id=2",
            "/products?id=2&view=grid",
            "/products?id=2&utm_campaign=spring",
            "http://elsewhere.invalid/",
            "mailto:shop@example.invalid",
        ]
        extra = '<p><a href="/rel-nofollowed" rel="nofollow">sponsored</a></p>'
        ld = (
            '<script type="application/ld+json">'
            '{"@context": "https://schema.org", "@type": "Store", "name": "Fixture Garden"}</script>'
        )
        og = '<meta property="og:title" content="Fixture Garden"><meta property="og:type" content="website">'
        return _page("Fixture Garden", _text("home", 4) + extra, links=links, head=ld + og)


_REDIRECTS = {"/old-about": "/about", "/loop/a": "/loop/b", "/loop/b": "/loop/a"}


def _text(seed: str, paragraphs: int) -> str:
    """Deterministic prose unique to `seed`, so pages differ and duplicates are exact."""
    digest = hashlib.sha256(seed.encode()).digest()
    out = []
    for p in range(paragraphs):
        words = [_WORDS[(digest[(p * 7 + w) % 32] + w * p) % len(_WORDS)] for w in range(40)]
        out.append(f"<p>{seed} {' '.join(words).capitalize()}.</p>")
    return "".join(out)


def _page(title: str, body: str, *, links: list[str] = (), head: str = "") -> bytes:  # type: ignore[assignment]
    nav = "".join(f'<a href="{html.escape(href)}">{html.escape(href)}</a> ' for href in links)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        f"<meta name='description' content='About {html.escape(title)}.'>{head}</head>"
        f"<body><header><nav>{nav}</nav></header><main><h1>{html.escape(title)}</h1>{body}</main>"
        "<footer>Fixture Garden, 1 Loopback Lane</footer></body></html>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real sites do

    def __init__(self, site: FixtureSite, *args: object) -> None:
        self.site = site
        super().__init__(*args)  # type: ignore[arg-type]

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            pass  # a crawler that hangs up mid-request (a cancelled crawl, a page too large) is no error

    def do_GET(self) -> None:  # noqa: N802
        hit = self.site._record(
            Request(self.path, self.headers.get("Host", ""), self.headers.get("User-Agent", ""), time.monotonic())
        )
        if self.path == "/hang":  # answers only when the site stops: the crawler must give up first
            self.site._release.wait(timeout=60)
            self.close_connection = True
            return
        if self.path == "/huge-stream":
            self._stream()
            return
        with self.site._lock:
            self.site.in_flight += 1
            if self.path != "/robots.txt":
                self.site.peak_in_flight = max(self.site.peak_in_flight, self.site.in_flight)
        try:
            status, headers, body = self.site.respond(self.path, hit)
        finally:
            with self.site._lock:
                self.site.in_flight -= 1
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the crawler hung up (a page too large): nothing to report

    def _stream(self) -> None:
        """A huge page without Content-Length: only counting the bytes as they come stops it."""
        self.send_response(200)
        self.send_header("Content-Type", HTML)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"<p>" + b"streamed filler " * 4096 + b"</p>"
        try:
            for _ in range(max(1, self.site.huge_bytes // len(chunk))):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the crawler hung up, as it should

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow-s", type=float, default=FixtureSite.slow_s)
    args = parser.parse_args()
    site = FixtureSite(slow_s=args.slow_s).start()
    print(site.base, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        site.stop()


if __name__ == "__main__":
    main()
