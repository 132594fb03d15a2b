"""HTTP for one crawl: per-host slots and pacing, guarded connections, retries and byte limits."""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from sitewright_crawler.limits import CrawlError, CrawlLimits
from sitewright_crawler.urls import netloc, redirect_target
from sitewright_runtime.netguard import AddressGuard, BlockedAddress, IPAddress

log = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A Retry-After longer than this fails the page (retryably) rather than parking the crawl.
MAX_RETRY_AFTER_S = 30.0
# Addresses of one host tried in turn when a connection fails: a site's IPv6 address may be
# unreachable while its IPv4 one works.
MAX_ADDRESSES_TRIED = 3
# Unwanted bodies (redirects, error pages) up to this size are read to keep the connection.
DISCARD_MAX_BYTES = 64 * 1024


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


class Fetcher:
    """The HTTP side of one crawl: single GETs without redirects, retried, paced and bounded per host.

    Every connection goes to an address the guard approved; every byte read counts against the
    crawl's budget.
    """

    def __init__(self, limits: CrawlLimits, client: httpx.AsyncClient, guard: AddressGuard, user_agent: str):
        self.limits = limits
        self.client = client
        self.guard = guard
        self.user_agent = user_agent
        self.retries = 0
        self.bytes_fetched = 0
        self.bytes_exhausted = False
        self.hosts: dict[str, _Host] = {}

    def host(self, url: str) -> _Host:
        key = netloc(url)
        if key not in self.hosts:
            self.hosts[key] = _Host(asyncio.Semaphore(self.limits.concurrency), _Pacer(self.limits.delay_s))
        return self.hosts[key]

    async def get(self, url: str, *, max_bytes: int, truncate: bool = False, any_type: bool = False) -> _Response:
        """One GET without redirects, retried with backoff on 5xx, 408 and 429 (honouring Retry-After)."""
        host = self.host(url)
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
        candidates: list[IPAddress | None] = list(host.addresses[:MAX_ADDRESSES_TRIED]) or [None]
        for address in candidates:
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
