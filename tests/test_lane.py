"""The direct lane (ingest.stages.lane) against httpx's layers: the same polls, byte for byte.

One job: prove that a poll sent on the production client's direct lane is the
poll httpx's client sends over the same aiohttp transport (`make_client(...,
lane=False)`): a raw loopback server records every request head exactly as it
arrived (names, case, order, values) and answers from a script of raw
responses (repeated headers, non-ASCII header bytes, cookies, gzip, redirects,
challenges, odd reason phrases, cut connections); each scenario runs once per
lane on a fresh client, and the heads received and what each poll came to
(every `Fetched` field but the time taken, or the error's type and message)
must be equal.  A spy on `DirectLane.get` shows the lane really sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from ingest import errors
from ingest.model import Fetched, FetchState, Settings, Source
from ingest.stages import lane as lane_module
from ingest.stages.fetch import Fetcher
from ingest.stages.transport import make_client
from proxyserver import recv_head

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
# the request head -> the raw response; None: the connection is cut instead, and one that
# ends in CUT is cut right after it
Answer = Callable[[bytes], bytes | None]
CUT = b"\0cut"


def _response(status: str, headers: list[tuple[str, bytes | str]], body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status}".encode()]
    for name, value in headers:
        head.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    head.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _feed(*extra: tuple[str, bytes | str], body: bytes = FEED) -> Answer:
    return lambda _head: _response(
        "200 OK", [("Content-Type", "application/rss+xml"), *extra], body
    )


def _conditional(head: bytes) -> bytes:
    if b'if-none-match: "v1"' in head.lower():
        return _response("304 Not Modified", [("ETag", '"v1"')])
    return _response(
        "200 OK", [("ETag", '"v1"'), ("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")], FEED
    )


def _utf8_etag(head: bytes) -> bytes:
    if 'if-none-match: "café"'.encode() in head.lower():  # the bytes it was sent as
        return _response("304 Not Modified", [])
    return _response("200 OK", [("ETag", '"café"'.encode())], FEED)


def _cookie_check(head: bytes) -> bytes:
    seen = [line for line in head.split(b"\r\n") if line.lower().startswith(b"cookie:")]
    return _response("200 OK", [("X-Seen-Cookie", b" | ".join(seen) or b"none")], FEED)


SCRIPT: dict[str, Answer] = {
    "/plain": _feed(("ETag", '"e1"'), ("Cache-Control", "max-age=60")),
    "/conditional": _conditional,
    "/gzip": lambda _h: _response(
        "200 OK", [("Content-Type", "text/xml"), ("Content-Encoding", "gzip")], gzip.compress(FEED)
    ),
    "/repeated": _feed(
        ("Link", '<https://hub.example/>; rel="hub"'),
        ("Link", '<https://example.org/feed>; rel="self"'),
        ("Cache-Control", "public"),
        ("Cache-Control", "max-age=120"),
        ("ETag", '"x"'),
    ),
    "/latin1": _feed(("ETag", b'"caf\xe9"'), ("Last-Modified", b"Mon, 07 Dec 2026 10:00:00 GMT")),
    "/utf8": _utf8_etag,
    "/cookie-set": lambda _h: _response(
        "302 Found", [("Location", "/cookie-check"), ("Set-Cookie", "sid=s1; Path=/")]
    ),
    "/cookie-check": _cookie_check,
    "/cookie-feed": _feed(("Set-Cookie", "sid=s2; Path=/"), body=FEED * 20_000),
    "/hop1": lambda _h: _response("301 Moved Permanently", [("Location", "/hop2")]),
    "/hop2": lambda _h: _response("308 Permanent Redirect", [("Location", "/plain")]),
    "/loop": lambda _h: _response("302 Found", [("Location", "/loop")]),
    "/challenge": lambda _h: _response(
        "503 Service Unavailable",
        [("cf-mitigated", "challenge"), ("Content-Type", "text/html")],
        b"<!DOCTYPE html><html><title>Just a moment...</title></html>",
    ),
    "/busy": lambda _h: _response("429 Too Many Requests", [("Retry-After", "120")]),
    "/odd-reason": lambda _h: _response("299 ", [], FEED),
    "/teapot": lambda _h: _response("418 Short And Stout", []),
    "/html": _feed(("Content-Type", "text/html; charset=utf-8"), body=b"<html><p>hi</p></html>"),
    "/cut": lambda _h: None,
    "/short": lambda _h: _response("200 OK", [], FEED)[:-10] + CUT,
}


class RawServer:
    """Answers from `SCRIPT` and keeps every request head as the bytes that arrived."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(ConnectionError):  # a client that hangs up mid-answer
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                got = recv_head(conn, data)
                if got is None:
                    return
                head, data = got
                self.heads.append(head)
                path = head.split(b" ", 2)[1].decode()
                answer = SCRIPT[path](head)
                if answer is None:
                    return  # closed without a word
                conn.sendall(answer.removesuffix(CUT))
                if answer.endswith(CUT):
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    s = RawServer()
    yield s
    s.close()


def _outcome(result: Fetched | errors.FetchError) -> Any:
    if isinstance(result, Fetched):
        return replace(result, elapsed_ms=0)
    return (type(result).__name__, str(result))


def _polls(
    server: RawServer, paths: list[str], *, lane: bool, **source: Any
) -> tuple[list[bytes], list[Any]]:
    """Each path polled in turn on one fresh client (its cookie jar shared), twice over: the
    second time with the first poll's state.  The heads the server got, and the outcomes."""

    async def go() -> list[Any]:
        out: list[Any] = []
        settings = Settings()
        async with make_client(settings, lane=lane) as client:
            fetcher = Fetcher(client, settings)
            for path in paths:
                state = FetchState()
                for _ in range(2):
                    src = Source(key="k", name="k", url=server.url(path), **source)
                    try:
                        fetched = await fetcher.fetch(src, state)
                    except errors.FetchError as e:
                        out.append(_outcome(e))
                        break
                    out.append(_outcome(fetched))
                    state = fetched.state
        return out

    server.heads.clear()
    outcomes = asyncio.run(go())
    return list(server.heads), outcomes


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A spy on the lane: the URL of every hop it sent (it still sends them)."""
    calls: list[str] = []
    real = lane_module.DirectLane.get

    def spy(self: lane_module.DirectLane, url: Any, headers: dict[str, str]) -> Any:
        exchange = real(self, url, headers)
        if exchange is not None:
            calls.append(str(url))
        return exchange

    monkeypatch.setattr(lane_module.DirectLane, "get", spy)
    return calls


@pytest.mark.parametrize(
    "paths",
    [
        ["/plain", "/conditional"],
        ["/gzip", "/repeated"],
        ["/latin1", "/utf8"],
        ["/cookie-set", "/cookie-check", "/plain"],
        ["/hop1", "/loop"],
        ["/challenge", "/teapot", "/odd-reason"],
        ["/busy"],
        ["/html", "/cut", "/short"],
    ],
    ids=[
        "conditional",
        "encodings",
        "header-bytes",
        "cookies",
        "redirects",
        "refusals",
        "cooling",
        "faults",
    ],
)
def test_the_lane_sends_and_reads_what_httpx_does(
    server: RawServer, lane_calls: list[str], paths: list[str]
) -> None:
    heads, outcomes = _polls(server, paths, lane=True)
    assert lane_calls, "the production client's polls went through the lane"
    lane_calls.clear()
    assert _polls(server, paths, lane=False) == (heads, outcomes)
    assert not lane_calls  # lane=False: every request through httpx


def test_a_validator_that_is_not_ascii_goes_back_as_it_came(
    server: RawServer, lane_calls: list[str]
) -> None:
    heads, outcomes = _polls(server, ["/utf8"], lane=True)
    assert [o.status for o in outcomes] == [200, 304]  # before, httpx refused to send it
    assert outcomes[0].etag == '"café"'
    assert len(lane_calls) == 1  # the second poll's bytes went through httpx
    assert _polls(server, ["/utf8"], lane=False) == (heads, outcomes)


def test_a_source_s_own_headers_and_cookie_go_the_same_way(
    server: RawServer, lane_calls: list[str]
) -> None:
    own = (("User-Agent", "their-agent/1.0"), ("X-Token", "t0k"), ("Cookie", "pref=1"))
    paths = ["/cookie-set", "/cookie-check", "/conditional"]
    heads, outcomes = _polls(server, paths, lane=True, headers=own)
    assert lane_calls
    assert any(b"x-token: t0k" in h for h in heads)
    assert _polls(server, paths, lane=False, headers=own) == (heads, outcomes)


def test_a_header_filled_in_that_is_not_ascii_fails_the_poll_clearly(
    server: RawServer, lane_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANE_TOKEN", "Zoë\r\nX-Injected: 1")
    own = (("X-Token", "${LANE_TOKEN}"),)
    heads, outcomes = _polls(server, ["/plain"], lane=True, headers=own)
    assert heads == [] and not lane_calls  # nothing sent, either way
    assert outcomes == [("FetchError", outcomes[0][1])]
    assert "X-Token" in outcomes[0][1] and "Zo" not in outcomes[0][1]  # the value is a secret
    assert _polls(server, ["/plain"], lane=False, headers=own) == (heads, outcomes)


def test_a_refused_connection_reads_the_same(lane_calls: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused

        async def poll(lane: bool) -> Any:
            async with make_client(Settings(), lane=lane) as client:
                try:
                    await Fetcher(client).fetch(
                        Source(key="k", name="k", url=f"http://127.0.0.1:{port}/feed")
                    )
                except errors.FetchError as e:
                    return _outcome(e)
            raise AssertionError("the poll should have failed")

        through_lane = asyncio.run(poll(True))
        assert lane_calls
        assert through_lane == asyncio.run(poll(False))
        assert through_lane[0] == "NetworkError"


def test_the_guard_refuses_on_the_lane_as_through_httpx(
    monkeypatch: pytest.MonkeyPatch, server: RawServer, lane_calls: list[str]
) -> None:
    monkeypatch.delenv("INGEST_ALLOW_NETWORKS", raising=False)  # loopback refused again
    heads, outcomes = _polls(server, ["/plain"], lane=True)
    assert lane_calls and heads == []
    assert outcomes[0][0] == "RefusedError"
    assert _polls(server, ["/plain"], lane=False) == (heads, outcomes)


def test_a_failure_while_reading_the_answer_s_cookies_lets_the_connection_go(
    server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one connection allowed, a second poll gets it only if the first gave it back."""

    def broken(*_args: Any) -> None:
        raise RuntimeError("cookie jar broke")

    monkeypatch.setattr(lane_module.DirectLane, "keep_cookies", broken)

    async def go() -> Fetched:
        settings = Settings(concurrency=1, per_host=1)
        async with make_client(settings) as client:
            fetcher = Fetcher(client, settings)
            with pytest.raises(RuntimeError, match="cookie jar broke"):
                await fetcher.fetch(Source(key="k", name="k", url=server.url("/cookie-feed")))
            plain = Source(key="p", name="p", url=server.url("/plain"), timeout=3)
            return await fetcher.fetch(plain)

    assert asyncio.run(go()).status == 200
