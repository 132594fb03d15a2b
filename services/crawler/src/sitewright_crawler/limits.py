"""What one crawl may do (CrawlLimits) and how it fails (CrawlError), shared by the crawl and its fetcher."""

from __future__ import annotations

from dataclasses import dataclass

from sitewright_contracts.models import ErrorInfo, JobOptions


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
    def from_options(cls, options: JobOptions, **service: float) -> CrawlLimits:
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
