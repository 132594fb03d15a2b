"""Breadth-first crawl of one site: robots.txt and sitemaps honoured, every address checked.

No broker or database here: the handler calls `crawl()` and turns its result or
`CrawlError` into events.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import httpx

from sitewright_contracts.models import CrawlContext, PageSummary
from sitewright_crawler.budget import bound_context, fit_to_budget
from sitewright_crawler.clean import warn
from sitewright_crawler.extract import Directives, extract_page, parse_robots_directives
from sitewright_crawler.fetch import Fetcher, _charset, _decode, _media_type, _Response, _status_error
from sitewright_crawler.limits import CrawlError, CrawlLimits
from sitewright_crawler.robots import Robots, RobotsCache, parse_sitemap
from sitewright_crawler.urls import Scope, is_asset, normalize_url, origin
from sitewright_runtime.netguard import AddressGuard, BlockedAddress

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], Awaitable[None]]

# RFC 9309: crawlers must parse at least 500 KiB of robots.txt and follow at least five redirects.
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_MAX_REDIRECTS = 5
# A Crawl-delay above this would let a site's robots.txt stall the job until its deadline.
MAX_CRAWL_DELAY_S = 10.0
# A site whose links are mostly broken or non-HTML must not cost an unbounded number of requests.
MAX_ATTEMPTS_PER_PAGE = 5
# Sitemaps: how many files (an index and what it lists), how big each, how many page URLs in all.
MAX_SITEMAP_FILES = 5
MAX_SITEMAP_BYTES = 10_000_000
SITEMAP_URLS_PER_PAGE = 4
# Sitemap pages sort after every page found by links at the same depth.
_SITEMAP_POSITION = 1 << 30
# Pages larger than this are decoded and parsed in a thread, off the event loop (`_Crawler._process`).
PARSE_INLINE_BYTES = 256 * 1024


class _Page(NamedTuple):
    depth: int
    position: tuple[int, ...]
    url: str
    canonical: str | None
    fingerprint: bytes
    summary: PageSummary


class _Crawler:
    """The state of one crawl; `crawl()` is its only caller."""

    def __init__(
        self,
        limits: CrawlLimits,
        client: httpx.AsyncClient,
        guard: AddressGuard,
        user_agent: str,
        on_progress: ProgressCallback | None,
        robots_cache: RobotsCache | None = None,
    ):
        self.limits = limits
        self.robots_cache = robots_cache or RobotsCache(0)  # none given: this crawl asks for itself
        self.guard = guard
        self.user_agent = user_agent
        self.fetcher = Fetcher(limits, client, guard, user_agent)
        self.on_progress = on_progress
        self.scope: Scope | None = None
        self.seen: set[str] = set()
        self.pages: list[_Page] = []
        self.pages_done = 0
        self.skipped: Counter[str] = Counter()
        self.warnings: list[str] = []  # what was dropped from pages (`clean.clean_page`)
        self.attempts = 0
        self._robots: dict[str, Robots | CrawlError] = {}
        self._robots_lock = asyncio.Lock()

    # -- the walk ---------------------------------------------------------------

    async def run(self, start_url: str) -> CrawlContext:
        started = time.monotonic()
        try:
            self.guard.split(start_url)
        except BlockedAddress as exc:
            raise CrawlError(exc.code, exc.message) from exc
        try:
            async with asyncio.timeout(self.limits.timeout_s):
                await self._walk(normalize_url(start_url))
        except TimeoutError:
            if not self.pages:
                raise CrawlError(
                    "timeout", f"no page could be crawled within {self.limits.timeout_s:g} s", retryable=True
                ) from None
            log.info("crawl deadline reached with %d pages; returning them", len(self.pages))
        pages = self._unique_pages()
        if not pages:
            raise CrawlError("no_indexable_pages", "every crawled page asked not to be indexed (noindex)")
        context = CrawlContext(
            start_url=start_url,
            pages=fit_to_budget(pages, self.limits.context_budget_chars),
            pages_skipped=sum(self.skipped.values()),
            skipped=dict(self.skipped),
            warnings=self.warnings,
            bytes_fetched=self.fetcher.bytes_fetched,
            duration_s=round(time.monotonic() - started, 3),
        )
        return bound_context(context, self.limits.context_budget_bytes)

    def _unique_pages(self) -> list[PageSummary]:
        """Pages in breadth-first document order, each content once.

        Decided at the end, by position rather than by which fetch finished first,
        so the same site gives the same context however requests interleave.
        """
        ordered = sorted(self.pages, key=lambda p: (p.depth, p.position))
        crawled = {p.url for p in ordered}
        kept: list[PageSummary] = []
        fingerprints: set[bytes] = set()
        for page in ordered:
            points_elsewhere = page.canonical is not None and page.canonical != page.url and page.canonical in crawled
            if page.fingerprint in fingerprints or (points_elsewhere and page.depth > 0):
                self.skipped["duplicate"] += 1
                continue
            fingerprints.add(page.fingerprint)
            kept.append(page.summary)
        return kept

    async def _walk(self, start: str) -> None:
        self.seen.add(start)
        # The start page is fetched alone: its errors fail the crawl and its final
        # host (after redirects) decides which site the rest of the crawl stays on.
        response = await self._fetch(start, is_start=True)
        assert response is not None  # the start URL cannot redirect into an already seen URL
        self.scope = Scope(response.url, self.limits.scope)
        self._require_page(response)
        queue: deque[tuple[str, int, tuple[int, ...]]] = deque()
        for index, link in enumerate(await self._process(response, depth=0, position=())):
            queue.append((link, 1, (index,)))
        if self.limits.use_sitemap and self.limits.max_depth >= 1:
            for index, link in enumerate(await self._sitemap_urls(response.url)):
                queue.append((link, 1, (_SITEMAP_POSITION + index,)))
        await self._report(len(queue))

        running: dict[asyncio.Task[list[str]], tuple[int, tuple[int, ...]]] = {}
        try:
            while True:
                while queue and self._may_start(len(running)):
                    url, depth, position = queue.popleft()
                    self.attempts += 1
                    task = asyncio.create_task(self._visit(url, depth, position))
                    running[task] = (depth, position)
                if not running:
                    return
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    depth, position = running.pop(task)
                    for index, link in enumerate(task.result()):
                        queue.append((link, depth + 1, (*position, index)))
                await self._report(len(queue) + len(running))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _may_start(self, running: int) -> bool:
        # Per-host slots bound each host; this bounds the tasks waiting for them (domain scope
        # spreads over several hosts, so it allows a few hosts' worth).
        in_flight_cap = self.limits.concurrency * (1 if self.limits.scope == "host" else 4)
        return (
            running < in_flight_cap
            and self.pages_done + running < self.limits.max_pages
            and self.attempts < self.limits.max_pages * MAX_ATTEMPTS_PER_PAGE
            and not self.fetcher.bytes_exhausted
        )

    async def _visit(self, url: str, depth: int, position: tuple[int, ...]) -> list[str]:
        """Fetch and process one page other than the start; its failures only skip it."""
        try:
            response = await self._fetch(url, is_start=False)
            if response is None:
                self.skipped["duplicate"] += 1  # redirected to a page already seen
                return []
            self._require_page(response)
            return await self._process(response, depth, position)
        except CrawlError as exc:
            self.skipped[exc.code] += 1
            log.debug("skipped %s: %s %s", url, exc.code, exc.message)
            return []

    def _require_page(self, response: _Response) -> None:
        if not 200 <= response.status < 300:
            raise _status_error(response.url, response.status)
        if not response.is_html:
            media = _media_type(response.headers) or "no content type"
            raise CrawlError("not_html", f"{response.url} is {media}, not an HTML page")

    async def _process(self, response: _Response, depth: int, position: tuple[int, ...]) -> list[str]:
        """Extract the page, keep its summary unless noindex, and return the links to follow.

        A page over PARSE_INLINE_BYTES is decoded and parsed in a thread: a 10 MB page holds the event loop for
        seconds, long enough to miss the consumer group's heartbeats and stall every other crawl here."""
        warnings: list[str] = []
        parse = functools.partial(
            _parse,
            response.body,
            _charset(response.headers),
            response.url,
            depth=depth,
            status=response.status,
            # One page may use the whole budget; fit_to_budget shares it out at the end.
            max_text_chars=self.limits.context_budget_chars,
            warnings=warnings,
        )
        if len(response.body) > PARSE_INLINE_BYTES:
            summary, links, directives = await asyncio.to_thread(parse)
        else:
            summary, links, directives = parse()
        for warning in warnings:
            warn(self.warnings, warning)
        self.pages_done += 1
        canonical = normalize_url(summary.canonical) if summary.canonical else None
        header = parse_robots_directives(*response.headers.get_list("x-robots-tag"))
        if directives.noindex or header.noindex:
            self.skipped["noindex"] += 1  # fetched, but left out of the context as the site asks
        else:
            fingerprint = hashlib.blake2b(f"{summary.title}\n{summary.text}".encode(), digest_size=16).digest()
            self.pages.append(_Page(depth, position, response.url, canonical, fingerprint, summary))
        if directives.nofollow or header.nofollow or depth >= self.limits.max_depth:
            return []
        # The canonical page is the one worth having; fetch it even when no link points to it.
        candidates = [canonical, *links] if canonical and canonical != response.url else links
        return [url for url in map(normalize_url, candidates) if self._new_in_scope(url)]

    def _new_in_scope(self, url: str) -> bool:
        assert self.scope is not None
        if url in self.seen or not self.scope.contains(url) or is_asset(url):
            return False
        self.seen.add(url)
        return True

    async def _report(self, queued: int) -> None:
        if self.on_progress is not None:
            estimate = max(self.pages_done, min(self.limits.max_pages, self.pages_done + queued))
            await self.on_progress(self.pages_done, estimate)

    # -- sitemaps ------------------------------------------------------------------

    async def _sitemap_urls(self, start: str) -> list[str]:
        """Page URLs the site's sitemaps list (robots.txt's Sitemap lines, else /sitemap.xml)."""
        robots = self._robots.get(origin(start))
        declared = robots.sitemaps if isinstance(robots, Robots) else []
        assert self.scope is not None
        files = deque(normalize_url(u) for u in declared if self.scope.contains(normalize_url(u)))
        if not declared:
            files.append(f"{origin(start)}/sitemap.xml")
        wanted = self.limits.max_pages * SITEMAP_URLS_PER_PAGE
        pages: list[str] = []
        fetched = 0
        while files and fetched < MAX_SITEMAP_FILES and len(pages) < wanted:
            url = files.popleft()
            fetched += 1
            try:
                response = await self.fetcher.get(url, max_bytes=MAX_SITEMAP_BYTES, truncate=True, any_type=True)
            except CrawlError as exc:
                log.debug("sitemap %s unavailable: %s", url, exc.message)
                continue
            if response.status != 200:
                continue
            sitemap = parse_sitemap(response.body, MAX_SITEMAP_BYTES)
            for entry in sitemap.urls:
                try:
                    entry = normalize_url(entry)
                except ValueError:
                    continue
                if sitemap.is_index:
                    if self.scope.contains(entry):
                        files.append(entry)
                elif len(pages) < wanted and self._new_in_scope(entry):
                    pages.append(entry)
        return [url for url in pages if await self._robots_allow(url)]

    # -- one URL, through its redirects ----------------------------------------

    async def _fetch(self, url: str, *, is_start: bool) -> _Response | None:
        """GET `url`, following redirects by hand so every hop passes the guard and robots.txt.

        None when a redirect lands on a URL this crawl has already seen.
        """
        current = url
        for _ in range(self.limits.max_redirects + 1):
            # The start URL may move to another host (apex -> www); other pages may not leave the site.
            if not is_start and self.scope is not None and not self.scope.contains(current):
                raise CrawlError("off_site", f"{url} redirects off the site to {current}")
            if not await self._robots_allow(current):
                raise CrawlError("robots_disallowed", f"robots.txt does not allow crawling {current}")
            response = await self.fetcher.get(current, max_bytes=self.limits.max_bytes_per_page)
            if response.location is None:
                return response
            current = response.location
            if current in self.seen:
                if is_start:
                    raise CrawlError("too_many_redirects", f"{url} redirects in a loop")
                return None
            self.seen.add(current)
        raise CrawlError("too_many_redirects", f"{url} redirects more than {self.limits.max_redirects} times")

    # -- robots.txt --------------------------------------------------------------

    async def _robots_allow(self, url: str) -> bool:
        robots = await self._robots_for(origin(url))
        if isinstance(robots, CrawlError):
            raise robots
        return robots.allowed(url)

    async def _robots_for(self, site: str) -> Robots | CrawlError:
        if (known := self._robots.get(site)) is not None:
            return known
        # One fetch per origin, even when many pages ask at once.
        async with self._robots_lock:
            if site not in self._robots:
                try:
                    robots = self.robots_cache.get(self.user_agent, site)
                    if robots is None:
                        robots = await self._load_robots(site)
                        self.robots_cache.put(self.user_agent, site, robots)
                    self._robots[site] = robots
                    if robots.crawl_delay:
                        pacer = self.fetcher.host(f"{site}/").pacer
                        pacer.interval = max(pacer.interval, min(robots.crawl_delay, MAX_CRAWL_DELAY_S))
                except CrawlError as exc:
                    self._robots[site] = exc
            return self._robots[site]

    async def _load_robots(self, site: str) -> Robots:
        """Fetch and parse robots.txt as RFC 9309 says to treat each outcome."""
        url = f"{site}/robots.txt"
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            response = await self.fetcher.get(url, max_bytes=ROBOTS_MAX_BYTES, truncate=True, any_type=True)
            if response.location is None:
                break
            url = response.location
        else:
            return Robots.allow_all()  # too many redirects: "unavailable", which allows everything
        status = response.status
        if status >= 500 or status == 429:
            # A failing server may be hiding rules we must honour: come back later.
            raise CrawlError("http_error", f"{url} answered HTTP {status}; robots.txt is unknown", retryable=True)
        if not 200 <= status < 300:
            return Robots.allow_all()  # no robots.txt (404, 403, ...): everything is allowed
        return Robots.parse(_decode(response.body, "utf-8"), self.user_agent)


def _parse(body: bytes, charset: str | None, url: str, **options: Any) -> tuple[PageSummary, list[str], Directives]:
    return extract_page(url, _decode(body, charset), **options)


async def crawl(
    start_url: str,
    limits: CrawlLimits,
    *,
    client: httpx.AsyncClient,
    guard: AddressGuard,
    user_agent: str,
    on_progress: ProgressCallback | None = None,
    robots_cache: RobotsCache | None = None,
) -> CrawlContext:
    """Crawl the site at `start_url` within `limits`; CrawlError if the start page fails."""
    return await _Crawler(limits, client, guard, user_agent, on_progress, robots_cache).run(start_url)
