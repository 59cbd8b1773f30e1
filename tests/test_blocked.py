"""Servers that push back: bot challenges (kind `blocked`), per-source headers and proxies.

One job: show, over real loopback HTTP, that an editor can see and work around a
server that refuses the poller, without code.  `challenge.challenge_of` is driven by
the files tests/data/challenge/<case>.html (a page a protection serves, or a real
answer that must not count) with <case>.expected.json beside it (status, headers,
the vendor named or null).  End to end: a challenge page answering 403 (and one
served as 200) fails the poll with kind `blocked` and a plain message, stored and
shown in `ingest status` on SQLite and PostgreSQL; `headers:` (User-Agent, Cookie
from `${NAME}`) reach the source's own host and never a redirect elsewhere; a
`proxy:` (HTTP or SOCKS5, tests/proxyserver.py) carries the poll while the network
guard still judges the target; and a secret from the environment shows up nowhere:
not in a message, the status, the logs, the database or `ingest check`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from feedserver import FeedServer
from ingest import errors
from ingest.config import parse_config
from ingest.model import Settings, Source
from ingest.stages.challenge import challenge_of
from ingest.stages.fetch import Fetcher
from ingest.stages.netguard import NetGuard, parse_network
from ingest.stages.transport import PollingClient, make_client
from proxyserver import ProxyServer

T = TypeVar("T")
CASES = Path(__file__).parent / "data" / "challenge"
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Story one</title><link>http://news.example/1</link>"
    "<guid>one</guid></item></channel></rss>"
)
SECRET = "s3cr3t-cookie-value-7731"


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def guarded() -> T:
        async with asyncio.timeout(20):
            return await coro

    return asyncio.run(guarded())


def fetch(source: Source, guard: NetGuard | None = None) -> Any:
    async def go() -> Any:
        async with make_client(Settings(), guard=guard) as client:
            return await Fetcher(client).fetch(source)

    return run(go())


# -- which answers are challenges (file-driven) ------------------------------------------


def _cases() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.html"))


def test_every_challenge_case_has_its_expectation() -> None:
    assert len(_cases()) >= 8
    for name in _cases():
        assert (CASES / f"{name}.expected.json").is_file(), name


@pytest.mark.parametrize("case", _cases())
def test_challenge_case(case: str) -> None:
    expected = json.loads((CASES / f"{case}.expected.json").read_text())
    headers = httpx.Headers(expected["headers"])
    body = (CASES / f"{case}.html").read_bytes()
    assert challenge_of(expected["status"], headers, body) == expected["vendor"]


# -- end to end: a challenge page is `blocked` --------------------------------------------


def _challenge(name: str) -> bytes:
    return (CASES / f"{name}.html").read_bytes()


def test_a_challenge_answer_is_blocked_not_http_or_not_a_feed(feed_server: FeedServer) -> None:
    feed_server.error(
        "/feed.xml", 403, _challenge("cloudflare_403"),
        headers={"Server": "cloudflare"}, content_type="text/html; charset=UTF-8",
    )  # fmt: skip
    feed_server.put("/served-as-200", _challenge("cloudflare_200"), "text/html")
    feed_server.error("/plain", 403, _challenge("plain_forbidden"), content_type="text/html")
    with pytest.raises(errors.BlockedError) as info:
        fetch(Source(key="s", name="s", url=feed_server.url("/feed.xml")))
    e = info.value
    assert e.kind == "blocked" and e.status == 403
    assert str(e).startswith("blocked by Cloudflare bot protection: HTTP 403 with a challenge")
    assert "headers:" in str(e) and "proxy:" in str(e)
    with pytest.raises(errors.BlockedError) as info:
        fetch(Source(key="s", name="s", url=feed_server.url("/served-as-200")))
    assert info.value.status == 200
    with pytest.raises(errors.HTTPStatusError) as plain:  # an ordinary 403 stays `http`
        fetch(Source(key="s", name="s", url=feed_server.url("/plain")))
    assert plain.value.kind == "http" and str(plain.value) == "HTTP 403 Forbidden"


def test_a_blocked_source_is_stored_and_shown_and_the_others_run(
    db_url: str, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    feed_server.put("/ok.xml", RSS)
    feed_server.error(
        "/guarded.xml", 503, _challenge("imperva_503"), retry_after=120, content_type="text/html"
    )
    sources = [
        Source(key="ok", name="ok", url=feed_server.url("/ok.xml")),
        Source(key="guarded", name="guarded", url=feed_server.url("/guarded.xml")),
    ]
    with Store.open(db_url) as store:
        reports = {r.source_key: r for r in run_pipeline(sources, store, Settings())}
        status = {row["key"]: row for row in store.status()}
    assert main(["status", "--db", db_url]) == 0
    assert reports["ok"].ok and reports["ok"].new == 1
    assert reports["guarded"].error_kind == "blocked" and reports["guarded"].retry_after == 120
    assert status["guarded"]["last_error_kind"] == "blocked"
    assert status["guarded"]["last_error"].startswith("blocked by Imperva bot protection: HTTP 503")
    assert "blocked by Imperva" in capsys.readouterr().out


# -- headers: -------------------------------------------------------------------------------


def _sources_yaml(feed_url: str, extra: str) -> str:
    return f"sources:\n  - key: s\n    name: S\n    url: {feed_url}\n{extra}"


def test_headers_reach_the_source_with_secrets_from_the_environment(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BMJ_COOKIE", SECRET)
    feed_server.put("/feed.xml", RSS)
    text = _sources_yaml(
        feed_server.url("/feed.xml"),
        "    headers:\n      User-Agent: Mozilla/5.0 (editor's choice)\n"
        "      Cookie: session=${BMJ_COOKIE}\n      X-Api-Key: plain\n",
    )
    (source,) = parse_config(text, "sources.yaml").sources
    assert dict(source.headers)["Cookie"] == "session=${BMJ_COOKIE}"  # kept as written
    assert SECRET not in repr(source)
    fetched = fetch(source)
    assert fetched.status == 200
    (req,) = feed_server.requests
    assert req.header("User-Agent") == "Mozilla/5.0 (editor's choice)"
    assert req.header("Cookie") == f"session={SECRET}"
    assert req.header("X-Api-Key") == "plain"
    assert req.header("Accept-Encoding") == "gzip, deflate"  # ingest's own stay


def test_cookies_never_follow_a_redirect_to_another_host(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BMJ_COOKIE", SECRET)
    with FeedServer(host="127.0.0.2") as other:
        other.put("/feed.xml", RSS)
        feed_server.redirect("/feed.xml", other.url("/feed.xml"), 302)
        source = Source(
            key="s", name="s", url=feed_server.url("/feed.xml"),
            headers=(("User-Agent", "EditorBot/1"), ("Cookie", "c=${BMJ_COOKIE}")),
        )  # fmt: skip
        assert fetch(source).final_url == other.url("/feed.xml")
        (first,) = feed_server.requests
        (second,) = other.requests
    assert first.header("Cookie") == f"c={SECRET}"
    assert second.header("Cookie") is None
    assert second.header("User-Agent") == "EditorBot/1"


def test_a_cookie_a_host_sets_goes_back_to_it_once(feed_server: FeedServer) -> None:
    """One jar keeps the cookies a server sets (httpx's): the next request to that host
    carries each once, and a host that set none gets none."""
    feed_server.put("/a.xml", RSS, headers={"Set-Cookie": "consent=yes; Path=/"})
    feed_server.put("/b.xml", RSS)
    with FeedServer(host="127.0.0.2") as other:
        other.put("/c.xml", RSS)

        async def go() -> None:
            async with make_client(Settings()) as client:
                for url in (feed_server.url("/a.xml"), feed_server.url("/b.xml"),
                            other.url("/c.xml")):  # fmt: skip
                    await Fetcher(client).fetch(Source(key="s", name="s", url=url))

        run(go())
        (second,) = other.requests
    first, again = feed_server.requests
    assert first.header("Cookie") is None
    assert again.header("Cookie") == "consent=yes"
    assert second.header("Cookie") is None


def test_the_polling_clients_cookie_store_keeps_what_httpx_keeps() -> None:
    """`PollingClient` skips reading responses that set no cookie; what it keeps and sends
    is httpx's: cookies set on the client, and those a response sets, on later requests."""
    seen: list[set[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(set(filter(None, request.headers.get("cookie", "").split("; "))))
        if request.url.path == "/set":
            return httpx.Response(200, headers={"Set-Cookie": "a=1; Path=/"})
        return httpx.Response(200, headers={"X-Other": "no cookie here"})

    async def go() -> None:
        async with PollingClient(transport=httpx.MockTransport(answer)) as client:
            client.cookies = {"pre": "x"}  # httpx's setter: still the polling store
            for path in ("/none", "/set", "/none"):
                await client.get(f"http://h.test{path}")
            assert dict(client.cookies) == {"pre": "x", "a": "1"}

    run(go())
    assert seen == [{"pre=x"}, {"pre=x"}, {"pre=x", "a=1"}]


def test_a_missing_variable_fails_the_poll_saying_which(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    feed_server.put("/feed.xml", RSS)
    source = Source(
        key="s", name="s", url=feed_server.url("/feed.xml"),
        headers=(("Cookie", "c=${NOT_SET_ANYWHERE}"),),
    )  # fmt: skip
    with pytest.raises(errors.FetchError) as info:
        fetch(source)
    assert "environment variable NOT_SET_ANYWHERE is not set in this process" in str(info.value)
    assert feed_server.requests == []


# -- proxy: -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
def test_a_proxy_carries_the_poll_to_the_checked_address(
    scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target, a name, is resolved and checked by the guard; the proxy is asked for the
    checked address (the Host header keeps the name).  The proxy itself sits on an address
    the guard would refuse (127.0.0.1): it is the editor's explicit choice."""
    monkeypatch.setenv("PROXY_PASSWORD", SECRET)

    async def dns(host: str, port: int) -> list[str]:
        return {"feeds.example": ["127.0.0.2"]}.get(host, [])

    guard = NetGuard(allow=(parse_network("127.0.0.2/32"),), resolver=dns)
    with FeedServer(host="127.0.0.2") as target, ProxyServer(auth=("ed", SECRET)) as proxy:
        target.put("/feed.xml", RSS)
        url = f"http://feeds.example:{target.port}/feed.xml"
        source = Source(key="s", name="s", url=url, proxy=proxy.url(scheme, "ed:${PROXY_PASSWORD}"))
        fetched = fetch(source, guard)
        assert fetched.status == 200 and b"Story one" in fetched.content
        assert proxy.targets == [f"127.0.0.2:{target.port}"]
        assert proxy.records[0]["user"] == "ed"
        (req,) = target.requests
        assert req.header("Host") == f"feeds.example:{target.port}"


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_a_proxy_is_no_way_around_the_network_guard(scheme: str) -> None:
    async def dns(host: str, port: int) -> list[str]:
        return {"intranet.example": ["10.1.2.3"]}.get(host, [])

    guard = NetGuard(allow=(parse_network("127.0.0.2/32"),), resolver=dns)
    with ProxyServer() as proxy:
        for url in ("http://intranet.example/feed", "http://169.254.169.254/latest/"):
            with pytest.raises(errors.RefusedError) as info:
                fetch(Source(key="s", name="s", url=url, proxy=proxy.url(scheme)), guard)
            assert info.value.kind == "refused"
        assert proxy.records == []


def test_secrets_show_nowhere(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A proxy that refuses its password, one that is not there, and a header: the secret
    is in no message, status, log line, database row or `ingest check` output."""
    from ingest.cli.main import main
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    monkeypatch.setenv("PROXY_PASSWORD", SECRET)
    with FeedServer() as target, ProxyServer(auth=("ed", "other")) as proxy:
        target.put("/feed.xml", RSS)
        dead = FeedServer().start()
        dead_port = dead.port
        dead.stop()  # nothing listens there now
        text = (
            "sources:\n"
            f"  - {{key: refused, name: R, url: '{target.url('/feed.xml')}',"
            f" proxy: 'http://ed:${{PROXY_PASSWORD}}@127.0.0.1:{proxy.port}'}}\n"
            f"  - {{key: gone, name: G, url: '{target.url('/feed.xml')}',"
            f" proxy: 'socks5://ed:${{PROXY_PASSWORD}}@127.0.0.1:{dead_port}'}}\n"
            f"  - {{key: cookie, name: C, url: '{target.url('/feed.xml')}',"
            " headers: {Cookie: 'x=${PROXY_PASSWORD}'}}\n"
        )
        path = tmp_path / "sources.yaml"
        path.write_text(text)
        sources = parse_config(text, str(path)).sources
        caplog.set_level(logging.DEBUG)
        with Store.open(sqlite_url) as store:
            reports = {r.source_key: r for r in run_pipeline(sources, store, Settings())}
            status = store.status()
        assert proxy.records == []  # 407: the wrong password took the poll nowhere
    assert not reports["refused"].ok and not reports["gone"].ok and reports["cookie"].ok
    assert "407" in (reports["refused"].error or "")
    assert main(["check", "--sources", str(path)]) == 0
    assert main(["status", "--db", sqlite_url]) == 0
    out = capsys.readouterr()
    every = [str(reports), str(status), caplog.text, out.out, out.err]
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        for table in ("sources", "fetches"):
            every.append(str(db.execute(f"select * from {table}").fetchall()))
    assert all(SECRET not in text for text in every)
    assert "${PROXY_PASSWORD}" in every[-2]  # the template is what the database keeps
