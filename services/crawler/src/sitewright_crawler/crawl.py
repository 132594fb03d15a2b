"""Breadth-first crawl of one site: robots.txt and sitemaps honoured, every address checked.

No broker or database here: the handler calls `crawl()` and turns its result or
`CrawlError` into events.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import httpx
from sitewright_contracts.models import CrawlContext, ErrorInfo, JobOptions, PageSummary
from sitewright_runtime.netguard import AddressGuard, BlockedAddress, IPAddress

from sitewright_crawler.budget import bound_context, fit_to_budget
from sitewright_crawler.extract import extract_page, parse_robots_directives
from sitewright_crawler.robots import Robots, RobotsCache, parse_sitemap
from sitewright_crawler.urls import Scope, is_asset, netloc, normalize_url, origin, redirect_target

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], Awaitable[None]]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# RFC 9309: crawlers must parse at least 500 KiB of robots.txt and follow at least five redirects.
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_MAX_REDIRECTS = 5
# A Crawl-delay above this would let a site's robots.txt stall the job until its deadline.
MAX_CRAWL_DELAY_S = 10.0
# A Retry-After longer than this fails the page (retryably) rather than parking the crawl.
MAX_RETRY_AFTER_S = 30.0
# A site whose links are mostly broken or non-HTML must not cost an unbounded number of requests.
MAX_ATTEMPTS_PER_PAGE = 5
# Addresses of one host tried in turn when a connection fails: a site's IPv6 address may be
# unreachable while its IPv4 one works.
MAX_ADDRESSES_TRIED = 3
# Unwanted bodies (redirects, error pages) up to this size are read to keep the connection.
DISCARD_MAX_BYTES = 64 * 1024
# Sitemaps: how many files (an index and what it lists), how big each, how many page URLs in all.
MAX_SITEMAP_FILES = 5
MAX_SITEMAP_BYTES = 10_000_000
SITEMAP_URLS_PER_PAGE = 4
# Sitemap pages sort after every page found by links at the same depth.
_SITEMAP_POSITION = 1 << 30


@dataclass(frozen=True)
class CrawlLimits:
    """How far, how long, how much and how fast one crawl may go."""

    max_pages: int = 10
    max_depth: int = 2
    timeout_s: float = 60
    request_timeout_s: float = 10
    max_bytes_per_page: int = 2_000_000
    max_total_bytes: int = 20_000_000
    concurrency: int = 4  # per host
    delay_s: float = 0.0  # per host, between requests
    max_redirects: int = 5
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    scope: str = "host"
    use_sitemap: bool = True
    context_budget_chars: int = 60_000
    context_budget_bytes: int = 256_000

    @classmethod
    def from_options(cls, options: JobOptions, **service: float) -> "CrawlLimits":
        """A job's limits: what its options ask for (already capped by the contract), plus service settings."""
        return cls(
            max_pages=options.max_pages,
            max_depth=options.max_depth,
            timeout_s=options.timeout_s,
            max_bytes_per_page=options.max_bytes_per_page,
            max_total_bytes=options.max_total_bytes,
            concurrency=options.concurrency,
            delay_s=options.delay_s,
            max_redirects=options.max_redirects,
            max_retries=options.max_retries,
            scope=options.scope,
            use_sitemap=options.use_sitemap,
            **service,  # type: ignore[arg-type]
        )


class CrawlError(Exception):
    """The crawl failed as a whole; `retryable` says whether trying again later may help."""

    def __init__(self, code: str, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable

    def info(self) -> ErrorInfo:
        """The error as the contract value that `crawl.failed` carries."""
        return ErrorInfo(code=self.code, message=self.message, retryable=self.retryable)

    def __repr__(self) -> str:
        return f"CrawlError({self.code!r}, {self.message!r}, retryable={self.retryable})"


@dataclass
class _Response:
    url: str
    status: int
    headers: httpx.Headers
    location: str | None = None
    body: bytes = b""
    is_html: bool = False


@dataclass
class _Pacer:
    """Spaces requests to one host, shared by all concurrent fetches to it."""

    interval: float = 0.0
    _next: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def wait(self) -> None:
        if self.interval <= 0:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = loop.time() + self.interval


@dataclass
class _Host:
    """Per-host politeness: at most `concurrency` requests at once, `pacer` between them."""

    slots: asyncio.Semaphore
    pacer: _Pacer
    addresses: list[IPAddress] | None = None


class _Page(NamedTuple):
    depth: int
    position: tuple[int, ...]
    url: str
    canonical: str | None
    fingerprint: bytes
    summary: PageSummary


def _media_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lower()
    return b"<!doctype html" in head or b"<html" in head


def _charset(headers: httpx.Headers) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", headers.get("content-type", ""), re.IGNORECASE)
    return match.group(1) if match else None


def _decode(body: bytes, declared: str | None) -> str:
    """Bytes to text by BOM, then the header's charset, then <meta charset>, then UTF-8."""
    if body.startswith(codecs.BOM_UTF8):
        return body[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    meta = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", body[:4096], re.IGNORECASE)
    for candidate in (declared, meta.group(1).decode("ascii") if meta else None, "utf-8"):
        if not candidate:
            continue
        # Browsers read a declared Latin-1 as windows-1252 (WHATWG Encoding), and so do sites.
        if candidate.lower() in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"):
            candidate = "cp1252"
        try:
            return body.decode(candidate, errors="replace")
        except LookupError:
            continue
    return body.decode("utf-8", errors="replace")


def _should_retry(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _status_error(url: str, status: int) -> CrawlError:
    # Server trouble, timeouts and rate limits pass; other client errors will not.
    return CrawlError("http_error", f"{url} answered HTTP {status}", retryable=_should_retry(status))


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), if any."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError):
        return None


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
        self.client = client
        self.guard = guard
        self.user_agent = user_agent
        self.on_progress = on_progress
        self.scope: Scope | None = None
        self.seen: set[str] = set()
        self.pages: list[_Page] = []
        self.pages_done = 0
        self.skipped: Counter[str] = Counter()
        self.attempts = 0
        self.retries = 0
        self.bytes_fetched = 0
        self.bytes_exhausted = False
        self.hosts: dict[str, _Host] = {}
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
            bytes_fetched=self.bytes_fetched,
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
        for index, link in enumerate(self._process(response, depth=0, position=())):
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
            and not self.bytes_exhausted
        )

    async def _visit(self, url: str, depth: int, position: tuple[int, ...]) -> list[str]:
        """Fetch and process one page other than the start; its failures only skip it."""
        try:
            response = await self._fetch(url, is_start=False)
            if response is None:
                self.skipped["duplicate"] += 1  # redirected to a page already seen
                return []
            self._require_page(response)
            return self._process(response, depth, position)
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

    def _process(self, response: _Response, depth: int, position: tuple[int, ...]) -> list[str]:
        """Extract the page, keep its summary unless noindex, and return the links to follow."""
        html = _decode(response.body, _charset(response.headers))
        summary, links, directives = extract_page(
            response.url,
            html,
            depth=depth,
            status=response.status,
            # One page may use the whole budget; fit_to_budget shares it out at the end.
            max_text_chars=self.limits.context_budget_chars,
        )
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
                response = await self._get(url, max_bytes=MAX_SITEMAP_BYTES, truncate=True, any_type=True)
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
            response = await self._get(current, max_bytes=self.limits.max_bytes_per_page)
            if response.location is None:
                return response
            current = response.location
            if current in self.seen:
                if is_start:
                    raise CrawlError("too_many_redirects", f"{url} redirects in a loop")
                return None
            self.seen.add(current)
        raise CrawlError("too_many_redirects", f"{url} redirects more than {self.limits.max_redirects} times")

    def _host(self, url: str) -> _Host:
        key = netloc(url)
        if key not in self.hosts:
            self.hosts[key] = _Host(asyncio.Semaphore(self.limits.concurrency), _Pacer(self.limits.delay_s))
        return self.hosts[key]

    async def _get(self, url: str, *, max_bytes: int, truncate: bool = False, any_type: bool = False) -> _Response:
        """One GET without redirects, retried with backoff on 5xx, 408 and 429 (honouring Retry-After)."""
        host = self._host(url)
        attempt = 0
        while True:
            async with host.slots:
                await host.pacer.wait()
                response = await self._get_once(host, url, max_bytes, truncate, any_type)
            if not _should_retry(response.status) or attempt >= self.limits.max_retries:
                return response
            wait = _retry_after(response.headers)
            if wait is None:
                wait = self.limits.retry_backoff_s * 2**attempt
            elif wait > MAX_RETRY_AFTER_S:
                return response  # the site asks for longer than a crawl should wait
            attempt += 1
            self.retries += 1
            log.debug("retrying %s in %.1f s after HTTP %d", url, wait, response.status)
            await asyncio.sleep(wait)

    async def _get_once(self, host: _Host, url: str, max_bytes: int, truncate: bool, any_type: bool) -> _Response:
        """One request to an address the guard approved; CrawlError on failure."""
        if host.addresses is None:
            # Resolved and checked once per host and crawl; every request connects to these
            # addresses, so a DNS answer that changes later (rebinding) is never used.
            try:
                host.addresses = await self.guard.resolve(url)
            except BlockedAddress as exc:
                raise CrawlError(exc.code, exc.message, retryable=exc.code == "dns_failure") from exc
        refused: httpx.ConnectError | None = None
        # A guard that returns no addresses (a test double) leaves resolution to the client.
        for address in host.addresses[:MAX_ADDRESSES_TRIED] or [None]:
            try:
                async with asyncio.timeout(self.limits.request_timeout_s):
                    return await self._exchange(url, address, max_bytes, truncate, any_type)
            except httpx.ConnectError as exc:
                refused = exc
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise CrawlError(
                    "timeout", f"{url} did not answer within {self.limits.request_timeout_s:g} s", retryable=True
                ) from exc
            except httpx.ProtocolError as exc:
                raise CrawlError("http_error", f"{url} sent a malformed response: {exc}", retryable=True) from exc
            except httpx.TransportError as exc:
                raise CrawlError("unreachable", f"the connection to {url} failed: {exc}", retryable=True) from exc
        raise CrawlError("unreachable", f"could not connect to {url}: {refused}", retryable=True) from refused

    async def _exchange(
        self, url: str, address: IPAddress | None, max_bytes: int, truncate: bool, any_type: bool
    ) -> _Response:
        target = httpx.URL(url)
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Host": target.netloc.decode("ascii"),
        }
        extensions: dict[str, str] = {}
        if address is not None:
            # Connect to the address the guard checked, not to whatever a second DNS
            # lookup returns (DNS rebinding); TLS still verifies the real host name.
            if target.scheme == "https":
                extensions["sni_hostname"] = target.raw_host.decode("ascii")
            target = target.copy_with(host=str(address))
        async with self.client.stream(
            "GET",
            target,
            headers=headers,
            extensions=extensions,
            follow_redirects=False,
            timeout=self.limits.request_timeout_s,
        ) as response:
            result = _Response(url=url, status=response.status_code, headers=response.headers)
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                result.location = redirect_target(url, location)
                await self._discard(response)
                return result
            if not 200 <= response.status_code < 300 and not any_type:
                await self._discard(response)  # an error page's body is never used
                return result
            media = _media_type(response.headers)
            result.is_html = media in HTML_TYPES
            if media and not result.is_html and not any_type:
                await self._discard(response)  # only its headers were needed
                return result
            result.body = await self._read(response, url, max_bytes, truncate)
            if not media:
                result.is_html = _looks_like_html(result.body)
            return result

    async def _discard(self, response: httpx.Response) -> None:
        """Read a small unwanted body so the connection can be reused; hang up on a big one."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= DISCARD_MAX_BYTES:
            await response.aread()
            self.bytes_fetched += response.num_bytes_downloaded

    async def _read(self, response: httpx.Response, url: str, max_bytes: int, truncate: bool) -> bytes:
        """The body, up to max_bytes, counted against the crawl's byte budget as it arrives."""
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > max_bytes:
            raise CrawlError("too_large", f"{url} is {declared} bytes, over the {max_bytes} bytes allowed per page")
        body = bytearray()
        counted = 0
        # aiter_bytes yields decompressed bytes, so a compression bomb is cut off too.
        async for chunk in response.aiter_bytes():
            self.bytes_fetched += response.num_bytes_downloaded - counted
            counted = response.num_bytes_downloaded
            body += chunk
            if len(body) > max_bytes:
                if truncate:
                    return bytes(body[:max_bytes])
                raise CrawlError("too_large", f"{url} is over the {max_bytes} bytes allowed per page")
            if self.bytes_fetched > self.limits.max_total_bytes:
                self.bytes_exhausted = True
                raise CrawlError("too_large", f"the crawl's budget of {self.limits.max_total_bytes} bytes is spent")
        self.bytes_fetched += response.num_bytes_downloaded - counted
        return bytes(body)

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
                        pacer = self._host(f"{site}/").pacer
                        pacer.interval = max(pacer.interval, min(robots.crawl_delay, MAX_CRAWL_DELAY_S))
                except CrawlError as exc:
                    self._robots[site] = exc
            return self._robots[site]

    async def _load_robots(self, site: str) -> Robots:
        """Fetch and parse robots.txt as RFC 9309 says to treat each outcome."""
        url = f"{site}/robots.txt"
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            response = await self._get(url, max_bytes=ROBOTS_MAX_BYTES, truncate=True, any_type=True)
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

