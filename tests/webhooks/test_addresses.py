"""The webhook address guard decides on the addresses a (stub) resolver gives: every non-global one is
refused, and the call's target is the address that was checked. Nothing here opens a connection."""

from __future__ import annotations

import re
from ipaddress import ip_address

import pytest

from app.webhooks.addresses import IPAddress, Refused, Resolver, is_internal, target

URL = "https://hooks.example.com/judge"


def _resolving_to(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> list[IPAddress]:
        assert (host, port) == ("hooks.example.com", 443)
        return [ip_address(a) for a in addresses]

    return resolve


NOT_GLOBAL = [
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.100.100.200",  # a cloud metadata address inside it
    "169.254.169.254",
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "0.0.0.0",
    "192.0.2.1",
    "198.18.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "::1",
    "::",
    "fe80::1",
    "fec0::1",  # site-local
    "fc00::1",
    "fd00:ec2::254",
    "2001:db8::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:10.0.0.1",
    "2002:c0a8:101::1",  # 6to4 around 192.168.1.1
    "2002:808:808::1",  # 6to4 around a public address: still a tunnel
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_every_non_global_address_is_refused(address: str) -> None:
    assert is_internal(ip_address(address))
    with pytest.raises(Refused, match=re.escape(f"internal address {ip_address(address)}")):
        target(URL, allow_internal=False, resolve=_resolving_to(address))
    # Allowed where the operator allows internal receivers, and then pinned too.
    allowed = target(URL, allow_internal=True, resolve=_resolving_to(address))
    assert allowed.address == ip_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_a_global_address_is_the_calls_target(address: str) -> None:
    checked = target(URL, allow_internal=False, resolve=_resolving_to(address))
    assert checked.address == ip_address(address) and checked.host == "hooks.example.com"


def test_one_internal_address_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(Refused, match="internal address 10.0.0.7"):
        target(URL, allow_internal=False, resolve=_resolving_to("93.184.216.34", "10.0.0.7"))


def test_a_url_without_host_or_address_is_refused() -> None:
    with pytest.raises(Refused, match="the callback URL has no host"):
        target("http:///nohost", allow_internal=True)

    def nothing(host: str, port: int) -> list[IPAddress]:
        raise OSError("no such name")

    with pytest.raises(Refused, match="cannot resolve hooks.example.com: no such name"):
        target(URL, allow_internal=True, resolve=nothing)
