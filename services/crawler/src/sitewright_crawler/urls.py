"""URL identity: which URLs are the same page, and which belong to the site being crawled."""

from __future__ import annotations

from urllib.parse import parse_qsl, urldefrag, urlencode, urljoin, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Query parameters that identify a campaign or a click, never content: dropping them
# makes /p?id=1&utm_source=mail and /p?id=1 the same page, one request instead of two.
_TRACKING_PREFIXES = ("utm_",)
_TRACKING = frozenset({"gclid", "dclid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl", "igshid"})

# Links to these are never HTML; not fetching them saves requests and budget.
# fmt: off
ASSET_SUFFIXES = (
    ".7z", ".avi", ".bmp", ".css", ".dmg", ".doc", ".docx", ".eot", ".exe", ".gif", ".gz", ".ico",
    ".iso", ".jpeg", ".jpg", ".js", ".m4a", ".mov", ".mp3", ".mp4", ".mpeg", ".ogg", ".otf",
    ".pdf", ".png", ".ppt", ".pptx", ".rar", ".svg", ".tar", ".tgz", ".tif", ".tiff", ".ttf",
    ".wav", ".webm", ".webp", ".woff", ".woff2", ".xls", ".xlsx", ".zip",
)
# fmt: on


def normalize_url(url: str) -> str:
    """The form URLs are fetched and compared in.

    Lower-case scheme and host, no fragment, no default port, tracking
    parameters dropped and the rest sorted (as Scrapy's duplicate filter does),
    so links that differ only in those ways are fetched once.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    query = parts.query
    if query:
        pairs = [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not (k.lower() in _TRACKING or k.lower().startswith(_TRACKING_PREFIXES))
        ]
        query = urlencode(sorted(pairs))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def redirect_target(url: str, location: str) -> str:
    """The absolute, normalized URL a Location header points to."""
    target, _ = urldefrag(urljoin(url, location.strip()))
    try:
        return normalize_url(target)
    except ValueError:
        return target  # the guard refuses it with a precise reason


def netloc(url: str) -> str:
    return urlsplit(url).netloc


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_asset(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(ASSET_SUFFIXES)


class Scope:
    """Which URLs belong to the site: the start host, or (scope `domain`) it and its subdomains.

    Without a public suffix list a true registrable domain cannot be told offline, so
    `domain` takes the start host minus a leading `www.`; it never widens past the host
    the user gave (a crawl of shop.example.com does not wander to blog.example.com).
    """

    def __init__(self, start_url: str, mode: str = "host"):
        parts = urlsplit(start_url)
        self.scheme_port = (parts.scheme, parts.port)
        self.host = (parts.hostname or "").lower()
        self.mode = mode
        self.domain = self.host.removeprefix("www.") if mode == "domain" else self.host
        self.netloc = parts.netloc

    def contains(self, url: str) -> bool:
        parts = urlsplit(url)
        if self.mode == "host":
            return parts.netloc == self.netloc
        host = (parts.hostname or "").lower()
        try:
            same_port = parts.port == self.scheme_port[1] or parts.port is None and self.scheme_port[1] is None
        except ValueError:
            return False
        return same_port and (host == self.domain or host.endswith("." + self.domain))
