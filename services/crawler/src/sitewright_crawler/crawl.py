"""Breadth-first crawl of one site: same host, robots.txt honoured, every address checked.

No broker or database here: the handler calls `crawl()` and turns its result or
`CrawlError` into events.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
from sitewright_contracts.models import CrawlContext, ErrorInfo, PageSummary
from sitewright_runtime.netguard import AddressGuard, BlockedAddress

from sitewright_crawler.extract import extract_page, parse_robots_directives, trim_text

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], Awaitable[None]]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 9309: crawlers must parse at least 500 KiB of robots.txt and follow at least five redirects.
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_MAX_REDIRECTS = 5
# A Crawl-delay above this would let a site's robots.txt stall the job until its deadline.
MAX_CRAWL_DELAY_S = 10.0
# A site whose links are mostly broken or non-HTML must not cost an unbounded number of requests.
MAX_ATTEMPTS_PER_PAGE = 5
# Addresses of one host tried in turn when a connection fails: a site's IPv6 address may be
# unreachable while its IPv4 one works.
MAX_ADDRESSES_TRIED = 3

# Links to these are never HTML; not fetching them saves requests and budget.
# fmt: off
_ASSET_SUFFIXES = (
    ".7z", ".avi", ".bmp", ".css", ".dmg", ".doc", ".docx", ".eot", ".exe", ".gif", ".gz", ".ico",
    ".iso", ".jpeg", ".jpg", ".js", ".m4a", ".mov", ".mp3", ".mp4", ".mpeg", ".ogg", ".otf",
    ".pdf", ".png", ".ppt", ".pptx", ".rar", ".svg", ".tar", ".tgz", ".tif", ".tiff", ".ttf",
    ".wav", ".webm", ".webp", ".woff", ".woff2", ".xls", ".xlsx", ".zip",
)
# fmt: on


@dataclass(frozen=True)
class CrawlLimits:
    """How far, how long and how much one crawl may go."""

    max_pages: int = 10
    max_depth: int = 2
    timeout_s: float = 60
    request_timeout_s: float = 10
    max_bytes_per_page: int = 2_000_000
    max_total_bytes: int = 20_000_000
    concurrency: int = 4
    max_redirects: int = 5
    context_budget_chars: int = 60_000


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


def normalize_url(url: str) -> str:
    """The form URLs are compared in: lower-case scheme and host, no fragment, no default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _netloc(url: str) -> str:
    return urlsplit(url).netloc


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def fit_to_budget(pages: list[PageSummary], budget_chars: int) -> list[PageSummary]:
    """Drop text blocks and JSON-LD seen on earlier pages, then trim the longest texts to fit."""
    seen_blocks: set[str] = set()
    seen_json_ld: set[str] = set()
    deduped: list[PageSummary] = []
    for page in pages:
        # Site-wide chrome that survived extraction (a cookie notice, a call to action)
        # repeats on every page; the first copy is enough.
        blocks = []
        for block in page.text.split("\n"):
            if block not in seen_blocks:
                seen_blocks.add(block)
                blocks.append(block)
        json_ld = []
        for block in page.json_ld:
            key = json.dumps(block, sort_keys=True, default=str)
            if key not in seen_json_ld:
                seen_json_ld.add(key)
                json_ld.append(block)
        deduped.append(page.model_copy(update={"text": "\n".join(blocks), "json_ld": json_ld}))

    cap = _water_level([len(p.text) for p in deduped], budget_chars)
    return [
        p if len(p.text) <= cap else p.model_copy(update={"text": trim_text(p.text, cap)})
        for p in deduped
    ]


def _water_level(lengths: list[int], budget: int) -> int:
    """The largest cap such that sum(min(length, cap)) <= budget: short texts stay whole."""
    if sum(lengths) <= budget:
        return max(lengths, default=0)
    remaining, ordered = max(budget, 0), sorted(lengths)
    for i, length in enumerate(ordered):
        share = remaining // (len(ordered) - i)
        if length > share:
            return share
        remaining -= length
    return ordered[-1]


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
    """Spaces requests by the site's Crawl-delay, shared by all concurrent fetches."""

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


def _media_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lower()
    return b"<!doctype html" in head or b"<html" in head


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


def _status_error(url: str, status: int) -> CrawlError:
    # Server trouble, timeouts and rate limits pass; other client errors will not.
    retryable = status >= 500 or status in (408, 429)
    return CrawlError("http_error", f"{url} answered HTTP {status}", retryable=retryable)


class _Crawler:
    """The state of one crawl; `crawl()` is its only caller."""

    def __init__(
        self,
        limits: CrawlLimits,
        client: httpx.AsyncClient,
        guard: AddressGuard,
        user_agent: str,
        on_progress: ProgressCallback | None,
    ):
        self.limits = limits
        self.client = client
        self.guard = guard
        self.user_agent = user_agent
        self.on_progress = on_progress
        self.site = ""
        self.seen: set[str] = set()
        # (depth, position, summary); a position is the link index at each level from the start
        # page, so pages come out in breadth-first document order however fetches interleave.
        self.pages: list[tuple[int, tuple[int, ...], PageSummary]] = []
        self.pages_done = 0
        self.skipped = 0
        self.attempts = 0
        self.bytes_fetched = 0
        self.bytes_exhausted = False
        self.pacer = _Pacer()
        self._robots: dict[str, RobotFileParser | CrawlError] = {}
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
                    "timeout",
                    f"no page could be crawled within {self.limits.timeout_s:g} s",
                    retryable=True,
                ) from None
            log.info("crawl deadline reached with %d pages; returning them", len(self.pages))
        if not self.pages:
            raise CrawlError(
                "no_indexable_pages", "every crawled page asked not to be indexed (noindex)"
            )
        ordered = [summary for _, _, summary in sorted(self.pages, key=lambda p: p[:2])]
        return CrawlContext(
            start_url=start_url,
            pages=fit_to_budget(ordered, self.limits.context_budget_chars),
            pages_skipped=self.skipped,
            bytes_fetched=self.bytes_fetched,
            duration_s=round(time.monotonic() - started, 3),
        )

    async def _walk(self, start: str) -> None:
        self.seen.add(start)
        # The start page is fetched alone: its errors fail the crawl and its final
        # host (after redirects) decides which host the rest of the crawl stays on.
        response = await self._fetch(start, is_start=True)
        assert response is not None  # the start URL cannot redirect into an already seen URL
        self.site = _netloc(response.url)
        self._require_page(response)
        queue: deque[tuple[str, int, tuple[int, ...]]] = deque()
        for index, link in enumerate(self._process(response, depth=0, position=())):
            queue.append((link, 1, (index,)))
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
        return (
            running < self.limits.concurrency
            and self.pages_done + running < self.limits.max_pages
            and self.attempts < self.limits.max_pages * MAX_ATTEMPTS_PER_PAGE
            and not self.bytes_exhausted
        )

    async def _visit(self, url: str, depth: int, position: tuple[int, ...]) -> list[str]:
        """Fetch and process one page other than the start; its failures only skip it."""
        try:
            response = await self._fetch(url, is_start=False)
            if response is None:
                return []
            self._require_page(response)
            return self._process(response, depth, position)
        except CrawlError as exc:
            self.skipped += 1
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
        header = parse_robots_directives(*response.headers.get_list("x-robots-tag"))
        if directives.noindex or header.noindex:
            self.skipped += 1  # fetched, but left out of the context as the site asks
        else:
            self.pages.append((depth, position, summary))
        if directives.nofollow or header.nofollow or depth >= self.limits.max_depth:
            return []
        found = []
        for link in links:
            url = normalize_url(link)
            if _netloc(url) != self.site or url in self.seen:
                continue
            if urlsplit(url).path.lower().endswith(_ASSET_SUFFIXES):
                continue
            self.seen.add(url)
            found.append(url)
        return found

    async def _report(self, queued: int) -> None:
        if self.on_progress is not None:
            estimate = max(self.pages_done, min(self.limits.max_pages, self.pages_done + queued))
            await self.on_progress(self.pages_done, estimate)

    # -- one URL, through its redirects ----------------------------------------

    async def _fetch(self, url: str, *, is_start: bool) -> _Response | None:
        """GET `url`, following redirects by hand so every hop passes the guard and robots.txt.

        None when a redirect lands on a URL this crawl has already seen.
        """
        current = url
        for _ in range(self.limits.max_redirects + 1):
            # The start URL may move to another host (apex -> www); other pages may not.
            if not is_start and _netloc(current) != self.site:
                raise CrawlError("off_site", f"{url} redirects off the site to {current}")
            if not await self._robots_allow(current):
                raise CrawlError(
                    "robots_disallowed", f"robots.txt does not allow crawling {current}"
                )
            await self.pacer.wait()
            response = await self._get(current, max_bytes=self.limits.max_bytes_per_page)
            if response.location is None:
                return response
            current = response.location
            if current in self.seen:
                if is_start:
                    raise CrawlError("too_many_redirects", f"{url} redirects in a loop")
                return None
            self.seen.add(current)
        raise CrawlError(
            "too_many_redirects", f"{url} redirects more than {self.limits.max_redirects} times"
        )

    async def _get(
        self, url: str, *, max_bytes: int, truncate: bool = False, any_type: bool = False
    ) -> _Response:
        """One GET without redirects, to an address the guard approved; CrawlError on failure."""
        try:
            addresses = await self.guard.resolve(url)
        except BlockedAddress as exc:
            raise CrawlError(exc.code, exc.message, retryable=exc.code == "dns_failure") from exc
        refused: httpx.ConnectError | None = None
        # A guard that returns no addresses (a test double) leaves resolution to the client.
        for address in addresses[:MAX_ADDRESSES_TRIED] or [None]:
            try:
                async with asyncio.timeout(self.limits.request_timeout_s):
                    return await self._exchange(url, address, max_bytes, truncate, any_type)
            except httpx.ConnectError as exc:
                refused = exc
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise CrawlError(
                    "timeout",
                    f"{url} did not answer within {self.limits.request_timeout_s:g} s",
                    retryable=True,
                ) from exc
            except httpx.ProtocolError as exc:
                raise CrawlError(
                    "http_error", f"{url} sent a malformed response: {exc}", retryable=True
                ) from exc
            except httpx.TransportError as exc:
                raise CrawlError(
                    "unreachable", f"the connection to {url} failed: {exc}", retryable=True
                ) from exc
        raise CrawlError(
            "unreachable", f"could not connect to {url}: {refused}", retryable=True
        ) from refused

    async def _exchange(
        self,
        url: str,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        max_bytes: int,
        truncate: bool,
        any_type: bool,
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
                result.location = _redirect_target(url, location)
                return result
            media = _media_type(response.headers)
            result.is_html = media in HTML_TYPES
            if media and not result.is_html and not any_type:
                return result  # not read: only its headers were needed
            result.body = await self._read(response, url, max_bytes, truncate)
            if not media:
                result.is_html = _looks_like_html(result.body)
            return result

    async def _read(
        self, response: httpx.Response, url: str, max_bytes: int, truncate: bool
    ) -> bytes:
        """The body, up to max_bytes, counted against the crawl's byte budget as it arrives."""
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > max_bytes:
            raise CrawlError(
                "too_large",
                f"{url} is {declared} bytes, over the {max_bytes} bytes allowed per page",
            )
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
                raise CrawlError(
                    "too_large", f"{url} is over the {max_bytes} bytes allowed per page"
                )
            if self.bytes_fetched > self.limits.max_total_bytes:
                self.bytes_exhausted = True
                raise CrawlError(
                    "too_large",
                    f"the crawl's budget of {self.limits.max_total_bytes} bytes is spent",
                )
        self.bytes_fetched += response.num_bytes_downloaded - counted
        return bytes(body)

    # -- robots.txt --------------------------------------------------------------

    async def _robots_allow(self, url: str) -> bool:
        robots = await self._robots_for(_origin(url))
        if isinstance(robots, CrawlError):
            raise robots
        return robots.can_fetch(self.user_agent, url)

    async def _robots_for(self, origin: str) -> RobotFileParser | CrawlError:
        # One fetch per origin, even when many pages ask at once.
        async with self._robots_lock:
            if origin not in self._robots:
                try:
                    self._robots[origin] = await self._load_robots(origin)
                except CrawlError as exc:
                    self._robots[origin] = exc
            return self._robots[origin]

    async def _load_robots(self, origin: str) -> RobotFileParser:
        """Fetch and parse robots.txt as RFC 9309 says to treat each outcome."""
        url = f"{origin}/robots.txt"
        parser = RobotFileParser(url)
        for _ in range(ROBOTS_MAX_REDIRECTS + 1):
            response = await self._get(
                url, max_bytes=ROBOTS_MAX_BYTES, truncate=True, any_type=True
            )
            if response.location is None:
                break
            url = response.location
        else:
            # Too many redirects: the file is "unavailable", which allows everything.
            parser.parse([])  # no rules: everything allowed
            return parser
        status = response.status
        if status >= 500 or status == 429:
            # A failing server may be hiding rules we must honour: come back later.
            raise CrawlError(
                "http_error", f"{url} answered HTTP {status}; robots.txt is unknown", retryable=True
            )
        if 200 <= status < 300:
            parser.parse(_decode(response.body, "utf-8").splitlines())
        else:
            # No robots.txt (404, 403, ...): everything is allowed.
            parser.parse([])  # no rules: everything allowed
        if delay := parser.crawl_delay(self.user_agent):
            self.pacer.interval = max(self.pacer.interval, min(float(delay), MAX_CRAWL_DELAY_S))
        return parser


def _charset(headers: httpx.Headers) -> str | None:
    match = re.search(
        r"charset\s*=\s*[\"']?([\w.:-]+)", headers.get("content-type", ""), re.IGNORECASE
    )
    return match.group(1) if match else None


def _redirect_target(url: str, location: str) -> str:
    target, _ = urldefrag(urljoin(url, location.strip()))
    try:
        return normalize_url(target)
    except ValueError:
        return target  # the guard refuses it with a precise reason


async def crawl(
    start_url: str,
    limits: CrawlLimits,
    *,
    client: httpx.AsyncClient,
    guard: AddressGuard,
    user_agent: str,
    on_progress: ProgressCallback | None = None,
) -> CrawlContext:
    """Crawl the site at `start_url` within `limits`; CrawlError if the start page fails."""
    return await _Crawler(limits, client, guard, user_agent, on_progress).run(start_url)
