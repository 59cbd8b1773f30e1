"""Tests of the network guard (ingest.stages.netguard, used by ingest.stages.fetch): SSRF refusals.

What is proven: private, loopback, link-local, multicast, reserved and unspecified addresses
are refused (also inside IPv4-mapped, 6to4 and NAT64 IPv6 forms) unless an allowed network
covers them; the check runs after DNS resolution and again on every redirect hop, through
the production aiohttp client and through a plain httpx transport; the address checked is
the address connected to (one lookup per connection, no DNS-rebinding gap); refusals are
`RefusedError`s (kind "refused") saying what to change; `allow_networks` in sources.yaml
and `INGEST_ALLOW_NETWORKS` are validated.

Every made-up name is answered by an injected resolver, and an autouse fixture fails any
test whose code tries to open a socket to a non-loopback address, so no packet ever leaves
the machine even if the guard were broken.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import pytest

from feedserver import FeedServer
from ingest import errors
from ingest.config import parse_config
from ingest.model import Settings, Source
from ingest.stages.fetch import Fetcher
from ingest.stages.netguard import (
    ENV_VAR,
    NetGuard,
    Refused,
    parse_network,
    parse_networks,
    refusal_reason,
)
from ingest.stages.transport import make_client

T = TypeVar("T")
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>One</title><link>http://example.com/1</link></item></channel></rss>"
)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
TRANSPORTS = ["aiohttp", "httpx"]


# -- the safety net: nothing but loopback is ever connected to ---------------------------


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every socket connect in this module must target 127.0.0.0/8 or ::1; others fail."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address: Any) -> None:
        attempts.append(address)
        if isinstance(address, tuple):
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            if not ip.is_loopback:
                raise AssertionError(f"test tried to connect to {address}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts


# -- helpers --------------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def guarded() -> T:
        async with asyncio.timeout(8):
            return await coro

    return asyncio.run(guarded())


class FakeDNS:
    """An injected resolver: a fixed table, every lookup recorded."""

    def __init__(self, table: dict[str, Sequence[str] | list[Sequence[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        answer = self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: unknown to the test resolver")
        if answer and isinstance(answer[0], list | tuple):  # one answer per lookup, in turn
            n = sum(1 for h in self.lookups if h == host) - 1
            return list(answer[min(n, len(answer) - 1)])
        return list(answer)  # type: ignore[arg-type]


def client(transport: str, guard: NetGuard) -> httpx.AsyncClient:
    if transport == "aiohttp":
        return make_client(Settings(), guard=guard)
    return make_client(Settings(), transport=httpx.AsyncHTTPTransport(), guard=guard)


async def fetch(url: str, guard: NetGuard, transport: str = "aiohttp") -> Any:
    async with client(transport, guard) as c:
        return await Fetcher(c).fetch(Source(key="s", name="s", url=url, timeout=5))


def blocked(url: str, guard: NetGuard, transport: str = "aiohttp") -> errors.RefusedError:
    with pytest.raises(errors.RefusedError) as info:
        run(fetch(url, guard, transport))
    assert info.value.kind == "refused"
    return info.value


# -- which addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),  # the cloud metadata service
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("fec0::1", "a site-local address"),
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "a private address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 around 127.0.0.1
        ("2002:a9fe:a9fe::", "a link-local address"),  # 6to4 around 169.254.169.254
        ("64:ff9b::a00:1", "a private address"),  # NAT64 around 10.0.0.1
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


def test_allowed_networks_let_addresses_through() -> None:
    guard = NetGuard(allow=(parse_network("127.0.0.0/8"), parse_network("10.1.0.0/16")))
    assert guard.refusal("127.0.0.1") is None
    assert guard.refusal("::ffff:127.0.0.1") is None  # the mapped form of an allowed address
    assert guard.refusal("10.1.2.3") is None
    assert guard.refusal("10.2.0.1") == "a private address"
    assert guard.refusal("::1") == "a loopback address"  # IPv6 loopback not in the list
    assert guard.refusal("8.8.8.8") is None  # public addresses need no allowing
    assert guard.refusal("not-an-ip") == "not an IP address"


def test_check_url_refuses_other_schemes_and_literal_addresses() -> None:
    guard = NetGuard()
    for url in ("file:///etc/passwd", "ftp://example.com/feed", "gopher://x/", "data:,x"):
        with pytest.raises(Refused, match="not an http or https URL"):
            guard.check_url(url)
    with pytest.raises(Refused, match=r"refused: 10\.0\.0\.5 is a private address; allow it"):
        guard.check_url("http://10.0.0.5/feed")
    with pytest.raises(Refused, match="::1 is a loopback address"):
        guard.check_url("http://[::1]:8080/feed")
    assert guard.check_url("https://example.com/feed") == "example.com"  # a name: resolve next
    assert guard.check_url("http://8.8.8.8/") is None


def test_resolve_keeps_only_allowed_addresses_and_refuses_when_none_is() -> None:
    dns = FakeDNS({"mixed.test": ["10.0.0.1", "93.184.215.14"], "inside.test": ["10.1.2.3"]})
    guard = NetGuard(resolver=dns)
    assert run(guard.resolve("mixed.test", 80)) == ["93.184.215.14"]
    with pytest.raises(Refused) as info:
        run(guard.resolve("inside.test", 80))
    assert str(info.value).startswith(
        "refused: inside.test resolves to 10.1.2.3, a private address; allow it with"
    )
    assert isinstance(info.value, OSError)  # what aiohttp expects a failed lookup to raise


# -- settings: sources.yaml and the environment ----------------------------------------


def test_env_networks_join_the_settings() -> None:
    settings = Settings(allow_networks=("10.0.0.0/8",))
    guard = NetGuard.from_settings(settings, environ={ENV_VAR: " 127.0.0.0/8 , ::1/128,"})
    assert [str(n) for n in guard.allow] == ["10.0.0.0/8", "127.0.0.0/8", "::1/128"]
    assert NetGuard.from_settings(Settings(), environ={}).allow == ()


def test_bad_env_networks_are_a_config_error_naming_the_variable() -> None:
    with pytest.raises(errors.ConfigError) as info:
        NetGuard.from_settings(Settings(), environ={ENV_VAR: "127.0.0.0/8,localhost"})
    assert str(info.value) == (
        f"${ENV_VAR}:0: 'localhost' is not a network; "
        "use CIDR notation such as 127.0.0.0/8 or ::1/128"
    )


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks("127.0.0.1/8,10.0.0.5")] == [
        "127.0.0.0/8",
        "10.0.0.5/32",
    ]
    with pytest.raises(ValueError, match="not a network"):
        parse_networks("10.0.0.0/33")


SOURCES = """\
defaults:
  every: 1h
  allow_networks: {networks}
sources:
  - key: a
    name: A
    url: http://127.0.0.1:8000/feed
"""


def _problems(text: str) -> list[str]:
    """The problems, as printed, of a sources.yaml that must be refused."""
    with pytest.raises(errors.ConfigError) as info:
        parse_config(text, "sources.yaml")
    return [str(p) for p in info.value.problems]


def test_config_allow_networks_under_defaults() -> None:
    config = parse_config(SOURCES.format(networks="[127.0.0.0/8, '::1/128', 10.0.0.0/8]"))
    assert config.settings.allow_networks == ("127.0.0.0/8", "::1/128", "10.0.0.0/8")
    single = parse_config(SOURCES.format(networks="127.0.0.0/8"))
    assert single.settings.allow_networks == ("127.0.0.0/8",)


def test_config_bad_networks_name_file_and_line() -> None:
    text = SOURCES.format(networks="\n    - 127.0.0.0/8\n    - 300.1.2.3/8\n    - intranet")
    assert _problems(text) == [
        "sources.yaml:5: defaults: allow_networks: '300.1.2.3/8' is not a network; "
        "use CIDR notation such as 127.0.0.0/8 or ::1/128",
        "sources.yaml:6: defaults: allow_networks: 'intranet' is not a network; "
        "use CIDR notation such as 127.0.0.0/8 or ::1/128",
    ]


def test_config_allow_networks_elsewhere_gets_a_hint() -> None:
    text = (
        "settings:\n  allow_networks: [127.0.0.0/8]\nsources:\n"
        "  - key: a\n    name: A\n    url: http://example.com/\n    allow_networks: 10.0.0.0/8\n"
    )
    assert _problems(text) == [
        "sources.yaml:2: settings: unknown setting 'allow_networks'; "
        "'allow_networks' belongs under defaults:",
        "sources.yaml:7: unknown field 'allow_networks'; "
        "'allow_networks' applies to every source, put it under defaults:",
    ]


# -- fetching: refused before any connection ----------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_name_resolving_to_a_private_address_is_refused(
    transport: str, loopback_only: list[Any]
) -> None:
    dns = FakeDNS({"example.test": ["10.1.2.3"]})
    e = blocked("http://example.test/feed.xml", NetGuard(resolver=dns), transport)
    assert str(e) == (
        "refused: example.test resolves to 10.1.2.3, a private address; allow it with "
        "allow_networks (sources.yaml defaults:) or INGEST_ALLOW_NETWORKS"
    )
    assert dns.lookups == ["example.test"]
    assert loopback_only == []  # no connection was even attempted


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/feed",
        "http://[::ffff:192.168.0.1]/feed",
        "http://0.0.0.0:8080/",
        "http://[fe80::1]/",
    ],
)
def test_literal_private_addresses_are_refused(
    transport: str, url: str, loopback_only: list[Any]
) -> None:
    dns = FakeDNS({})
    e = blocked(url, NetGuard(resolver=dns), transport)
    assert str(e).startswith("refused: ") and "allow it with allow_networks" in str(e)
    assert dns.lookups == [] and loopback_only == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_loopback_is_refused_unless_allowed(
    feed_server: FeedServer, transport: str, loopback_only: list[Any]
) -> None:
    feed_server.put("/feed.xml", RSS)
    url = feed_server.url("/feed.xml")
    e = blocked(url, NetGuard(), transport)
    assert str(e).startswith("refused: 127.0.0.1 is a loopback address")
    assert feed_server.count() == 0 and loopback_only == []

    fetched = run(fetch(url, NetGuard(allow=LOOPBACK), transport))
    assert fetched.status == 200 and feed_server.count("/feed.xml") == 1


def test_localhost_by_name_is_refused() -> None:
    dns = FakeDNS({"localhost": ["127.0.0.1", "::1"]})
    e = blocked("http://localhost:9/feed", NetGuard(resolver=dns))
    assert "localhost resolves to 127.0.0.1, a loopback address" in str(e)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_redirect_hop_is_checked(
    feed_server: FeedServer, transport: str, loopback_only: list[Any]
) -> None:
    dns = FakeDNS({"internal.test": ["10.0.0.7"]})
    guard = NetGuard(allow=LOOPBACK, resolver=dns)
    feed_server.redirect("/to-name", "http://internal.test/admin", status=302)
    feed_server.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/", status=301)
    feed_server.redirect("/hop1", "/hop2", status=302)
    feed_server.redirect("/hop2", "http://internal.test:8080/x", status=307)

    e = blocked(feed_server.url("/to-name"), guard, transport)
    assert "internal.test resolves to 10.0.0.7, a private address" in str(e)
    assert e.url == "http://internal.test/admin"
    e = blocked(feed_server.url("/to-metadata"), guard, transport)
    assert "169.254.169.254 is a link-local address" in str(e)
    e = blocked(feed_server.url("/hop1"), guard, transport)
    assert "internal.test resolves to 10.0.0.7" in str(e)

    assert {a[0] for a in loopback_only} <= {"127.0.0.1"}  # only the feed server was dialled


# -- the address checked is the address connected to --------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connects_to_the_checked_address_with_the_original_host(
    feed_server: FeedServer, transport: str, loopback_only: list[Any]
) -> None:
    feed_server.put("/feed.xml", RSS)
    # an attacker's name answering a private address next to an allowed one
    dns = FakeDNS({"feeds.test": ["10.9.9.9", "127.0.0.1"]})
    url = f"http://feeds.test:{feed_server.port}/feed.xml"
    fetched = run(fetch(url, NetGuard(allow=LOOPBACK, resolver=dns), transport))
    assert fetched.status == 200 and fetched.final_url == url
    assert feed_server.last("/feed.xml").header("host") == f"feeds.test:{feed_server.port}"
    assert [a[0] for a in loopback_only] == ["127.0.0.1"]  # never 10.9.9.9


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dns_rebinding_gets_no_second_lookup(
    feed_server: FeedServer, transport: str, loopback_only: list[Any]
) -> None:
    """The name answers an allowed address first and a private one after: the private
    answer is never used, because each connection resolves once and dials what it checked."""
    feed_server.put("/feed.xml", RSS)
    dns = FakeDNS({"rebind.test": [["127.0.0.1"], ["10.0.0.5"]]})
    url = f"http://rebind.test:{feed_server.port}/feed.xml"
    fetched = run(fetch(url, NetGuard(allow=LOOPBACK, resolver=dns), transport))
    assert fetched.status == 200
    assert dns.lookups == ["rebind.test"]
    assert [a[0] for a in loopback_only] == ["127.0.0.1"]


def test_mock_transport_is_unguarded_unless_a_guard_is_given() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=RSS.encode())

    async def go(guard: NetGuard | None) -> None:
        transport = httpx.MockTransport(handler)
        async with make_client(Settings(), transport=transport, guard=guard) as c:
            await Fetcher(c).fetch(Source(key="s", name="s", url="http://10.0.0.1/feed"))

    run(go(None))  # no socket, nothing to guard
    assert seen == ["http://10.0.0.1/feed"]
    with pytest.raises(errors.RefusedError):
        run(go(NetGuard()))
    assert len(seen) == 1


def test_a_blocked_source_is_a_per_source_report(sqlite_url: str, feed_server: FeedServer) -> None:
    """Through the pipeline: the refused source fails with kind "refused", the others run."""
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    feed_server.put("/ok.xml", RSS)
    sources = [
        Source(key="ok", name="ok", url=feed_server.url("/ok.xml")),
        Source(key="meta", name="meta", url="http://169.254.169.254/latest/meta-data/"),
    ]
    with Store.open(sqlite_url) as store:
        reports = {r.source_key: r for r in run_pipeline(sources, store, Settings())}
        status = {row["key"]: row for row in store.status()}
    assert reports["ok"].ok and reports["ok"].new == 1
    assert not reports["meta"].ok and reports["meta"].error_kind == "refused"
    assert status["meta"]["last_error_kind"] == "refused"
    assert "169.254.169.254 is a link-local address" in status["meta"]["last_error"]


def test_ingest_check_reports_a_bad_environment_variable(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main

    path = tmp_path / "sources.yaml"
    path.write_text(SOURCES.format(networks="[127.0.0.0/8]"))
    assert main(["check", "--sources", str(path)]) == 0
    monkeypatch.setenv(ENV_VAR, "127.0.0.0/8,lan")
    assert main(["check", "--sources", str(path)]) == 2
    assert f"${ENV_VAR}:0: 'lan' is not a network" in capsys.readouterr().err
