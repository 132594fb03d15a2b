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
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints that are not covered by the private/link-local ranges.
_METADATA = [ipaddress.ip_network(n) for n in ("100.100.100.200/32", "fd00:ec2::254/128")]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
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
    if any(ip in net for net in _METADATA) or (ip.version == 4 and ip in _CGNAT):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class AddressGuard:
    """Decides which hosts a service may connect to on a user's behalf."""

    def __init__(self, allow_cidrs: Iterable[str] = (), resolver: Resolver = system_resolver):
        self.allowed: list[IPNetwork] = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]
        # Tests inject a resolver to make a name resolve to a private address without touching /etc/hosts.
        self.resolver = resolver

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
        """What can be told without DNS: scheme, host syntax, literal IPs, `localhost`."""
        _, host, _ = self.split(url)
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host == "localhost" or host.endswith(".localhost"):
                ip = ipaddress.ip_address("127.0.0.1")
            else:
                return
        if not self.ip_allowed(ip):
            raise BlockedAddress(
                "blocked_address",
                f"{host} is a private, loopback or reserved address; only public hosts can be crawled",
            )

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
        return addresses
