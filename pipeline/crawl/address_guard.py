"""Address guard: refuse requests to private, loopback, link-local and cloud-metadata addresses.

In: a host name or IP literal (from a URL or a redirect hop). Out: an `AddressVerdict` listing the
addresses that may be contacted, or the `Reason` (blocked_address, dns_error) saying why none may.
Names are resolved once per guard (one crawl) and the connection is pinned to exactly the addresses
that were checked, through `GuardedResolver`, so a DNS answer that changes between the check and the
connect (DNS rebinding) cannot reach a private address. Allow-listed host names, IPs and CIDR
networks (`CrawlConfig.allow_hosts`) pass.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult

from schemas.reasons import Reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


@dataclass(frozen=True, slots=True)
class AddressVerdict:
    """`allowed` hosts carry the addresses to connect to; refused ones a reason and a detail."""

    host: str
    allowed: bool
    addresses: tuple[str, ...]
    reason: Reason | None = None
    detail: str = ""


class BlockedAddressError(OSError):
    """Raised by `GuardedResolver` so aiohttp refuses a connection the guard did not allow."""

    def __init__(self, verdict: AddressVerdict) -> None:
        super().__init__(verdict.detail)
        self.verdict = verdict


def parse_ip(host: str) -> IPAddress | None:
    """The IP address a URL host spells (brackets and IPv6 zone ids removed), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def why_blocked(address: IPAddress) -> str | None:
    """Which class of non-public address this is, or None when it is a public unicast address."""
    mapped = getattr(address, "ipv4_mapped", None) or getattr(address, "sixtofour", None)
    if mapped is not None:
        return why_blocked(mapped)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for label, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),
    ):
        if flag:
            return label
    return None


class AddressGuard:
    """Checks hosts against the block rules and the allow-list; caches one verdict per host."""

    def __init__(self, allow_hosts: Sequence[str] = ()) -> None:
        self._allowed_names: set[str] = set()
        self._allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow_hosts:
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self._allowed_names.add(entry.lower().rstrip("."))
        self._verdicts: dict[str, asyncio.Future[AddressVerdict]] = {}

    def _address_allowed(self, address: IPAddress) -> str | None:
        """None when the address may be contacted, else why not."""
        if any(address in network for network in self._allowed_networks):
            return None
        return why_blocked(address)

    async def check(self, host: str) -> AddressVerdict:
        """The verdict for `host`; concurrent checks of one host share a single DNS lookup."""
        key = host.lower().rstrip(".")
        pending = self._verdicts.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._decide(key))
            self._verdicts[key] = pending
        if pending.done():
            return pending.result()
        return await asyncio.shield(pending)  # one caller's cancellation must not cancel the lookup

    async def _decide(self, host: str) -> AddressVerdict:
        literal = parse_ip(host)
        if literal is not None:
            blocked = self._address_allowed(literal)
            if blocked:
                return AddressVerdict(
                    host, False, (), Reason.BLOCKED_ADDRESS, f"{host} is a {blocked} address"
                )
            return AddressVerdict(host, True, (str(literal),))
        name_allowed = host in self._allowed_names
        if host in METADATA_HOSTNAMES and not name_allowed:
            return AddressVerdict(host, False, (), Reason.BLOCKED_ADDRESS, f"{host} is a cloud metadata name")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as error:
            return AddressVerdict(host, False, (), Reason.DNS_ERROR, f"cannot resolve {host}: {error}")
        resolved = list(dict.fromkeys(info[4][0] for info in infos))
        allowed, refused = [], []
        for text in resolved:
            blocked = (
                None if name_allowed else self._address_allowed(ipaddress.ip_address(text.split("%")[0]))
            )
            (refused if blocked else allowed).append(text if not blocked else f"{text} ({blocked})")
        if not allowed:
            return AddressVerdict(
                host, False, (), Reason.BLOCKED_ADDRESS, f"{host} resolves only to {', '.join(refused)}"
            )
        return AddressVerdict(host, True, tuple(allowed))


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that connects only to the addresses the guard allowed for a host."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        verdict = await self._guard.check(host)
        if not verdict.allowed:
            raise BlockedAddressError(verdict)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for address in verdict.addresses
        ]

    async def close(self) -> None:
        """Nothing to release: lookups run on the event loop's default executor."""
