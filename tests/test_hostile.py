"""Hostile documents: no entity expansion, no external entities, and a bounded parse.

XML: billion laughs, quadratic blow-up, XXE to a secret file and to file:///etc/passwd,
and external DTDs, through every reader that can run on a fetched body: feeds
(feedparser), pages (bs4 over lxml's HTML parser), feed discovery on HTML pages (the same
stack) and the whole parse-and-normalize job; JSON Feed has no entities.  (The feedparser
billion-laughs and XXE cases of tests/test_parse.py are not repeated here.)

Bounds: a gzip bomb stops at the body cap after decompression; entries kept per poll
(`max_entries`, the newest); a feed with vastly more entries is trimmed before parsing;
title and summary lengths; and the parse workers' budgets -- a CPU timer for Python code,
an address-space limit for memory, and the kernel's CPU limit for a job stuck in C, after
which `ParsePool` replaces its workers and only the culprit fails.

Every test that could reach out is run with sockets and urllib patched to refuse.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import socket
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import astuple, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedserver import FeedServer
from ingest import errors
from ingest.model import Fetched, RawEntry, Settings, Source
from ingest.runtime.parsing import jobs as workers
from ingest.runtime.parsing.pool import ParsePool
from ingest.stages.bounds import ParseLimits, newest, trim_entries
from ingest.stages.fetch import Fetcher
from ingest.stages.normalize import MAX_SUMMARY, MAX_TITLE, normalize
from ingest.stages.parse.feed import parse_feed
from ingest.stages.parse.page import parse_page
from ingest.stages.transport import make_client

MIB = 1024 * 1024
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
FEED = Source(key="f", name="F", url="https://a.example/feed")
PAGE = Source(
    key="p",
    name="P",
    url="https://a.example/news/",
    kind="page",
    select=(("item", "li"), ("title", "a"), ("link", "a@href"), ("summary", "p")),
)

LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
LAUGHS_SUBSET = '[<!ENTITY lol0 "lol">' + LAUGHS + "]"
BIG = "x" * 100_000
QUADRATIC_SUBSET = f'[<!ENTITY a "{BIG}">]'
QUADRATIC_REFS = "&a;" * 20_000  # 2 GB if expanded


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """No reader may open a socket or a URL (the loopback feed server is not used here
    except by the gzip-bomb test, which connects to 127.0.0.1 only)."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if not isinstance(address, tuple) or str(address[0]).startswith("127."):
            return real_connect(self, address)  # a Unix socket (forkserver) or loopback
        attempts.append(address)
        raise OSError(f"network access attempted: {address}")

    def urlopen(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("urlopen attempted")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    yield attempts
    assert attempts == []


def all_text(entries: tuple[RawEntry, ...]) -> str:
    return " ".join(str(v) for e in entries for v in astuple(e))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-4711\n")
    return path


def leaked(text: str) -> bool:
    return "TOP-SECRET" in text or "root:" in text or "lollol" in text or "xxxxxxxxxx" in text


# -- XML through the feed reader ---------------------------------------------------


def _rss(subset: str, title: str, summary: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss {subset}><rss version="2.0"><channel><title>t</title>'
        f"<item><title>{title}</title><description>{summary}</description>"
        "<link>https://a.example/1</link></item></channel></rss>"
    ).encode()


def _atom(subset: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE feed {subset}>'
        f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>urn:1</id>'
        f'<title>{title}</title><link href="https://a.example/1"/></entry></feed>'
    ).encode()


@pytest.mark.parametrize("shape", ["rss", "atom", "multiline-rss"])
def test_quadratic_blowup_is_not_expanded_by_the_feed_reader(shape: str) -> None:
    if shape == "atom":
        doc = _atom(QUADRATIC_SUBSET, QUADRATIC_REFS)
    else:
        doc = _rss(QUADRATIC_SUBSET, "Title", QUADRATIC_REFS)
        if shape == "multiline-rss":
            doc = doc.replace(b"<!ENTITY", b"\n  <!ENTITY")
    started = time.process_time()
    entries = parse_feed(doc, FEED.url)
    assert time.process_time() - started < 2.0
    assert [e.link for e in entries] == ["https://a.example/1"]
    assert not leaked(all_text(entries))
    assert sum(len(str(v)) for e in entries for v in astuple(e)) < 200_000


def test_external_dtds_and_parameter_entities_are_never_read(secret: Path) -> None:
    uri = secret.as_uri()
    for subset in (
        f'SYSTEM "{uri}"',
        'SYSTEM "file:///etc/passwd"',
        'PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://192.0.2.1/evil.dtd"',
        f'[<!ENTITY % ext SYSTEM "{uri}"> %ext;]',
        '[<!ENTITY % ext SYSTEM "http://192.0.2.1/x.dtd"> %ext;]',
        f'SYSTEM "{uri}" [<!ENTITY xxe SYSTEM "{uri}">]',
    ):
        for doc in (_rss(subset, "t&xxe;", "&xxe;"), _atom(subset, "t&xxe;")):
            entries = parse_feed(doc, FEED.url)
            assert not leaked(all_text(entries)), subset
            assert [e.link for e in entries] == ["https://a.example/1"]


def test_hostile_xml_through_the_whole_parse_job(secret: Path) -> None:
    """What the worker runs (parse + normalize + filters): nothing expanded is stored, and
    references to the declared entities are dropped, so no story is titled `&lol9;`: an
    entry that was nothing but such references has no text left and is not stored."""
    for doc, titles in (
        (_rss(LAUGHS_SUBSET, "&lol9;", "&lol9;&lol9;"), []),
        (_rss(QUADRATIC_SUBSET, QUADRATIC_REFS, QUADRATIC_REFS), []),
        (_rss(LAUGHS_SUBSET, "Board &amp; &lol9;papers", "&lol9;"), ["Board & papers"]),
        (_rss(f'[<!ENTITY xxe SYSTEM "{secret.as_uri()}">]', "a&xxe;", "&xxe;"), ["a"]),
        (_rss('[<!ENTITY xxe SYSTEM "file:///etc/passwd">]', "a&xxe;", "&xxe;"), ["a"]),
    ):
        fetched = Fetched(FEED.key, FEED.url, FEED.url, 200, content=doc)
        kind, items = workers.parse_job(FEED, fetched, NOW, None, ParseLimits())
        assert kind == "ok"
        assert [item.title for item in items] == titles
        for item in items:
            assert not leaked(item.title + item.summary)
            assert len(item.title) <= MAX_TITLE and len(item.summary) <= MAX_SUMMARY


# -- XML-ish input through the page reader (bs4 over lxml's HTML parser) ------------


def _page(doctype: str, title: str, summary: str) -> bytes:
    return (
        f"{doctype}<html><body><ul><li><a href='/1'>{title}</a><p>{summary}</p></li></ul>"
        "</body></html>"
    ).encode()


@pytest.mark.parametrize("prolog", ["", '<?xml version="1.0"?>'])
def test_page_reader_expands_no_entities(prolog: str, secret: Path) -> None:
    uri = secret.as_uri()
    cases = [
        (f"<!DOCTYPE html {LAUGHS_SUBSET}>", "&lol9;", "&lol9;&lol9;"),
        (f"<!DOCTYPE html {QUADRATIC_SUBSET}>", QUADRATIC_REFS, QUADRATIC_REFS),
        (f'<!DOCTYPE html [<!ENTITY xxe SYSTEM "{uri}">]>', "t&xxe;", "&xxe;"),
        ('<!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "t&xxe;", "&xxe;"),
        (f'<!DOCTYPE html SYSTEM "{uri}">', "t", "&xxe;"),
        ('<!DOCTYPE html PUBLIC "-//x//y" "http://192.0.2.1/evil.dtd">', "t", "s"),
        (f'<!DOCTYPE html [<!ENTITY % p SYSTEM "{uri}"> %p;]>', "t", "s"),
    ]
    for doctype, title, summary in cases:
        started = time.process_time()
        entries = parse_page(PAGE, prolog.encode() + _page(doctype, title, summary), PAGE.url)
        assert time.process_time() - started < 2.0
        assert [e.link for e in entries] == ["https://a.example/1"]
        assert not leaked(all_text(entries)), doctype
        for item in normalize(PAGE, PAGE.url, entries, NOW):
            assert not leaked(item.title + item.summary)


def test_feed_discovery_expands_no_entities(secret: Path) -> None:
    discover = pytest.importorskip("ingest.stages.parse.discover")
    head = (
        '<link rel="alternate" type="application/rss+xml" href="/feed&lol9;">'
        '<link rel="alternate" type="application/rss+xml" href="/x&xxe;">'
    )
    doc = (
        f'<!DOCTYPE html [<!ENTITY lol0 "lol">{LAUGHS}<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
        f"<html><head>{head}</head><body>{QUADRATIC_REFS}</body></html>"
    ).encode()
    started = time.process_time()
    links = discover.find_feed_links(doc, "https://a.example/")
    assert time.process_time() - started < 2.0
    assert not leaked(" ".join(links))


# -- bounded: body, entries, lengths ---------------------------------------------------


def test_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * (64 * MIB), compresslevel=9)  # ~64 KB on the wire
    feed_server.put("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"}, gzip=False, etag=False)

    async def go() -> None:
        async with make_client(Settings()) as client:
            source = Source(key="b", name="b", url=feed_server.url("/bomb.xml"), max_body=MIB)
            await Fetcher(client).fetch(source)

    started = time.perf_counter()
    with pytest.raises(errors.TooLargeError, match=f"passed the {MIB}-byte cap"):
        asyncio.run(go())
    assert time.perf_counter() - started < 5
    assert feed_server.last("/bomb.xml").status == 200


def _entries(n: int, *, newest_first: bool = True, dated: bool = True) -> str:
    order = range(n) if newest_first else reversed(range(n))
    items = []
    for i in order:  # entry i is i hours old
        when = (NOW - timedelta(hours=i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        date = f"<pubDate>{when}</pubDate>" if dated else ""
        items.append(
            f"<item><title>Story {i}</title><link>https://a.example/{i}</link>{date}</item>"
        )
    return "".join(items)


def _feed(n: int, **kw: Any) -> bytes:
    body = _entries(n, **kw)
    return f'<rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


@pytest.mark.parametrize("newest_first", [True, False])
def test_max_entries_keeps_the_newest(newest_first: bool) -> None:
    doc = _feed(30, newest_first=newest_first)
    fetched = Fetched(FEED.key, FEED.url, FEED.url, 200, content=doc)
    kind, items = workers.parse_job(FEED, fetched, NOW, None, ParseLimits(max_entries=5))
    assert kind == "ok"
    assert sorted(i.title for i in items) == [f"Story {i}" for i in range(5)]


def test_undated_entries_keep_document_order() -> None:
    entries = tuple(RawEntry(title=f"e{i}") for i in range(10))
    assert [e.title for e in newest(entries, 3)] == ["e0", "e1", "e2"]
    dated = replace(entries[9], published=NOW)
    mixed = (*entries[:9], dated)
    assert [e.title for e in newest(mixed, 3)] == ["e0", "e1", "e9"]  # dated first, doc order


def test_trim_entries_keeps_head_first_and_last_entries_and_tail() -> None:
    doc = _feed(100)
    assert trim_entries(doc, 50) is doc  # at most 2 x keep: untouched
    cut = trim_entries(doc, 10)
    entries = parse_feed(cut, FEED.url)
    titles = [e.title for e in entries]
    assert titles == [f"Story {i}" for i in (*range(10), *range(90, 100))]
    assert cut.startswith(b'<rss version="2.0"><channel><title>t</title>')
    assert cut.endswith(b"</channel></rss>")
    # atom, prefixed RDF items
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom">'
        + b"".join(b"<entry><id>%d</id></entry>" % i for i in range(30))
        + b"</feed>"
    )
    assert trim_entries(atom, 5).count(b"<entry>") == 10
    rdf = b"<rdf:RDF>" + b"<rss:item about='x'/>" * 30 + b"</rdf:RDF>"
    assert trim_entries(rdf, 5).count(b"<rss:item") == 10
    assert trim_entries(b"<items>" * 50, 5) == b"<items>" * 50


def test_a_feed_with_a_huge_number_of_entries_is_parsed_in_bounded_time() -> None:
    """~8 MiB, 200,000 entries: parsing all would take ~8 s of CPU and ~250 MB; trimmed
    to 2 x max_entries before the parse, it takes a fraction of a second."""
    doc = b'<rss version="2.0"><channel><title>t</title>' + b"".join(
        b"<item><title>x%d</title><link>https://a.example/%d</link></item>" % (i, i)
        for i in range(200_000)
    )
    assert len(doc) > 8 * MIB
    fetched = Fetched(FEED.key, FEED.url, FEED.url, 200, content=doc)
    started = time.process_time()
    kind, items = workers.parse_job(FEED, fetched, NOW, None, ParseLimits(max_entries=200))
    assert time.process_time() - started < 3.0
    assert kind == "ok" and len(items) == 200
    assert {i.title for i in items} == {f"x{i}" for i in range(200)}  # undated: the first


def test_title_and_summary_lengths_are_capped() -> None:
    raw = RawEntry(
        title="word " * 10_000,
        link="https://a.example/1",
        summary="<p>" + "text " * 100_000 + "</p>",
    )
    (item,) = normalize(FEED, FEED.url, [raw], NOW)
    assert len(item.title) <= MAX_TITLE and len(item.summary) <= MAX_SUMMARY
    # escaping grows text: a summary of nothing but "<" still fits
    (item,) = normalize(FEED, FEED.url, [replace(raw, summary="&lt;" * 200_000)], NOW)
    assert len(item.summary) <= MAX_SUMMARY


# -- the workers' budgets ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    p = workers.start_forkserver_pool(2)
    yield p
    p.shutdown(wait=True, cancel_futures=True)


def _costly_feed(entries: int = 300_000) -> Fetched:
    doc = (
        b'<rss version="2.0"><channel><title>t</title>' + b"<item><title>x</title></item>" * entries
    )
    return Fetched(FEED.key, FEED.url, FEED.url, 200, content=doc)


def test_cpu_budget_stops_a_costly_parse_and_the_worker_lives_on(
    pool: ParsePool,
) -> None:
    limits = ParseLimits(max_entries=1_000_000, cpu_seconds=0.5)  # no trimming: parse it all
    started = time.perf_counter()
    kind, message = pool.submit(workers.parse_job, FEED, _costly_feed(), NOW, None, limits).result(
        timeout=30
    )
    assert kind == "parse"
    assert message.startswith("parsing stopped after 0.5s of CPU")
    assert "settings: parse_cpu" in message
    assert time.perf_counter() - started < 5
    assert pool.replaced == 0
    assert pool.submit(math.factorial, 5).result(timeout=10) == 120


def test_memory_budget_stops_a_greedy_parse_and_the_worker_lives_on(
    pool: ParsePool,
) -> None:
    limits = ParseLimits(max_entries=1_000_000, cpu_seconds=30, memory_bytes=16 * MIB)
    kind, message = pool.submit(workers.parse_job, FEED, _costly_feed(), NOW, None, limits).result(
        timeout=60
    )
    assert kind == "parse"
    assert message.startswith("parsing stopped: the document needs more than 16 MiB")
    assert pool.replaced == 0
    ok = Fetched(FEED.key, FEED.url, FEED.url, 200, content=_feed(5))
    assert pool.submit(workers.parse_job, FEED, ok, NOW, None, limits).result(10)[0] == "ok"


def test_a_pushed_body_is_read_under_the_same_budgets() -> None:
    """`ingest serve` reads what a WebSub hub pushes in a parse worker of its own,
    under the parse budgets: a costly body fails as a parse error, and the worker
    reads the next push."""
    from ingest.runtime.push import PushParsing

    parsing = PushParsing()
    try:
        limits = ParseLimits(max_entries=1_000_000, cpu_seconds=0.5)
        with pytest.raises(errors.ParseError, match=r"parsing stopped after 0\.5s of CPU"):
            parsing.sift(FEED, _costly_feed(), NOW, NOW - timedelta(days=3650), limits)
        ok = Fetched(FEED.key, FEED.url, FEED.url, 200, content=_feed(5))
        items, why = parsing.sift(FEED, ok, NOW, NOW - timedelta(days=3650), limits)
        assert len(items) == 5 and why is None
    finally:
        parsing.close()


@pytest.mark.slow
def test_a_job_stuck_in_c_is_killed_and_only_it_fails() -> None:
    """`sum(range(10**10))` runs in C for minutes and never lets the CPU timer's handler
    run: the kernel's RLIMIT_CPU kills the worker.  The job that was running beside it
    and the jobs still queued all complete; the pool carries on with fresh workers."""
    pool = workers.start_forkserver_pool(2)
    pool.limits = ParseLimits(cpu_seconds=0.25)
    try:
        assert pool.submit(math.factorial, 3).result(timeout=30) == 6  # workers up
        started = time.perf_counter()
        culprit = pool.submit(sum, range(10**10))
        bystander: Future[None] = pool.submit(time.sleep, 2.5)  # running when it dies
        queued = [pool.submit(math.factorial, n) for n in range(8)]
        with pytest.raises(errors.ParseError, match="worker process reading this document"):
            culprit.result(timeout=60)
        assert bystander.result(timeout=60) is None
        assert [f.result(timeout=60) for f in queued] == [math.factorial(n) for n in range(8)]
        assert pool.replaced == 1
        assert pool.submit(math.factorial, 4).result(timeout=30) == 24
        assert time.perf_counter() - started < 20
    finally:
        pool.shutdown(wait=True)
