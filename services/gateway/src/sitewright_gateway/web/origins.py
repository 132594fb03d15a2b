"""Which browser origins may use the API: CORS for HTTP, `check_origin` for WebSocket handshakes.

Browsers do not apply CORS to WebSockets, so a page on any site could open
a stream to the gateway with whatever credentials it holds; the handshake's
`Origin` header is the only thing that tells such a page apart. A client
that is not a browser sends no Origin and is let through (its API key is
what protects it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case with the default port dropped; ValueError when it is not an origin."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{origin!r} is not an origin; write it as scheme://host[:port], e.g. https://app.example.com")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


def _host_port(netloc: str, scheme: str) -> str:
    """`host:port` with the scheme's default port made explicit, for comparing a Host header with an Origin."""
    parts = urlsplit(f"//{netloc.strip().lower()}")
    port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def origin_allowed(origin: str | None, host: str | None, settings: Any) -> bool:
    """Whether a request from `origin` to this gateway (reached as `host`) may proceed.

    Allowed: no Origin (not a browser); the gateway's own origin (its public
    URL, or the Host the browser connected to); an origin in
    `SITEWRIGHT_CORS_ORIGINS` (or `*` there). Refused: anything else,
    including the opaque origin `null` (sandboxed frames, file:// pages).
    """
    if origin is None:
        return True
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False
    allowed = getattr(settings, "cors_origins", [])
    if "*" in allowed or normalized in allowed:
        return True
    public_url = getattr(settings, "public_url", "")
    if public_url:
        try:
            if normalized == normalize_origin(public_url):
                return True
        except ValueError:
            pass
    if host:
        scheme = urlsplit(normalized).scheme
        return _host_port(urlsplit(normalized).netloc, scheme) == _host_port(host, scheme)
    return False


def check_origin(conn: HTTPConnection, settings: Any) -> bool:
    """`origin_allowed` for a WebSocket (or SSE) connection; call it before `websocket.accept()`.

    On False, close the handshake with code 1008 (policy violation) before accepting.
    """
    return origin_allowed(conn.headers.get("origin"), conn.headers.get("host"), settings)
