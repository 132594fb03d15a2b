"""Crawl the same local fixture site with Sitewright's crawler and with Scrapy; print pages/s and peak memory.

    make bench-crawl                      # or: uv run --group bench python bench/crawl_bench.py --rounds 3

The fixture site (tools/devstack/.../fixture_site.py, the one the crawler's tests use) runs in
its own process; each crawler runs in its own subprocess, so each one's peak resident memory
(VmHWM from /proc) is its own. Both get equivalent settings: the same user agent, robots.txt
obeyed, the same per-host concurrency, depth limit, page limit, retries, redirect limit and
page size limit, no delay, no sitemap (Scrapy's CrawlSpider does not read one). Pages/s counts
HTML pages parsed, over the crawl itself (from the first request to the end, without
interpreter start-up); the start-up time is reported apart. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
USER_AGENT = "SitewrightBot/0.1 (+https://github.com/sitewright/sitewright)"


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- the two crawlers, each run in a child process ------------------------------------------


def run_sitewright(url: str, pages: int, depth: int, concurrency: int) -> dict:
    import asyncio

    import httpx

    from sitewright_crawler.crawl import CrawlLimits, crawl
    from sitewright_runtime.netguard import AddressGuard

    limits = CrawlLimits(
        max_pages=pages,
        max_depth=depth,
        concurrency=concurrency,
        timeout_s=300,
        use_sitemap=False,
        max_retries=2,
        max_redirects=5,
        max_bytes_per_page=2_000_000,
        max_total_bytes=10**9,
    )

    async def main() -> dict:
        async with httpx.AsyncClient(trust_env=False) as client:
            started, cpu = time.perf_counter(), time.process_time()
            context = await crawl(
                url, limits, client=client, guard=AddressGuard(["127.0.0.0/8"]), user_agent=USER_AGENT
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        # pages kept plus pages fetched but left out (noindex, duplicates): every HTML page parsed
        parsed = len(context.pages) + context.skipped.get("noindex", 0) + context.skipped.get("duplicate", 0)
        return {"pages": parsed, "seconds": seconds, "crawl_cpu_s": cpu}

    return asyncio.run(main())


def run_scrapy(url: str, pages: int, depth: int, concurrency: int) -> dict:
    from urllib.parse import urlsplit

    import scrapy
    from scrapy import signals
    from scrapy.crawler import CrawlerProcess
    from scrapy.linkextractors import LinkExtractor

    host = urlsplit(url).netloc  # Scrapy compares the netloc, port included
    stats = {"pages": 0, "opened": 0.0, "closed": 0.0, "cpu_opened": 0.0, "cpu_closed": 0.0}

    class SiteSpider(scrapy.Spider):
        name = "site"
        start_urls = [url]
        links = LinkExtractor(allow_domains=[host])

        @classmethod
        def from_crawler(cls, crawler, *args, **kwargs):  # type: ignore[no-untyped-def]
            spider = super().from_crawler(crawler, *args, **kwargs)
            crawler.signals.connect(spider.opened, signals.spider_opened)
            crawler.signals.connect(spider.closed_at, signals.spider_closed)
            return spider

        def opened(self, **_: object) -> None:
            stats["opened"], stats["cpu_opened"] = time.perf_counter(), time.process_time()

        def closed_at(self, **_: object) -> None:
            stats["closed"], stats["cpu_closed"] = time.perf_counter(), time.process_time()

        def parse(self, response):  # type: ignore[no-untyped-def]
            if not isinstance(response, scrapy.http.HtmlResponse):
                return
            stats["pages"] += 1
            # About what Sitewright extracts: title, description, headings, text, links.
            yield {
                "url": response.url,
                "title": response.css("title::text").get(),
                "description": response.css("meta[name=description]::attr(content)").get(),
                "headings": response.css("h1::text, h2::text, h3::text").getall(),
                "text": " ".join(response.css("main ::text").getall()),
            }
            for link in self.links.extract_links(response):
                yield response.follow(link, callback=self.parse)

    process = CrawlerProcess(
        settings={
            "USER_AGENT": USER_AGENT,
            "ROBOTSTXT_OBEY": True,
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "DOWNLOAD_DELAY": 0,
            "DEPTH_LIMIT": depth,
            "CLOSESPIDER_PAGECOUNT": pages,
            "RETRY_TIMES": 2,
            "REDIRECT_MAX_TIMES": 5,
            "DOWNLOAD_MAXSIZE": 2_000_000,
            "DOWNLOAD_TIMEOUT": 10,
            "LOG_LEVEL": os.environ.get("BENCH_SCRAPY_LOG", "ERROR"),
            "TELNETCONSOLE_ENABLED": False,
            "ITEM_PIPELINES": {},
        }
    )
    process.crawl(SiteSpider)
    process.start()
    return {
        "pages": stats["pages"],
        "seconds": stats["closed"] - stats["opened"],
        "crawl_cpu_s": stats["cpu_closed"] - stats["cpu_opened"],
    }


def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    runner = run_sitewright if args.child == "sitewright" else run_scrapy
    result = runner(args.url, args.pages, args.depth, args.concurrency)
    result["wall_s"] = time.perf_counter() - started
    result["peak_mib"] = peak_rss_mib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # start-up included; the machine may be shared
    print(json.dumps(result))


# -- the parent: site, runs, table ------------------------------------------------------------


def start_site() -> tuple[subprocess.Popen[str], str]:
    site = subprocess.Popen(
        [sys.executable, "-m", "sitewright_devstack.fixture_site", "--slow-s", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert site.stdout is not None
    base = site.stdout.readline().strip()
    if not base.startswith("http"):
        site.kill()
        raise SystemExit(f"the fixture site did not start: {base!r}")
    return site, base


def measure(which: str, url: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--url",
        url,
        "--pages",
        str(args.pages),
        "--depth",
        str(args.depth),
        "--concurrency",
        str(args.concurrency),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    result["pages_per_s"] = result["pages"] / result["seconds"]
    # CPU time is what a shared or loaded machine distorts least: pages per CPU-second of crawling.
    result["pages_per_cpu_s"] = result["pages"] / max(result["crawl_cpu_s"], 1e-6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Sitewright's crawler against Scrapy on the same local site.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pages", type=int, default=1000, help="page limit for both (the site has ~330 pages)")
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="requests to the host at once, for both")
    parser.add_argument("--child", choices=["sitewright", "scrapy"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    site, base = start_site()
    runs: dict[str, list[dict]] = {"sitewright": [], "scrapy": []}
    try:
        for round_ in range(args.rounds):
            # Alternate who goes first, so neither always meets a warm (or cold) server.
            order = ["sitewright", "scrapy"] if round_ % 2 == 0 else ["scrapy", "sitewright"]
            for which in order:
                result = measure(which, base + "/", args)
                runs[which].append(result)
                print(
                    f"round {round_ + 1} {which:<10} {result['pages']:>4} pages in {result['seconds']:.2f} s "
                    f"= {result['pages_per_s']:7.1f} pages/s ({result['pages_per_cpu_s']:.0f} per CPU-s), "
                    f"peak {result['peak_mib']:.1f} MiB",
                    flush=True,
                )
    finally:
        site.terminate()
        site.wait(timeout=10)

    summary = {
        which: {
            "median_pages_per_s": round(statistics.median(r["pages_per_s"] for r in results), 1),
            "median_peak_mib": round(statistics.median(r["peak_mib"] for r in results), 1),
            "median_pages": statistics.median(r["pages"] for r in results),
            "median_startup_s": round(statistics.median(r["wall_s"] - r["seconds"] for r in results), 2),
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in results), 2),
            "median_pages_per_cpu_s": round(statistics.median(r["pages_per_cpu_s"] for r in results), 1),
        }
        for which, results in runs.items()
    }
    print()
    print(
        f"{'crawler':<12}{'pages':>7}{'pages/s':>10}{'pages/CPU-s':>13}{'peak MiB':>10}{'start-up s':>12}"
        f"   (median of {args.rounds})"
    )
    for which, s in summary.items():
        print(
            f"{which:<12}{s['median_pages']:>7}{s['median_pages_per_s']:>10}{s['median_pages_per_cpu_s']:>13}"
            f"{s['median_peak_mib']:>10}{s['median_startup_s']:>12}"
        )

    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_dir / f"crawl-{stamp}.json"
    settings = {k: getattr(args, k) for k in ("rounds", "pages", "depth", "concurrency")}
    out.write_text(
        json.dumps({"settings": settings, "summary": summary, "runs": runs, "cpus": os.cpu_count()}, indent=2)
    )
    print(f"\nwritten to {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
