"""Refuse URLs that point into the machine's own network (SSRF), per OWASP's guidance.

Used by the gateway (at submission), the crawler (every request) and the
notifier (webhooks). Loopback is allowed only when a deployment says so,
which the local embedded stack does so that sites on this machine work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints that are not covered by the private/link-local ranges.
_METADATA = [ipaddress.ip_network(n) for n in ("100.100.100.200/32", "fd00:ec2::254/128")]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# The IANA special-purpose address registries (IPv4 and IPv6), refused whatever the Python version's
# `ipaddress` tables say: they have changed between releases (192.0.0.0/24 and 192.88.99.0/24, for one).
SPECIAL_PURPOSE: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
        "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
        "2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
        "ff00::/8",
    )
)  # fmt: skip
# Ports a crawl or a webhook may use in production unless the deployment lists others.
DEFAULT_PORTS = (80, 443, 8080, 8443)
# NAT64 (RFC 6052): 64:ff9b::7f00:1 reaches 127.0.0.1 through a translator.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# (host, port) -> the host's addresses as strings; the default asks the system resolver.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class BlockedAddress(ValueError):
    """The URL is not allowed: wrong scheme, no host, or an address inside a protected range."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _unmap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: IPAddress) -> bool:
    """True when `ip` is a globally routable unicast address."""
    ip = _unmap(ip)
    if any(ip in net for net in _METADATA) or any(ip in net for net in SPECIAL_PURPOSE if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressGuard:
    """Decides which hosts a service may connect to on a user's behalf."""

    def __init__(
        self,
        allow_cidrs: Iterable[str] = (),
        resolver: Resolver = system_resolver,
        *,
        ports: Iterable[int] | None = None,
        protected_ports: Iterable[int] = (),
    ):
        self.allowed: list[IPNetwork] = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]
        # Tests inject a resolver to make a name resolve to a private address without touching /etc/hosts.
        self.resolver = resolver
        # The ports a URL may name (None: any), and those of the stack's own services, never allowed on an
        # address the deployment allows despite its range (loopback, in local mode): the broker, the database.
        self.ports = frozenset(ports) if ports is not None else None
        self.protected_ports = frozenset(protected_ports)

    @classmethod
    def for_settings(cls, settings: Any) -> AddressGuard:
        """The guard a service's settings describe (`ServiceSettings`: allow_cidrs, ports, protected ports)."""
        return cls(settings.allow_cidrs, ports=settings.guard_ports, protected_ports=settings.own_ports)

    def check_port(self, host: str, port: int, ip: IPAddress | None) -> None:
        """Refuse a port outside the allow-list, or one of the stack's own on an address allowed by exception."""
        if self.ports is not None and port not in self.ports:
            allowed = ", ".join(str(p) for p in sorted(self.ports))
            raise BlockedAddress("blocked_port", f"port {port} is not allowed; use one of {allowed}")
        if ip is not None and port in self.protected_ports and not is_public(ip):
            raise BlockedAddress("blocked_port", f"{host}:{port} is a port of Sitewright's own services")

    def ip_allowed(self, ip: IPAddress) -> bool:
        ip = _unmap(ip)
        return is_public(ip) or any(ip in net for net in self.allowed)

    @staticmethod
    def split(url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) URL, or BlockedAddress."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise BlockedAddress(
                "unsupported_scheme", f"only http and https URLs are allowed, not {scheme or 'none'!r}"
            )
        if not parts.hostname:
            raise BlockedAddress("invalid_url", "the URL has no host name")
        if parts.username or parts.password:
            raise BlockedAddress("invalid_url", "URLs with credentials (user:password@host) are not allowed")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise BlockedAddress("invalid_url", f"the URL's port is not valid: {exc}") from exc
        return scheme, parts.hostname.rstrip(".").lower(), port

    def check_literal(self, url: str) -> None:
        """What can be told without DNS: scheme, host syntax, port, literal IPs, `localhost`."""
        _, host, port = self.split(url)
        try:
            ip: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ip = ipaddress.ip_address("127.0.0.1") if host == "localhost" or host.endswith(".localhost") else None
        if ip is not None and not self.ip_allowed(ip):
            raise BlockedAddress(
                "blocked_address",
                f"{host} is a private, loopback or reserved address; only public hosts can be crawled",
            )
        self.check_port(host, port, ip)  # after the address: a private address is refused as such, whatever its port

    async def resolve(self, url: str) -> list[IPAddress]:
        """Resolve the URL's host and return its addresses, refusing any protected one.

        Every address must pass: a name that resolves to one public and one
        private address is refused, since the connection could go to either.
        """
        _, host, port = self.split(url)
        self.check_literal(url)
        try:
            answers = await self.resolver(host.strip("[]"), port)
        except socket.gaierror as exc:
            raise BlockedAddress("dns_failure", f"could not resolve {host}: {exc.strerror}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in answers))
        if not addresses:
            raise BlockedAddress("dns_failure", f"{host} has no addresses")
        for ip in addresses:
            if not self.ip_allowed(ip):
                raise BlockedAddress(
                    "blocked_address", f"{host} resolves to {ip}, a private, loopback or reserved address"
                )
            self.check_port(host, port, ip)
        return addresses
