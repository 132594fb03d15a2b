"""Crawler settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from pydantic import Field

from sitewright_runtime.settings import ServiceSettings


class CrawlerSettings(ServiceSettings):
    crawler_group: str = "sitewright-crawler"
    user_agent: str = "SitewrightBot/0.1 (+https://github.com/sitewright/sitewright)"
    request_timeout_s: float = Field(default=10, gt=0, le=120)
    per_job_concurrency: int = Field(
        default=16, ge=1, le=32, description="Most requests one crawl makes to one host at once, whatever a job asks."
    )
    progress_interval_s: float = Field(default=1.0, ge=0, description="At most one crawl.progress per job this often.")
    robots_cache_s: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="How long a site's robots.txt is reused by later crawls (0: every crawl asks).",
    )
