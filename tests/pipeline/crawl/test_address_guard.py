"""Address guard: which addresses are refused, the allow-list, DNS and the pinned resolver."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from pipeline.crawl.address_guard import AddressGuard, BlockedAddressError, GuardedResolver, why_blocked
from schemas.reasons import Reason


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-global"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("fc00::5", "private"),
    ],
)
def test_non_public_addresses_are_blocked(address, label):
    assert why_blocked(ipaddress.ip_address(address)) == label


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert why_blocked(ipaddress.ip_address(address)) is None


def check(guard: AddressGuard, host: str):
    return asyncio.run(guard.check(host))


def test_ip_literals_need_no_dns():
    verdict = check(AddressGuard(), "127.0.0.1")
    assert not verdict.allowed and verdict.reason == Reason.BLOCKED_ADDRESS and "loopback" in verdict.detail
    public = check(AddressGuard(), "93.184.216.34")
    assert public.allowed and public.addresses == ("93.184.216.34",)
    assert check(AddressGuard(), "[::1]").reason == Reason.BLOCKED_ADDRESS


def test_allow_list_by_ip_and_by_network():
    assert check(AddressGuard(["127.0.0.1"]), "127.0.0.1").allowed
    assert not check(AddressGuard(["127.0.0.1"]), "127.0.0.2").allowed
    assert check(AddressGuard(["10.0.0.0/8"]), "10.9.8.7").allowed


def test_names_are_resolved_and_checked():
    refused = check(AddressGuard(), "localhost")
    assert refused.reason == Reason.BLOCKED_ADDRESS and "resolves only to" in refused.detail
    by_address = check(AddressGuard(["127.0.0.1"]), "localhost")
    assert by_address.allowed and by_address.addresses == ("127.0.0.1",)  # ::1 is not allow-listed
    assert check(AddressGuard(["localhost"]), "LOCALHOST.").allowed


def test_metadata_names_are_refused_without_asking_dns():
    verdict = check(AddressGuard(), "metadata.google.internal")
    assert verdict.reason == Reason.BLOCKED_ADDRESS and "metadata" in verdict.detail


def test_unresolvable_name_is_a_dns_error():
    verdict = check(AddressGuard(), "no-such-host.invalid")
    assert not verdict.allowed and verdict.reason == Reason.DNS_ERROR


def test_one_lookup_per_host_even_when_asked_concurrently():
    guard = AddressGuard(["127.0.0.1"])

    async def many():
        verdicts = await asyncio.gather(*(guard.check("localhost") for _ in range(20)))
        return verdicts, len(guard._verdicts)

    verdicts, cached = asyncio.run(many())
    assert all(v is verdicts[0] for v in verdicts) and cached == 1


def test_resolver_connects_only_to_checked_addresses():
    resolver = GuardedResolver(AddressGuard(["127.0.0.1"]))

    async def resolve(host):
        return await resolver.resolve(host, 8080)

    (only,) = asyncio.run(resolve("localhost"))
    assert (only["host"], only["port"], only["hostname"]) == ("127.0.0.1", 8080, "localhost")
    with pytest.raises(BlockedAddressError) as raised:
        asyncio.run(GuardedResolver(AddressGuard()).resolve("localhost", 80))
    assert raised.value.verdict.reason == Reason.BLOCKED_ADDRESS
