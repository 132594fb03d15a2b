"""The SSRF guard's rules: special-purpose ranges from IANA's registries, and the ports a URL may name."""

from __future__ import annotations

import ipaddress

import pytest

from sitewright_runtime.netguard import DEFAULT_PORTS, AddressGuard, BlockedAddress, is_public


@pytest.mark.parametrize(
    "address",
    [
        "192.0.0.8", "192.88.99.1", "198.18.0.1", "192.31.196.1", "192.52.193.1", "192.175.48.1", "100.64.0.1",
        "240.0.0.1", "255.255.255.255", "2001:db8::1", "2001:2::1", "3fff::1", "5f00::1", "64:ff9b:1::1", "100::1",
        "::ffff:192.0.0.8",
    ],
)  # fmt: skip
def test_special_purpose_addresses_are_not_public_whatever_ipaddress_says(address: str):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str):
    assert is_public(ipaddress.ip_address(address))


def test_production_ports_are_an_allow_list():
    guard = AddressGuard(ports=DEFAULT_PORTS)
    for url in ("https://example.com/", "http://example.com:8080/", "https://example.com:8443/x"):
        guard.check_literal(url)
    for url in ("http://example.com:22/", "http://example.com:6379/", "https://example.com:27017/"):
        with pytest.raises(BlockedAddress) as caught:
            guard.check_literal(url)
        assert caught.value.code == "blocked_port" and "443" in caught.value.message


async def test_loopback_allowed_locally_but_never_the_stacks_own_ports():
    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    guard = AddressGuard(["127.0.0.0/8"], loopback, ports=None, protected_ports=[19092, 27018])
    assert await guard.resolve("http://site.localtest:8765/") == [ipaddress.ip_address("127.0.0.1")]
    guard.check_literal("http://127.0.0.1:8765/")
    for url in ("http://127.0.0.1:27018/", "http://localhost:19092/"):
        with pytest.raises(BlockedAddress, match="Sitewright's own services"):
            guard.check_literal(url)
    with pytest.raises(BlockedAddress, match="Sitewright's own services"):
        await guard.resolve("http://sneaky.example:27018/")  # a name that resolves to loopback


def test_the_settings_give_the_guard_its_ports():
    from sitewright_crawler.config import CrawlerSettings

    production = AddressGuard.for_settings(CrawlerSettings(kafka_bootstrap="k1:9092,k2:9093"))
    assert production.ports == set(DEFAULT_PORTS) and production.protected_ports == {9092, 9093}
    local = AddressGuard.for_settings(
        CrawlerSettings(kafka_bootstrap="127.0.0.1:19092", env="local", protected_ports=[27018, 8000])
    )
    assert local.ports is None and local.protected_ports == {19092, 27018, 8000}
    chosen = AddressGuard.for_settings(CrawlerSettings(kafka_bootstrap="k:9092", allowed_ports=[443]))
    assert chosen.ports == {443}
