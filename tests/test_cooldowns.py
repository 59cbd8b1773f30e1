"""The pipeline's snapshot of the host cool-downs (cooldowns.py): one read for many polls.

The view is tested with a read function and a clock of the test's own; then a
real pipeline over loopback on a real database shows that unchanged polls of
many sources read the cool-downs once, and that a cool-down written by
another process (another `Store` on the same database) is obeyed once the
snapshot is older than its refresh.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedserver import FeedServer
from ingest.errors import StoreError
from ingest.model import NextPoll, PollRecord, Settings, Source, SourceReport
from ingest.runtime.cooldowns import Cooldowns, CooldownView
from ingest.stages.politeness import host_of

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)


class _Reads:
    """A read function that answers from `table`, counting its calls (and failing on
    demand); a clock the test moves."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[datetime, str]] = {}
        self.calls = 0
        self.fail = False
        self.t = 0.0

    async def __call__(self, now: datetime) -> Cooldowns:
        self.calls += 1
        await asyncio.sleep(0)  # a real read awaits a thread: let other polls ask meanwhile
        if self.fail:
            raise StoreError("database read failed: gone")
        return dict(self.table)

    def clock(self) -> float:
        return self.t


def test_one_read_answers_every_host_until_the_snapshot_is_stale() -> None:
    reads = _Reads()
    reads.table["a.example"] = (LATER, "HTTP 429 from a")
    view = CooldownView(reads, refresh=1.0, monotonic=reads.clock)

    async def go() -> None:
        assert await view.of("a.example", NOW) == (LATER, "HTTP 429 from a")
        assert await view.of("b.example", NOW) is None
        assert reads.calls == 1
        reads.table["b.example"] = (LATER, "HTTP 429 from b")  # another process, meanwhile
        reads.t = 0.5
        assert await view.of("b.example", NOW) is None  # not seen yet: the snapshot is fresh
        reads.t = 1.0
        assert await view.of("b.example", NOW) == (LATER, "HTTP 429 from b")
        assert reads.calls == 2

    asyncio.run(go())


def test_forget_reads_again_at_once() -> None:
    reads = _Reads()
    view = CooldownView(reads, refresh=60.0, monotonic=reads.clock)

    async def go() -> None:
        assert await view.of("a.example", NOW) is None
        reads.table["a.example"] = (LATER, "3 failed polls in a row")
        assert await view.of("a.example", NOW) is None
        view.forget()  # this process recorded a failed poll
        assert await view.of("a.example", NOW) == (LATER, "3 failed polls in a row")
        assert reads.calls == 2

    asyncio.run(go())


def test_polls_asking_together_share_one_read() -> None:
    reads = _Reads()
    view = CooldownView(reads, refresh=1.0, monotonic=reads.clock)

    async def go() -> list[tuple[datetime, str] | None]:
        return await asyncio.gather(*(view.of(f"h{i}.example", NOW) for i in range(50)))

    assert asyncio.run(go()) == [None] * 50
    assert reads.calls == 1


def test_a_cool_down_that_ended_is_no_answer() -> None:
    reads = _Reads()
    reads.table["a.example"] = (LATER, "HTTP 429 from a")
    view = CooldownView(reads, refresh=3600.0, monotonic=reads.clock)

    async def go() -> None:
        assert await view.of("a.example", LATER - timedelta(seconds=1)) is not None
        assert await view.of("a.example", LATER) is None
        assert await view.of("a.example", LATER + timedelta(hours=1)) is None

    asyncio.run(go())


def test_refresh_zero_reads_before_every_answer() -> None:
    reads = _Reads()
    view = CooldownView(reads, refresh=0.0, monotonic=reads.clock)

    async def go() -> None:
        for _ in range(3):
            await view.of("a.example", NOW)

    asyncio.run(go())
    assert reads.calls == 3


def test_a_failed_read_raises_and_the_next_question_reads_again() -> None:
    reads = _Reads()
    view = CooldownView(reads, refresh=60.0, monotonic=reads.clock)

    async def go() -> None:
        reads.fail = True
        with pytest.raises(StoreError):
            await view.of("a.example", NOW)
        reads.fail = False
        reads.table["a.example"] = (LATER, "HTTP 429 from a")
        assert await view.of("a.example", NOW) == (LATER, "HTTP 429 from a")
        assert reads.calls == 2

    asyncio.run(go())


RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>One</title><link>https://example.org/1</link><guid>1</guid></item>"
    b"</channel></rss>"
)


def test_unchanged_polls_of_many_sources_read_the_cool_downs_once(db_url: str) -> None:
    """A real pipeline and database: 30 sources polled together read the cool-downs in
    one query, and a 429 that another process records is obeyed after the snapshot's
    refresh (a second, as `cooldowns.REFRESH`)."""
    from ingest.runtime.pipeline import Pipeline
    from ingest.stages.transport import make_client
    from ingest.store import Store

    class CountingStore(Store):
        reads = 0

        def cooldowns_in_force(self, now: datetime) -> dict[str, tuple[datetime, str]]:
            CountingStore.reads += 1
            return super().cooldowns_in_force(now)

    settings = Settings(allow_networks=("127.0.0.0/8",))
    with FeedServer() as server:
        sources = []
        for i in range(30):
            server.put(f"/{i}.xml", RSS)
            url = server.url(f"/{i}.xml")
            sources.append(Source(key=f"s{i}", name=f"s{i}", kind="feed", url=url))

        async def poll_all(store: Store, pipeline: Pipeline) -> list[SourceReport]:
            now = datetime.now(UTC)
            await pipeline.recorder.call(store.sync_sources, sources, now)
            states = await pipeline.recorder.call(store.fetch_states, sources)
            return await asyncio.gather(*(pipeline.poll(s, states[s.key]) for s in sources))

        async def go(store: Store, other: Store) -> tuple[list[SourceReport], list[SourceReport]]:
            async with (
                make_client(settings) as client,
                Pipeline(store, client, settings) as pipeline,
            ):
                first = await poll_all(store, pipeline)
                assert CountingStore.reads == 1
                # another process records a 429 from this host
                bad = SourceReport(source_key="s0", ok=False, status=429, retry_after=600.0,
                                   error="HTTP 429", error_kind="http")  # fmt: skip
                t = datetime.now(UTC)
                other.record_polls([PollRecord(sources[0], bad, None, t, NextPoll(t))])
                await asyncio.sleep(1.05)  # the snapshot's refresh
                second = await poll_all(store, pipeline)
                return first, second

        with CountingStore.open(db_url) as store, Store.open(db_url) as other:
            first, second = asyncio.run(go(store, other))
        assert all(r.ok for r in first), first
        assert CountingStore.reads == 2
        assert {r.error_kind for r in second} == {"cooldown"}
        assert len(server.requests) == 30  # the second round sent nothing
    host = host_of(sources[0].url)
    assert all(host in (r.error or "") for r in second)


def test_a_429_from_a_discovered_feed_cools_the_feeds_host_not_the_pages(tmp_path: Any) -> None:
    """A feed found on a page is asked at its own address: its 429 holds back that server,
    not the page's (which other sources may share)."""
    from ingest.model import FetchState
    from ingest.runtime.pipeline import Pipeline
    from ingest.stages.transport import make_client
    from ingest.store import Store

    settings = Settings(allow_networks=("127.0.0.0/8",))
    with FeedServer() as page_server, FeedServer(host="127.0.0.2") as feed_server:
        page_server.put("/page.html", "<html></html>", content_type="text/html")
        feed_server.put("/feed.xml", status=429, headers={"Retry-After": "120"})
        source = Source(key="s", name="s", kind="feed", url=page_server.url("/page.html"))
        state = FetchState(discovered_url=feed_server.url("/feed.xml"))

        async def go(store: Store) -> SourceReport:
            async with make_client(settings) as client, Pipeline(store, client, settings) as p:
                await p.recorder.call(store.sync_sources, [source], datetime.now(UTC))
                return await p.poll(source, state)

        with Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
            report = asyncio.run(go(store))
            cooled = {r["host"] for r in store.host_cooldowns(datetime.now(UTC))}
        feed_host = host_of(feed_server.url("/feed.xml"))
    assert report.status == 429
    assert cooled == {feed_host}
