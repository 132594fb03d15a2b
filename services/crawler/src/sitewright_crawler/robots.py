"""robots.txt (RFC 9309) and sitemaps: pure parsing, no I/O.

The standard library's `urllib.robotparser` lets the first matching rule win and
knows no `*` or `$` in paths; RFC 9309 (and Google, and Scrapy's Protego) let
the longest match win, `Allow` on a tie. Sites write rules for that meaning.
"""

from __future__ import annotations

import gzip
import html
import re
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit


@dataclass
class _Group:
    agents: list[str] = field(default_factory=list)
    rules: list[tuple[bool, str]] = field(default_factory=list)  # (allow, pattern)
    crawl_delay: float | None = None


@dataclass
class Robots:
    """The rules that apply to one user agent, from one robots.txt."""

    rules: list[tuple[bool, re.Pattern[str], int]] = field(default_factory=list)
    crawl_delay: float | None = None
    sitemaps: list[str] = field(default_factory=list)

    @classmethod
    def allow_all(cls) -> Robots:
        return cls()

    @classmethod
    def parse(cls, text: str, user_agent: str) -> Robots:
        """Parse `text` and keep the group for `user_agent`'s product token (else `*`)."""
        token = user_agent.split("/")[0].strip().lower()
        groups: list[_Group] = []
        sitemaps: list[str] = []
        current: _Group | None = None
        last_was_agent = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            key, value = (part.strip() for part in line.split(":", 1))
            key = key.lower()
            if key == "user-agent":
                if current is None or not last_was_agent:
                    current = _Group()
                    groups.append(current)
                current.agents.append(value.lower())
                last_was_agent = True
                continue
            last_was_agent = False
            if key == "sitemap" and value:
                sitemaps.append(value)  # not part of any group
            elif current is None:
                continue
            elif key in ("allow", "disallow"):
                if value:  # "Disallow:" with nothing after it allows everything
                    current.rules.append((key == "allow", value))
            elif key == "crawl-delay":
                try:
                    current.crawl_delay = max(float(value), 0.0)
                except ValueError:
                    pass
        # RFC 9309 2.2.1: groups naming the same agent are combined; `*` applies only when none matches.
        mine = [g for g in groups if any(a != "*" and a == token for a in g.agents)]
        chosen = mine or [g for g in groups if "*" in g.agents]
        rules = [(allow, _compile(pattern), len(pattern)) for g in chosen for allow, pattern in g.rules]
        delays = [g.crawl_delay for g in chosen if g.crawl_delay is not None]
        return cls(rules=rules, crawl_delay=max(delays) if delays else None, sitemaps=sitemaps)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        path = _canonical_path(parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if path == "/robots.txt":
            return True
        best: tuple[int, bool] | None = None
        for allow, pattern, length in self.rules:
            if pattern.match(path) and (best is None or length > best[0] or (length == best[0] and allow)):
                best = (length, allow)
        return True if best is None else best[1]


def _canonical_path(path: str) -> str:
    # Compare percent-encoded forms: /caf%C3%A9 and /café are the same path.
    return quote(unquote(path), safe="/%:@!$&'()*+,;=-._~?")


def _compile(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("$")
    pieces = pattern.rstrip("$").split("*")
    regex = ".*".join(re.escape(_canonical_path(piece)) for piece in pieces)
    return re.compile(regex + ("$" if anchored else ""))


# -- sitemaps -------------------------------------------------------------------

_LOC = re.compile(rb"<loc>\s*(.*?)\s*</loc>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Sitemap:
    """A sitemap's URLs; `is_index` when they are further sitemaps rather than pages."""

    urls: list[str]
    is_index: bool


def parse_sitemap(body: bytes, max_bytes: int) -> Sitemap:
    """Read <loc> entries from a sitemap or sitemap index, gzipped or not.

    A regular expression rather than an XML parser: sitemaps are flat, and this
    cannot be made to expand entities (billion laughs) or fetch external ones.
    """
    if body[:2] == b"\x1f\x8b":
        try:
            # Bounded: a small gzip may expand to gigabytes.
            body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, max_bytes)
        except (zlib.error, gzip.BadGzipFile):
            return Sitemap([], False)
    is_index = b"<sitemapindex" in body[:2048].lower()
    urls = [html.unescape(m.group(1).decode("utf-8", "replace")) for m in _LOC.finditer(body)]
    return Sitemap(urls, is_index)


class RobotsCache:
    """robots.txt per user agent and origin (the rules that apply depend on who asks), shared by the
    crawls of one process for `ttl_s` (RFC 9309 allows up to a day): a site crawled again and again
    (many jobs on one site, re-runs) is asked for it once a while, not once per job. Only rules are
    kept; an error (a 5xx) is asked again by the next crawl. A `ttl_s` of 0 keeps nothing."""

    def __init__(self, ttl_s: float, size: int = 1024):
        self.ttl_s, self.size = ttl_s, size
        self._entries: OrderedDict[tuple[str, str], tuple[float, Robots]] = OrderedDict()

    def get(self, user_agent: str, origin: str) -> Robots | None:
        entry = self._entries.get((user_agent, origin))
        if entry is None or time.monotonic() - entry[0] >= self.ttl_s:
            return None
        return entry[1]

    def put(self, user_agent: str, origin: str, robots: Robots) -> None:
        if self.ttl_s <= 0:
            return
        key = (user_agent, origin)
        self._entries[key] = (time.monotonic(), robots)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
