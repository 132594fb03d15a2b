"""SSRF: with no allowlist, every URL that leads into the machine's own network is refused.

The fixture site listens on loopback and counts requests, so each test also proves that
nothing was sent. Names that must resolve to private addresses use an injected resolver
(no /etc/hosts, no DNS).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest

from sitewright_crawler.crawl import CrawlError, CrawlLimits, crawl
from sitewright_devstack.fixture_site import FixtureSite
from sitewright_runtime.netguard import AddressGuard

USER_AGENT = "SitewrightBot/0.1 (+https://sitewright.test/bot)"
NAMES = {
    "intranet.shop.test": "10.20.30.40",
    "metadata.shop.test": "169.254.169.254",
    "mapped.shop.test": "::ffff:127.0.0.1",
    # Stand-in for a public site: resolves to the fixture's loopback address, which only
    # the redirect test's guard allows.
    "www.public-shop.test": "127.0.0.1",
}


async def resolve(host: str, port: int) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [NAMES[host]]


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    with FixtureSite(sections=1, pages_per_section=2) as site:
        yield site


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def refused(url: str, client: httpx.AsyncClient, guard: AddressGuard) -> CrawlError:
    with pytest.raises(CrawlError) as caught:
        await crawl(url, CrawlLimits(max_depth=0), client=client, guard=guard, user_agent=USER_AGENT)
    return caught.value


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[64:ff9b::7f00:1]:{port}/",  # NAT64 form of 127.0.0.1
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.1/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://0.0.0.0:{port}/",
        "http://localhost:{port}/",
        "http://intranet.shop.test/",  # a name that resolves to a private address
        "http://metadata.shop.test/",  # ... to the cloud metadata address
        "http://mapped.shop.test:{port}/",  # ... to an IPv4-mapped loopback address
    ],
)
async def test_private_addresses_are_refused(url: str, site: FixtureSite, client: httpx.AsyncClient) -> None:
    before = len(site.requests)
    error = await refused(url.format(port=site.port), client, AddressGuard(resolver=resolve))
    assert (error.code, error.retryable) == ("blocked_address", False)
    assert "private, loopback or reserved" in error.message
    assert len(site.requests) == before  # nothing was sent, not even robots.txt


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/admin",
        "http://127.0.0.2:{port}/",  # loopback, but not the allowed 127.0.0.1
        "http://intranet.shop.test/",
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(
    target: str, site: FixtureSite, client: httpx.AsyncClient
) -> None:
    guard = AddressGuard(allow_cidrs=["127.0.0.1/32"], resolver=resolve)  # the "public" site only
    start = f"http://www.public-shop.test:{site.port}/to-private?target={quote(target.format(port=site.port), safe='')}"
    error = await refused(start, client, guard)
    assert (error.code, error.retryable) == ("blocked_address", False)


async def test_the_allowlist_lets_tests_crawl_loopback(site: FixtureSite, client: httpx.AsyncClient) -> None:
    context = await crawl(
        site.url("/"),
        CrawlLimits(max_depth=0),
        client=client,
        guard=AddressGuard(allow_cidrs=["127.0.0.0/8"]),
        user_agent=USER_AGENT,
    )
    assert [p.url for p in context.pages] == [site.url("/")]
