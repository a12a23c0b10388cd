"""Which webhook targets the service refuses to call: by default, any address on a private, loopback,
link-local or otherwise internal network (a tenant must not make the service probe its own network)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def refusal(url: str) -> str | None:
    """Why ``url`` may not be called (its host is or resolves to an internal address), or None."""
    host = urlsplit(url).hostname
    if not host:
        return "the callback URL has no host"
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _internal(address):
            return (
                f"refused: {host} resolves to the internal address {address} "
                "(set JUDGE_WEBHOOK_PRIVATE_ADDRESSES=true to allow internal receivers)"
            )
    return None
