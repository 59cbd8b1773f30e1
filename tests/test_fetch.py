"""Tests of ingest.stages.fetch: make_client, Fetcher and parse_retry_after.

One job: show that a poll behaves politely and boundedly over real HTTP. Protocol behaviour
(conditional GET, gzip, redirects, error statuses, deadlines, body caps, resets, concurrency
limits) runs against the loopback ``feed_server`` (tests/feedserver.py) through
``make_client(Settings(...))`` -- the production aiohttp-backed transport -- and, where it
matters that the Fetcher itself does the work, through a plain ``httpx.AsyncHTTPTransport``
too. Assertions read what the server recorded (headers, bytes sent, in-flight peaks), not
client internals. ``httpx.MockTransport`` appears only in pure unit tests (exact redirect
URL sequences, a Location-less redirect, the injected clock).

Not tested here: parsing, scheduling, storage, the pipeline. No pytest-asyncio: each test
drives its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip as gziplib
import hashlib
import itertools
import re
import socket
import time
import zlib
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from feedserver import DEFAULT_CONTENT_TYPE, MIB, FeedServer, RequestRecord
from ingest import errors
from ingest.model import Fetched, FetchState, Settings, Source
from ingest.stages.fetch import Fetcher, parse_retry_after
from ingest.stages.transport import ACCEPT, make_client

T = TypeVar("T")

RSS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>t</title>\n'
    + "".join(
        f"<item><title>Story {i}</title><link>http://example.com/{i}</link></item>\n"
        for i in range(40)
    )
    + "</channel></rss>\n"
)
RSS2 = RSS.replace("Story 0<", "Story zero<")
# the production client (a plain GET on its direct lane, lane.py), the same client with every
# request through httpx's layers over aiohttp, and httpx's own transport
TRANSPORTS = ["aiohttp", "aiohttp-httpx", "httpx"]
GUARD = 8.0  # seconds any one test coroutine may run


# -- helpers ----------------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with a guard: a poll that ignores its deadline fails the test, never hangs."""

    async def guarded() -> T:
        async with asyncio.timeout(GUARD):
            return await coro

    return asyncio.run(guarded())


def new_client(settings: Settings, transport: str = "aiohttp") -> httpx.AsyncClient:
    """The production client ("aiohttp"), without its direct lane ("aiohttp-httpx"), or the
    same client over httpx's own transport ("httpx")."""
    if transport == "aiohttp":
        return make_client(settings)
    if transport == "aiohttp-httpx":
        return make_client(settings, lane=False)
    return make_client(settings, transport=httpx.AsyncHTTPTransport())


def src(url: str, key: str = "src", **kw: Any) -> Source:
    return Source(key=key, name=key, url=url, **kw)


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


async def fetch_seq(
    url: str,
    states: int = 1,
    *,
    settings: Settings | None = None,
    transport: str = "aiohttp",
    **source_kw: Any,
) -> list[Fetched]:
    """Poll ``url`` ``states`` times on one client, each poll with the previous `.state`."""
    settings = settings or Settings()
    out: list[Fetched] = []
    async with new_client(settings, transport) as client:
        fetcher = Fetcher(client, settings)
        state: FetchState | None = None
        for _ in range(states):
            fetched = await fetcher.fetch(src(url, **source_kw), state)
            out.append(fetched)
            state = fetched.state
    return out


def fetch1(url: str, **kw: Any) -> Fetched:
    return run(fetch_seq(url, **kw))[0]


def fetch_fails(exc: type[errors.FetchError], url: str, **kw: Any) -> errors.FetchError:
    with pytest.raises(exc) as info:
        fetch1(url, **kw)
    return info.value


async def poll_each(
    urls: list[str], transport: str = "aiohttp", **source_kw: Any
) -> list[Fetched | errors.FetchError]:
    """Poll each URL in turn on one client; a failed poll yields its FetchError."""
    out: list[Fetched | errors.FetchError] = []
    async with new_client(Settings(), transport) as client:
        fetcher = Fetcher(client)
        for url in urls:
            try:
                out.append(await fetcher.fetch(src(url, **source_kw)))
            except errors.FetchError as e:
                out.append(e)
    return out


def conditional(rec: RequestRecord) -> tuple[str | None, str | None]:
    return rec.header("if-none-match"), rec.header("if-modified-since")


def peak_overlap(records: Iterable[RequestRecord], hold: float | None = None) -> int:
    """Most requests being handled at once across ``records`` (from any servers).

    With `hold` (the delay the server keeps each request before answering),
    a request counts from when its head was read for `hold` seconds: time in
    which the client cannot have had its answer, so the count never exceeds
    what the client really had in flight.  (The server's own end stamp comes
    after the answer is written, and a client that already read it may have
    sent its next request by then: counting to it can show one too many.)
    """
    events: list[tuple[float, int]] = []
    for r in records:
        assert r.finished is not None
        events += [(r.time, 1), (r.time + hold if hold is not None else r.finished, -1)]
    now = peak = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        now += step
        peak = max(peak, now)
    return peak


@pytest.fixture
def other_server() -> Iterator[FeedServer]:
    """A second loopback server on another address, i.e. another "host"."""
    with FeedServer("127.0.0.2") as server:
        yield server


# -- first fetch, conditional GET, unchanged bodies --------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_first_fetch_returns_body_validators_and_sends_polite_headers(
    feed_server: FeedServer, transport: str
) -> None:
    res = feed_server.put("/feed.xml", RSS)
    url = feed_server.url("/feed.xml")
    f = fetch1(url, transport=transport)

    assert (f.status, f.content, f.url, f.final_url) == (200, RSS.encode(), url, url)
    assert f.source_key == "src"
    assert f.content_type == DEFAULT_CONTENT_TYPE
    assert res.etag and f.etag == res.etag
    assert res.last_modified and f.last_modified == res.last_modified
    assert f.body_hash == sha256(RSS)
    assert f.needs_parse and not f.not_modified and not f.unchanged
    assert f.moved_to is None and f.retry_after is None
    assert f.max_age == 300.0
    assert f.elapsed_ms >= 0
    assert f.state == FetchState(res.etag, res.last_modified, sha256(RSS))

    assert feed_server.wait_idle()
    (rec,) = feed_server.requests_for("/feed.xml")
    ua = rec.header("user-agent") or ""
    assert ua == Settings().user_agent
    assert "ingest/" in ua and re.search(r"https?://\S+", ua)
    assert rec.header("accept") == ACCEPT
    assert "gzip" in (rec.header("accept-encoding") or "")
    assert conditional(rec) == (None, None)
    # the server gzipped it (fewer bytes on the wire than the body) and we got it decoded
    assert 0 < rec.bytes_sent < len(RSS.encode()) // 2


def test_settings_user_agent_is_sent(feed_server: FeedServer) -> None:
    feed_server.put("/f", RSS)
    ua = "ingest/9.9 (+https://news.example/bot)"
    fetch1(feed_server.url("/f"), settings=Settings(user_agent=ua))
    assert feed_server.last("/f").header("user-agent") == ua


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("with_etag", [True, False], ids=["etag", "last-modified-only"])
def test_second_fetch_is_conditional_and_304_keeps_validators(
    feed_server: FeedServer, transport: str, with_etag: bool
) -> None:
    res = feed_server.put("/feed.xml", RSS, etag=with_etag)
    first, second = run(fetch_seq(feed_server.url("/feed.xml"), 2, transport=transport))

    assert first.status == 200 and first.content == RSS.encode()
    assert second.status == 304 and second.not_modified and not second.unchanged
    assert not second.needs_parse
    assert second.content == b""
    assert second.state == first.state
    assert (second.etag, second.last_modified) == (res.etag, res.last_modified)
    assert second.body_hash == sha256(RSS)
    assert second.max_age == 300.0

    assert feed_server.wait_idle()
    one, two = feed_server.requests_for("/feed.xml")
    assert conditional(one) == (None, None)
    assert conditional(two) == (res.etag, res.last_modified)
    assert (one.status, two.status) == (200, 304)
    assert two.bytes_sent == 0


@pytest.mark.parametrize(
    "put_kw",
    [{"etag": False, "last_modified": False}, {"ignore_conditional": True}],
    ids=["no-validators", "ignores-conditional"],
)
def test_same_bytes_again_is_unchanged(feed_server: FeedServer, put_kw: dict[str, Any]) -> None:
    feed_server.put("/feed.xml", RSS, **put_kw)
    first, second = run(fetch_seq(feed_server.url("/feed.xml"), 2))

    assert first.needs_parse and first.content == RSS.encode()
    assert second.status == 200
    assert second.unchanged and not second.not_modified and not second.needs_parse
    assert second.content == b""
    assert second.body_hash == first.body_hash == sha256(RSS)
    assert feed_server.wait_idle()
    assert [r.status for r in feed_server.requests_for("/feed.xml")] == [200, 200]


def test_changed_body_is_fetched_in_full(feed_server: FeedServer) -> None:
    url = feed_server.url("/feed.xml")
    old = feed_server.put("/feed.xml", RSS)

    async def scenario() -> tuple[Fetched, Fetched]:
        async with make_client(Settings()) as client:
            fetcher = Fetcher(client)
            first = await fetcher.fetch(src(url))
            feed_server.put("/feed.xml", RSS2)
            return first, await fetcher.fetch(src(url), first.state)

    first, second = run(scenario())
    new = feed_server.resource("/feed.xml")
    assert new is not None and new.etag != old.etag
    assert second.status == 200 and second.needs_parse
    assert second.content == RSS2.encode()
    assert second.body_hash == sha256(RSS2) != first.body_hash
    assert (second.etag, second.last_modified) == (new.etag, new.last_modified)
    assert feed_server.last("/feed.xml").header("if-none-match") == old.etag


# -- redirects ----------------------------------------------------------------------------


def test_302_chain_of_three_reaches_the_target(feed_server: FeedServer) -> None:
    feed_server.redirect("/r1", "/r2", status=302)
    feed_server.redirect("/r2", feed_server.url("/r3"), status=302)  # absolute works too
    feed_server.redirect("/r3", "feed.xml", status=302)  # relative to /r3
    feed_server.put("/feed.xml", RSS)
    f = fetch1(feed_server.url("/r1"))
    assert f.status == 200 and f.content == RSS.encode()
    assert f.url == feed_server.url("/r1")
    assert f.final_url == feed_server.url("/feed.xml")
    assert f.moved_to is None
    assert [feed_server.count(p) for p in ("/r1", "/r2", "/r3", "/feed.xml")] == [1, 1, 1, 1]


def test_first_hop_permanent_redirect_sets_moved_to(feed_server: FeedServer) -> None:
    for status in (301, 308):
        feed_server.redirect(f"/old{status}", "/new", status=status)
    feed_server.put("/new", RSS)
    got = run(poll_each([feed_server.url("/old301"), feed_server.url("/old308")]))
    for f in got:
        assert isinstance(f, Fetched) and f.status == 200 and f.content == RSS.encode()
        assert f.moved_to == f.final_url == feed_server.url("/new")


def test_moved_to_is_only_the_first_hop(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/b", status=302)
    feed_server.redirect("/b", "/c", status=301)
    feed_server.redirect("/x", "/y", status=301)
    feed_server.redirect("/y", "/c", status=302)
    feed_server.put("/c", RSS)
    temporary_first = fetch1(feed_server.url("/a"))
    assert temporary_first.moved_to is None
    assert temporary_first.final_url == feed_server.url("/c")
    permanent_first = fetch1(feed_server.url("/x"))
    assert permanent_first.moved_to == feed_server.url("/y")
    assert permanent_first.final_url == feed_server.url("/c")


def test_redirect_loop_raises(feed_server: FeedServer) -> None:
    for chain in (["/a", "/b", "/a"], ["/self", "/self"]):
        feed_server.clear()
        for here, there in itertools.pairwise(chain):
            feed_server.redirect(here, there, status=302)
        e = fetch_fails(errors.HTTPStatusError, feed_server.url(chain[0]))
        assert isinstance(e, errors.HTTPStatusError)
        assert "loop" in str(e)
        assert feed_server.count() == len(chain) - 1  # each URL asked once, then stopped


def test_max_redirects_is_enforced(feed_server: FeedServer) -> None:
    for i in range(4):
        feed_server.redirect(f"/c{i}", f"/c{i + 1}", status=302)
    feed_server.put("/c4", RSS)
    settings = Settings(max_redirects=2)
    ok = fetch1(feed_server.url("/c2"), settings=settings)  # exactly 2 redirects
    assert ok.status == 200 and ok.final_url == feed_server.url("/c4")
    feed_server.clear()

    e = fetch_fails(errors.HTTPStatusError, feed_server.url("/c1"), settings=settings)  # 3
    assert isinstance(e, errors.HTTPStatusError) and "redirects" in str(e)
    assert [r.path for r in feed_server.requests] == ["/c1", "/c2", "/c3"]


def test_redirect_to_non_http_scheme_is_refused(feed_server: FeedServer) -> None:
    refused = ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd"]
    # httpx itself rejects these (InvalidURL) before the Fetcher sees the Location
    unusable = ["javascript:alert(1)", "mailto:news@example.com"]
    locations = refused + unusable
    for i, location in enumerate(locations):
        feed_server.redirect(f"/evil{i}", location, status=302)
    urls = [feed_server.url(f"/evil{i}") for i in range(len(locations))]
    got = run(poll_each(urls))
    for location, url, e in zip(locations, urls, got, strict=True):
        assert isinstance(e, errors.FetchError), (location, e)
        assert e.url == url
        if location in refused:
            assert "refused" in str(e) and location in str(e)
        else:
            assert "URL" in str(e)
    assert feed_server.count() == len(locations)  # nothing followed


def test_validators_not_sent_to_the_target_of_a_temporary_redirect(
    feed_server: FeedServer,
) -> None:
    feed_server.redirect("/old", "/elsewhere", status=302)
    res = feed_server.put("/elsewhere", RSS)
    first, second = run(fetch_seq(feed_server.url("/old"), 2))
    assert first.etag == res.etag and first.last_modified == res.last_modified
    assert second.status == 200 and second.unchanged  # same bytes, but no 304 possible
    assert feed_server.wait_idle()
    assert [conditional(r) for r in feed_server.requests_for("/elsewhere")] == [
        (None, None),
        (None, None),
    ]


def test_validators_follow_a_permanent_redirect(feed_server: FeedServer) -> None:
    res = feed_server.put("/new", RSS)
    for status in (301, 308):
        feed_server.clear()
        feed_server.redirect("/old", "/new", status=status)
        first, second = run(fetch_seq(feed_server.url("/old"), 2))
        assert first.status == 200
        assert second.status == 304 and second.not_modified
        assert second.moved_to == feed_server.url("/new")
        assert feed_server.wait_idle()
        sent = [conditional(r) for r in feed_server.requests_for("/new")]
        assert sent == [(None, None), (res.etag, res.last_modified)], status


def _mock_client(handler: Any) -> httpx.AsyncClient:
    return make_client(Settings(), transport=httpx.MockTransport(handler))


def test_redirect_urls_resolve_exactly() -> None:
    """Unit test: the exact URL sequence for relative, protocol-relative and 303/307 hops."""
    hops = {
        "http://a.example/dir/feed": (301, "../other/feed?x=1"),
        "http://a.example/other/feed?x=1": (303, "//b.example/f"),
        "http://b.example/f": (307, "/final"),
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if str(request.url) in hops:
            status, location = hops[str(request.url)]
            return httpx.Response(status, headers={"Location": location})
        return httpx.Response(200, content=b"<rss/>", headers={"Content-Type": "text/xml"})

    async def go() -> Fetched:
        async with _mock_client(handler) as client:
            return await Fetcher(client).fetch(src("http://a.example/dir/feed"))

    f = run(go())
    assert seen == [*hops, "http://b.example/final"]
    assert f.final_url == "http://b.example/final"
    assert f.moved_to == "http://a.example/other/feed?x=1"
    assert f.content == b"<rss/>" and f.content_type == "text/xml"


def test_redirect_without_location_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302)

    async def go() -> Fetched:
        async with _mock_client(handler) as client:
            return await Fetcher(client).fetch(src("http://a.example/feed"))

    with pytest.raises(errors.HTTPStatusError) as info:
        run(go())
    assert info.value.status == 302 and "Location" in str(info.value)


def test_elapsed_ms_uses_the_injected_clock() -> None:
    ticks = iter([100.0, 100.25])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x")

    async def go() -> Fetched:
        async with _mock_client(handler) as client:
            return await Fetcher(client, clock=lambda: next(ticks)).fetch(src("http://a.example/"))

    assert run(go()).elapsed_ms == 250


# -- error statuses, Retry-After, Cache-Control -------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_statuses_raise(feed_server: FeedServer, transport: str) -> None:
    feed_server.error("/gone", 410, "gone")
    feed_server.error("/boom", 500, "oops")
    urls = [feed_server.url(p) for p in ("/missing", "/gone", "/boom")]  # /missing: 404
    got = run(poll_each(urls, transport))
    for url, status, e in zip(urls, [404, 410, 500], got, strict=True):
        assert isinstance(e, errors.HTTPStatusError), (status, e)
        assert e.status == status and str(status) in str(e)
        assert e.url == url and e.retry_after is None


def test_retry_after_is_carried(feed_server: FeedServer) -> None:
    feed_server.error("/busy", 429, "slow down", retry_after=120)
    feed_server.error("/down", 503, retry_after=120)
    feed_server.error("/later", 503, retry_after=email.utils.formatdate(time.time() + 60, True))
    # a Fetcher each: after a 429, or a 503 with Retry-After, one Fetcher sends nothing more
    # to that host for a while (test_politeness.py)
    got = [run(poll_each([feed_server.url(p)]))[0] for p in ("/busy", "/down", "/later")]
    assert [
        (e.status, e.retry_after) for e in got[:2] if isinstance(e, errors.HTTPStatusError)
    ] == [
        (429, 120.0),
        (503, 120.0),
    ]
    later = got[2]
    assert isinstance(later, errors.HTTPStatusError) and later.retry_after is not None
    assert 50.0 <= later.retry_after <= 61.0


def test_unusable_retry_after_is_ignored(feed_server: FeedServer) -> None:
    """A garbage header must not turn a 503 into a crash (the server sends it latin-1)."""
    values = ["soon", "\xb2", "-5", "1.5"]
    for i, value in enumerate(values):
        feed_server.error(f"/busy{i}", 503, retry_after=value)
    got = run(poll_each([feed_server.url(f"/busy{i}") for i in range(len(values))]))
    for value, e in zip(values, got, strict=True):
        assert isinstance(e, errors.HTTPStatusError), (value, e)
        assert e.status == 503 and e.retry_after is None, value


NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        ("Tue, 14 Nov 2023 22:15:20 GMT", 120.0),
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # RFC 850 form
        (email.utils.formatdate(NOW - 3600, usegmt=True), 0.0),  # in the past: go now
        ("garbage", None),
        ("1.5", None),
        ("-5", None),
        ("\xb2", None),  # str.isdigit() says yes, float() says no
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_defaults_to_the_wall_clock() -> None:
    got = parse_retry_after(email.utils.formatdate(time.time() + 100, usegmt=True))
    assert got is not None and 95.0 <= got <= 101.0


def test_cache_control_max_age(feed_server: FeedServer) -> None:
    cases: list[tuple[str | None, float | None]] = [
        ("max-age=300", 300.0),
        ("public, max-age=60, must-revalidate", 60.0),
        ('MAX-AGE="90"', 90.0),
        ("no-cache", None),
        ("s-maxage=10", None),
        (None, None),
    ]
    for i, (cache_control, _) in enumerate(cases):
        feed_server.put(f"/f{i}", RSS, cache_control=cache_control)
    got = run(poll_each([feed_server.url(f"/f{i}") for i in range(len(cases))]))
    assert [f.max_age if isinstance(f, Fetched) else f for f in got] == [m for _, m in cases]


# -- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hanging_server_hits_the_deadline(feed_server: FeedServer, transport: str) -> None:
    feed_server.put("/hang", RSS, hang=True)
    t0 = time.monotonic()
    e = fetch_fails(
        errors.FetchTimeoutError, feed_server.url("/hang"), timeout=0.5, transport=transport
    )
    took = time.monotonic() - t0
    assert 0.45 <= took < 2.0
    assert "0.5s" in str(e) and e.url == feed_server.url("/hang")


def test_trickle_is_cut_off_by_the_whole_request_deadline(feed_server: FeedServer) -> None:
    # a chunk every 0.1 s, 3 s in all: no single read waits long, the whole poll does
    feed_server.put("/drip", "x" * 3000, trickle=(3.0, 30), gzip=False)
    t0 = time.monotonic()
    fetch_fails(errors.FetchTimeoutError, feed_server.url("/drip"), timeout=0.5)
    took = time.monotonic() - t0
    assert 0.45 <= took < 2.0
    assert feed_server.wait_idle(timeout=3)
    rec = feed_server.last("/drip")
    assert rec.status == 200 and rec.outcome == "client_gone"
    assert 0 < rec.bytes_sent < 3000  # data was flowing when the deadline struck


def test_slow_answer_within_the_deadline_succeeds(feed_server: FeedServer) -> None:
    feed_server.put("/drip", RSS, trickle=(0.2, 2), gzip=False)
    f = fetch1(feed_server.url("/drip"), timeout=2.0)
    assert f.content == RSS.encode()
    assert f.elapsed_ms >= 150


# -- body cap -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_body_raises_and_stops_the_download(
    feed_server: FeedServer, chunked: bool, transport: str
) -> None:
    feed_server.put("/huge", huge_mib=256, chunked=chunked)
    e = fetch_fails(
        errors.TooLargeError, feed_server.url("/huge"), max_body=MIB, transport=transport
    )
    assert str(MIB) in str(e)
    assert feed_server.wait_idle(timeout=5)
    rec = feed_server.last("/huge")
    assert rec.outcome == "client_gone"
    assert rec.bytes_sent < 64 * MIB  # of 256 MiB: we hung up early


def test_gzip_body_is_capped_after_decompression(feed_server: FeedServer) -> None:
    bomb = "<rss>" + "<!-- padding -->" * (3 * MIB // 16) + "</rss>"  # ~3 MiB, gzips tiny
    feed_server.put("/bomb", bomb)
    fetch_fails(errors.TooLargeError, feed_server.url("/bomb"), max_body=MIB)
    assert feed_server.wait_idle()
    rec = feed_server.last("/bomb")
    assert rec.status == 200 and rec.bytes_sent < MIB // 10  # it went out gzipped


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_codings_are_undone_and_a_third_is_refused(
    feed_server: FeedServer, transport: str
) -> None:
    twice = gziplib.compress(zlib.compress(RSS.encode()))  # deflate applied first, then gzip
    feed_server.put("/twice", twice, headers={"Content-Encoding": "deflate, gzip"}, gzip=False)
    assert fetch1(feed_server.url("/twice"), transport=transport).content == RSS.encode()
    thrice = gziplib.compress(gziplib.compress(gziplib.compress(RSS.encode())))
    feed_server.put("/thrice", thrice, headers={"Content-Encoding": "gzip,gzip, gzip"}, gzip=False)
    e = fetch_fails(errors.FetchError, feed_server.url("/thrice"), transport=transport)
    assert "3 codings; at most 2" in str(e) and e.url == feed_server.url("/thrice")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_double_gzip_bomb_stops_at_the_cap(feed_server: FeedServer, transport: str) -> None:
    inner = gziplib.compress(bytes(256 * MIB), compresslevel=1)  # 256 MiB, ~1 MiB
    bomb = gziplib.compress(inner, compresslevel=9)  # a few KB on the wire
    feed_server.put("/bomb", bomb, headers={"Content-Encoding": "gzip, gzip"}, gzip=False)
    e = fetch_fails(
        errors.TooLargeError, feed_server.url("/bomb"), max_body=MIB, transport=transport
    )
    assert f"{MIB}-byte cap" in str(e)


def test_corrupt_gzip_is_a_fetch_error(feed_server: FeedServer) -> None:
    feed_server.put(
        "/bad", b"\x1f\x8b" + b"garbage" * 50, headers={"Content-Encoding": "gzip"}, gzip=False
    )
    e = fetch_fails(errors.FetchError, feed_server.url("/bad"))
    assert "not valid gzip data" in str(e)


def test_the_deadline_fires_inside_a_decoding_bomb(feed_server: FeedServer) -> None:
    """Millions of empty gzip members inside a gzip: no body ever comes out, the inner
    layer stays under the cap, and decoding them all would take many seconds of CPU; the
    decoding yields to the event loop between steps, so the poll's timeout ends it."""
    empty = gziplib.compress(b"", mtime=0)
    inner = empty * (60 * MIB // len(empty))
    feed_server.put(
        "/members", gziplib.compress(inner), headers={"Content-Encoding": "gzip, gzip"}, gzip=False
    )
    fetch_fails(
        errors.FetchTimeoutError, feed_server.url("/members"), max_body=64 * MIB, timeout=0.3
    )


def test_body_cap_boundary(feed_server: FeedServer) -> None:
    """max_body bytes pass and one more does not, however the body is framed or encoded."""
    variants = [(c, g) for c in (False, True) for g in (False, True)]
    urls = []
    for chunked, gzip in variants:
        for n in (1000, 1001):
            path = f"/{n}-{'chunked' if chunked else 'length'}-{'gzip' if gzip else 'identity'}"
            feed_server.put(path, "a" * n, chunked=chunked, gzip=gzip)
            urls.append(feed_server.url(path))
    got = run(poll_each(urls, max_body=1000))
    for url, fits, over in zip(urls[::2], got[::2], got[1::2], strict=True):
        assert isinstance(fits, Fetched) and fits.content == b"a" * 1000, url
        assert isinstance(over, errors.TooLargeError), (url, over)


# -- network failures -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_reset_is_a_network_error(feed_server: FeedServer, transport: str) -> None:
    feed_server.put("/reset", RSS, reset=True)
    url = feed_server.url("/reset")
    t0 = time.monotonic()
    e = fetch_fails(errors.NetworkError, url, transport=transport)
    assert time.monotonic() - t0 < 2.0
    assert f"127.0.0.1:{feed_server.port}" in str(e)
    assert e.url == url


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_a_network_error(transport: str) -> None:
    # bound but not listening: the kernel refuses connections, and nobody else can take it
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"http://127.0.0.1:{port}/feed.xml"
        e = fetch_fails(errors.NetworkError, url, transport=transport)
    assert "refused" in str(e).lower()
    assert f"127.0.0.1:{port}" in str(e)
    assert e.url == url


# -- concurrency limits ---------------------------------------------------------------------


async def fetch_all(settings: Settings, urls: list[str], transport: str = "aiohttp") -> None:
    async with new_client(settings, transport) as client:
        fetcher = Fetcher(client, settings)
        results = await asyncio.gather(
            *(fetcher.fetch(src(u, key=f"s{i}")) for i, u in enumerate(urls))
        )
    assert all(r.status == 200 for r in results)


@pytest.mark.parametrize(("transport", "delay"), [("aiohttp", 0.2), ("httpx", 0.1)])
def test_per_host_limit_on_one_host(feed_server: FeedServer, transport: str, delay: float) -> None:
    # over httpx's own pool (100 connections) only the Fetcher's semaphores can hold the line
    for i in range(10):
        feed_server.put(f"/f{i}", RSS, delay=delay)
    urls = [feed_server.url(f"/f{i}") for i in range(10)]
    run(fetch_all(Settings(concurrency=64, per_host=2), urls, transport))
    assert feed_server.wait_idle()
    assert feed_server.count() == 10
    assert peak_overlap(feed_server.requests, hold=delay) == 2  # never more, and used


def test_per_host_limit_applies_to_each_host(
    feed_server: FeedServer, other_server: FeedServer
) -> None:
    urls = []
    for server in (feed_server, other_server):
        for i in range(4):
            server.put(f"/f{i}", RSS, delay=0.2)
            urls.append(server.url(f"/f{i}"))
    run(fetch_all(Settings(concurrency=64, per_host=2), urls))
    assert feed_server.wait_idle() and other_server.wait_idle()
    assert max(peak_overlap(s.requests, hold=0.2) for s in (feed_server, other_server)) <= 2
    assert peak_overlap(feed_server.requests + other_server.requests, hold=0.2) >= 3  # both busy


def test_global_limit_across_hosts(feed_server: FeedServer, other_server: FeedServer) -> None:
    urls = []
    for i in range(4):
        for server in (feed_server, other_server):
            server.put(f"/f{i}", RSS, delay=0.15)
            urls.append(server.url(f"/f{i}"))
    run(fetch_all(Settings(concurrency=3, per_host=2), urls))
    assert feed_server.wait_idle() and other_server.wait_idle()
    assert feed_server.count() == other_server.count() == 4
    assert max(peak_overlap(s.requests, hold=0.15) for s in (feed_server, other_server)) <= 2
    assert peak_overlap(feed_server.requests + other_server.requests, hold=0.15) == 3


def test_busy_host_does_not_hold_global_slots(
    feed_server: FeedServer, other_server: FeedServer
) -> None:
    """Sources queued for a busy host must not sit on global slots another host could use."""
    for i in range(3):
        feed_server.put(f"/f{i}", RSS, delay=0.2)
    other_server.put("/g", RSS, delay=0.2)
    urls = [feed_server.url(f"/f{i}") for i in range(3)] + [other_server.url("/g")]
    run(fetch_all(Settings(concurrency=3, per_host=2), urls))
    assert feed_server.wait_idle() and other_server.wait_idle()
    first_busy = min(r.time for r in feed_server.requests)
    other = other_server.last("/g")
    # had the queued third request of the busy host held a global slot, the other host
    # would have waited for one of the first two to end: 0.2 s
    assert other.time - first_busy < 0.15, "the other host waited for the busy host's queue"
    assert peak_overlap(feed_server.requests + other_server.requests, hold=0.2) == 3


def test_a_malformed_redirect_location_is_a_fetch_error_not_a_crash(
    feed_server: FeedServer,
) -> None:
    feed_server.redirect("/odd", "http://[oops/feed", status=302)
    (e,) = run(poll_each([feed_server.url("/odd")]))
    assert isinstance(e, errors.FetchError), e
    assert "refused" in str(e) and "http://[oops/feed" in str(e)
