"""Which addresses ingest may connect to: the guard against server-side request forgery.

A sources file (or a redirect, or a DNS answer) can point the fetcher at
any address: the cloud metadata service at 169.254.169.254, a database on
10.0.0.5, an admin page on localhost.  This module decides, for one IP
address, whether a connection is allowed, and holds the two places where
that decision is enforced:

- `GuardedResolver`, the aiohttp resolver of the production transport:
  every connection aiohttp opens (the first request and every redirect hop,
  to whatever host) resolves the name through it, and only the addresses
  that pass are returned, so aiohttp connects to exactly the address that
  was checked.  There is no second lookup an attacker's DNS could answer
  differently (no DNS-rebinding gap).
- `NetGuard.check_url`, which `fetch.GuardedTransport` runs before every
  request: non-http(s) URLs and refused IP-literal hosts (which aiohttp
  connects to without asking its resolver) are refused there; around any
  other transport it also resolves the name with `NetGuard.resolve` and sends
  the request to the checked IP itself.

An address is refused when it is loopback, private, link-local, multicast,
reserved, unspecified or otherwise not globally reachable (`ipaddress`),
looking through IPv4-mapped, 6to4 and NAT64 IPv6 forms to the IPv4 address
inside, unless it lies in one of the networks the operator allowed:
`allow_networks:` under `defaults:` in sources.yaml (`Settings.allow_networks`)
and the comma-separated CIDRs of the `INGEST_ALLOW_NETWORKS` environment
variable, together.

Name resolution is injectable (`NetGuard.resolver`), so tests can map a
made-up name to any address without a packet leaving the machine.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ingest.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from ingest.model import Settings

__all__ = [
    "ENV_VAR",
    "NetGuard",
    "Refused",
    "cause_in",
    "guarded_resolver",
    "parse_network",
    "parse_networks",
    "refusal_reason",
]

ENV_VAR = "INGEST_ALLOW_NETWORKS"
HINT = f"allow it with allow_networks (sources.yaml defaults:) or {ENV_VAR}"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the IP addresses the name stands for (as text)
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(OSError):
    """A connection the guard does not allow (an OSError, as resolvers raise)."""

    def __init__(self, message: str, *, host: str = "", address: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return str(self.args[0])


def parse_network(text: str) -> Network:
    """One CIDR network (`10.0.0.0/8`, `::1/128`; a bare address is one host).

    Host bits may be set (`127.0.0.1/8` is 127.0.0.0/8).  Raises ValueError.
    """
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a network; use CIDR notation such as 127.0.0.0/8 or ::1/128"
        ) from None


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDR networks (blank items ignored).  Raises ValueError."""
    return tuple(parse_network(part) for part in text.split(",") if part.strip())


def _embedded_v4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: Address) -> str | None:
    """Why a connection to `address` is refused ("a private address"), or None if it is public."""
    inner = _embedded_v4(address)
    if inner is not None:
        reason = refusal_reason(inner)
        if reason is not None:
            return reason
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


@functools.lru_cache(maxsize=4096)  # asked again for every request to the same host
def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _refusal(allow: tuple[Network, ...], address: str) -> str | None:
    """`NetGuard.refusal`, remembered: every poll of an IP-literal URL and every address
    a lookup returns asks again about the same few addresses (a pure function of both)."""
    ip = _ip(address)
    if ip is None:
        return "not an IP address"
    if ip.version == 6 and ip.scope_id:  # fe80::1%eth0: the scope is not part of the address
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    reason = refusal_reason(ip)
    if reason is None:
        return None
    inner = _embedded_v4(ip)
    if any(ip in net or (inner is not None and inner in net) for net in allow):
        return None
    return reason


async def _system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class NetGuard:
    """The allowed networks and the resolver; decides about one address or host at a time."""

    allow: tuple[Network, ...] = ()
    resolver: Resolver | None = None  # None: the system's (getaddrinfo)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
    ) -> NetGuard:
        """The guard for `settings.allow_networks` plus `INGEST_ALLOW_NETWORKS`.

        A malformed environment variable raises `ConfigError` naming it.
        """
        env = os.environ if environ is None else environ
        allow = [parse_network(n) for n in settings.allow_networks]
        try:
            allow += parse_networks(env.get(ENV_VAR, ""))
        except ValueError as e:
            raise ConfigError([ConfigProblem(f"${ENV_VAR}", 0, str(e))]) from None
        return cls(tuple(dict.fromkeys(allow)), resolver)

    def refusal(self, address: str) -> str | None:
        """Why `address` (an IP as text) may not be connected to, or None when it may."""
        return _refusal(self.allow, address)

    def check_address(self, host: str, address: str) -> None:
        """Raise `Refused` unless a connection to `address` (for `host`) is allowed."""
        reason = self.refusal(address)
        if reason is not None:
            raise Refused(_message(host, address, reason), host=host, address=address)

    def check_url(self, url: str) -> str | None:
        """Raise `Refused` for a non-http(s) URL or a refused IP-literal host.

        Returns the host when it is a name still to be resolved, else None.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() not in _SCHEMES:
            raise Refused(f"refused: {url} is not an http or https URL", host=parts.netloc)
        host = parts.hostname or ""
        if not host:
            raise Refused(f"refused: {url} has no host")
        if _ip(host) is not None:
            self.check_address(host, host)
            return None
        return host

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that may be connected to, in the resolver's order.

        Raises `Refused` when it has addresses but none is allowed (an OSError,
        as a failed lookup is).
        """
        found = list(await (self.resolver or _system_resolver)(host, port))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no address")
        return self.allowed(host, found)

    def allowed(self, host: str, addresses: Sequence[str]) -> list[str]:
        """Of `host`'s `addresses`, those that may be connected to, in order; `Refused`
        (naming the first) when there are some but none is allowed."""
        kept = [a for a in addresses if self.refusal(a) is None]
        if addresses and not kept:
            self.check_address(host, addresses[0])
        return kept


def _message(host: str, address: str, reason: str) -> str:
    if host.strip("[]") == address:
        return f"refused: {address} is {reason}; {HINT}"
    return f"refused: {host} resolves to {address}, {reason}; {HINT}"


# -- aiohttp: the resolver of the production transport ----------------------------


def guarded_resolver(guard: NetGuard) -> Any:
    """An `aiohttp.abc.AbstractResolver` that returns only the addresses `guard` allows.

    Built inside a running loop (aiohttp's own resolver wants one).  With
    `guard.resolver` set, names are resolved by it instead of the system.
    """
    from aiohttp.abc import AbstractResolver, ResolveResult
    from aiohttp.resolver import DefaultResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = None if guard.resolver is not None else DefaultResolver()

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            if self._inner is not None:
                results = await self._inner.resolve(host, port, family)
            else:  # `_inner` is None exactly when the guard has a resolver of its own
                assert guard.resolver is not None
                results = [_result(host, a, port) for a in await guard.resolver(host, port)]
            ok = set(guard.allowed(host, [r["host"] for r in results]))
            return [r for r in results if r["host"] in ok]

        async def close(self) -> None:
            if self._inner is not None:
                await self._inner.close()

    def _result(host: str, address: str, port: int) -> ResolveResult:
        ip = _ip(address)
        family = socket.AF_INET6 if ip is not None and ip.version == 6 else socket.AF_INET
        return ResolveResult(
            hostname=host,
            host=address,
            port=port,
            family=family,
            proto=0,
            flags=socket.AI_NUMERICHOST,
        )

    return GuardedResolver()


def cause_in(e: BaseException, test: Callable[[BaseException], bool]) -> BaseException | None:
    """The first exception in `e`'s chain of causes (itself included) that passes `test`:
    how an HTTP library's error is traced to what happened under it (a `Refused` address
    inside httpx's own error, say), for fetch.py and websub_hub.py alike."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:  # never loop on a cyclic chain
        if test(cur):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
