"""HTTP clients for crawls: a small connection pool of its own per crawl, one TLS context for all.

One client shared by every crawl in the process kept all their connections in
one pool, and httpx's pool scans every connection for every queued request
each time a request finishes (quadratic in the requests in flight): with a
few hundred jobs in flight that scan was the crawler's largest cost. A crawl
talks to one site, so a pool per crawl, sized to the crawl's own concurrency,
loses no reuse worth having and costs O(1) per request. The TLS context (CA
bundle loading is the expensive part of making a client) is built once.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .config import CrawlerSettings

ClientFactory = Callable[[], httpx.AsyncClient]


def client_factory(settings: CrawlerSettings) -> ClientFactory:
    tls = httpx.create_ssl_context()
    limits = httpx.Limits(
        max_connections=settings.per_job_concurrency, max_keepalive_connections=settings.per_job_concurrency
    )

    def new_client() -> httpx.AsyncClient:
        # Redirects are followed by the crawler itself, so every hop passes the address guard.
        return httpx.AsyncClient(
            follow_redirects=False, timeout=settings.request_timeout_s, trust_env=False, verify=tls, limits=limits
        )

    return new_client
