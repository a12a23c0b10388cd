"""Where a webhook may go, and the address it goes to.

A callback URL's host is resolved once, here. By default every address it resolves to must be global:
the standard library's ``is_global`` refuses private, loopback, link-local, shared (100.64.0.0/10,
where cloud metadata services live), reserved and documentation ranges, and multicast, site-local and
tunnelled IPv6 addresses are refused besides (a tenant must not make the service probe an internal
network). The call then connects to the address that was checked, never to what a second lookup
returns (DNS rebinding), keeping the URL's name in the Host header and as the TLS server name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]
"""``(host, port)`` → the addresses to connect to, best first (raises OSError when there is none)."""

# RFC 6052's well-known NAT64 prefix: the last 32 bits are the IPv4 address a gateway connects to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(Exception):
    """The webhook may not be sent to this URL; the message says why."""


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses as the operating system resolves them (a literal address is itself)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))


def is_internal(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None or address.teredo is not None:
            return True  # a tunnel: the network it reaches is decided by an address inside it
        if address.ipv4_mapped is not None:
            return is_internal(address.ipv4_mapped)
        if address in _NAT64:
            return is_internal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.is_site_local:
            return True
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class Target:
    """A callback URL and the checked address its call connects to."""

    url: httpx.URL
    address: IPAddress

    @property
    def host(self) -> str:
        """The URL's host as sent on the wire (IDNA-encoded): the Host header's and the TLS server name."""
        return self.url.raw_host.decode("ascii")

    def request(self, client: httpx.Client, body: bytes, headers: dict[str, str]) -> httpx.Request:
        """The POST of ``body`` to the checked address, naming the URL's host in the Host header and
        in TLS (server name and certificate check), on a connection of its own."""
        return client.build_request(
            "POST",
            self.url.copy_with(host=str(self.address)),
            content=body,
            # The client pools connections by address, not by name: a kept-alive connection, whose TLS
            # certificate was checked for one name, would carry the call of another name that resolves
            # to the same address. Closing it after each call keeps the check per name.
            headers={**headers, "Host": self.url.netloc.decode("ascii"), "Connection": "close"},
            extensions={"sni_hostname": self.host},
        )


def target(url: str, *, allow_internal: bool, resolve: Resolver = system_resolver) -> Target:
    """Resolve ``url``'s host once and check every address it has; the call goes to the first.
    Raises Refused with the reason (no host, no address, or an internal one unless ``allow_internal``)."""
    parsed = httpx.URL(url)
    if not parsed.host:
        raise Refused("the callback URL has no host")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = resolve(host, port)
    except OSError as exc:
        raise Refused(f"cannot resolve {host}: {exc}") from exc
    if not found:
        raise Refused(f"cannot resolve {host}: no address")
    if not allow_internal:
        for address in found:
            if is_internal(address):
                raise Refused(
                    f"refused: {host} resolves to the internal address {address} "
                    "(set JUDGE_WEBHOOK_PRIVATE_ADDRESSES=true to allow internal receivers)"
                )
    return Target(parsed, found[0])
