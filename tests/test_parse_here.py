"""Where a poll's document is read: in the polling process, or in the budgeted pool.

A document of at most `QUICK_MAX` bytes that a reader of linear cost takes
(well-formed RSS or Atom, a JSON Feed) is read in a thread of the polling
process; everything else (feedparser's recovery of malformed XML, pages,
larger documents) goes to the parse pool, under the `parse_cpu` and
`parse_memory` budgets, and the pool is started only when the first such
document arrives.  Both give the same answer (`parse_job`'s); a real
pipeline over loopback on a real database shows which path each took.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedserver import FeedServer
from ingest.model import Fetched, Settings, Source
from ingest.runtime.parsing import jobs
from ingest.stages.bounds import ParseLimits

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FEED = Source(key="f", name="f", kind="feed", url="http://127.0.0.1/f.xml")
LIMITS = ParseLimits()
DATA = Path(__file__).parent / "data"


def _rss(items: int, extra: str = "") -> bytes:
    body = "".join(
        f"<item><title>Story {i}{extra}</title><link>http://a.example/{i}</link>"
        f"<pubDate>Mon, 07 Dec 2026 08:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>&lt;p&gt;text {i}&lt;/p&gt;</description></item>"
        for i in range(items)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    return f"{head}{body}</channel></rss>".encode()


def _fetched(content: bytes, content_type: str = "application/rss+xml") -> Fetched:
    return Fetched(FEED.key, FEED.url, FEED.url, 200, content=content, content_type=content_type)


def _both(source: Source, fetched: Fetched) -> tuple[object, object]:
    not_before = NOW - timedelta(days=3650)
    here = jobs.sift_here(source, fetched, NOW, not_before, LIMITS)
    pooled = jobs.parse_job(source, fetched, NOW, not_before, LIMITS, True)
    return here, pooled


def test_a_small_well_formed_feed_is_read_here_with_the_pools_answer() -> None:
    here, pooled = _both(FEED, _fetched(_rss(30)))
    assert here is not None and here[0] == "ok"
    assert here == pooled
    assert len(here[1][0]) == 30


def test_a_json_feed_is_read_here() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "j",
        "items": [{"id": "1", "url": "http://a.example/1", "title": "One"}],
    }
    here, pooled = _both(FEED, _fetched(json.dumps(doc).encode(), "application/feed+json"))
    assert here == pooled and here is not None and here[0] == "ok"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(_rss(3, extra=" & more"), id="malformed: feedparser recovers it"),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]>' + _rss(3)[21:],
            id="entity declared",
        ),
        pytest.param(_rss(10_000), id="larger than QUICK_MAX"),
    ],
)
def test_documents_the_fast_reader_does_not_take_go_to_the_pool(content: bytes) -> None:
    fetched = _fetched(content)
    assert jobs.sift_here(FEED, fetched, NOW, None, LIMITS) is None
    kind, _ = jobs.parse_job(FEED, fetched, NOW, None, LIMITS, True)
    assert kind == "ok"  # the pool reads it all the same


def test_the_size_gate_is_quick_max() -> None:
    small = _rss(30)
    padded = small.replace(
        b"<title>t</title>",
        b"<title>t</title><!--" + b"x" * (jobs.QUICK_MAX - len(small) - 7) + b"-->",
    )
    assert len(padded) == jobs.QUICK_MAX
    assert jobs.sift_here(FEED, _fetched(padded), NOW, None, LIMITS) is not None
    over = padded.replace(b"<!--", b"<!-- ")
    assert jobs.sift_here(FEED, _fetched(over), NOW, None, LIMITS) is None


def test_a_source_with_rules_is_read_in_the_pool() -> None:
    """An editor's regular expression can backtrack: only the pool's CPU budget bounds it."""
    from ingest.model import Rule

    ruled = Source(
        key="r",
        name="r",
        kind="feed",
        url=FEED.url,
        rules=(Rule(action="drop", patterns=(("title", "^(a+)+$"),)),),
    )
    assert jobs.sift_here(ruled, _fetched(_rss(3)), NOW, None, LIMITS) is None


def test_a_page_is_never_read_here() -> None:
    page = Source(key="p", name="p", kind="page", url="http://127.0.0.1/p.html")
    fetched = Fetched(
        "p",
        page.url,
        page.url,
        200,
        content=b"<html><body><a href='/x'>x</a></body></html>",
        content_type="text/html",
    )
    assert jobs.sift_here(page, fetched, NOW, None, LIMITS) is None


def test_a_failure_here_is_the_value_a_pool_would_give() -> None:
    not_a_feed = _fetched(b'{"hello": "world"}', "application/json")
    here, pooled = _both(FEED, not_a_feed)
    assert here == pooled
    assert here is not None and here[0] == "parse"


def test_the_pipeline_starts_its_pool_only_for_a_document_it_cannot_read_here(
    tmp_path: Path,
) -> None:
    from ingest.runtime.pipeline import Pipeline
    from ingest.stages.transport import make_client
    from ingest.store import Store

    settings = Settings(allow_networks=("127.0.0.0/8",))
    with FeedServer() as server, Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        server.put("/ok.xml", _rss(5).decode(), content_type="application/rss+xml")
        server.put(
            "/loose.xml", _rss(4, extra=" & co").decode(), content_type="application/rss+xml"
        )
        ok = Source(key="ok", name="ok", kind="feed", url=server.url("/ok.xml"))
        loose = Source(key="loose", name="loose", kind="feed", url=server.url("/loose.xml"))

        async def go() -> tuple[bool, bool, list[int]]:
            async with make_client(settings) as client, Pipeline(store, client, settings) as p:
                first = await p.run([ok])
                before = p.pool_started
                second = await p.run([loose])
                return before, p.pool_started, [r.new for r in first + second]

        before, after, new = asyncio.run(go())
    assert before is False  # the well-formed feed was read here
    assert after is True  # the malformed one needed feedparser, in the pool
    assert new == [5, 4]
