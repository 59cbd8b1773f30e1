"""store/service.py through the Store facade: leases, the due query, heartbeat, pruning.

Every test takes `db_url`, so it runs once on a fresh SQLite file and once on a fresh
PostgreSQL database.  "Another process" is a second `Store` (its own engine and
connection pool) with its own lease owner.  The last tests run the real pipeline
against a loopback `feed_server` to check that a leased source is not fetched.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from feedserver import FeedServer
from ingest.model import NextPoll, PollRecord, Rule, Settings, Source, SourceReport
from ingest.runtime import pipeline
from ingest.runtime.leases import lease_ttl
from ingest.runtime.parsing import jobs as workers
from ingest.store import Store
from ingest.store.schema import sources as sources_table
from store_helpers import T0, count, item, ok, save

DAY = timedelta(days=1)
TTL = 300.0


def src(key: str, **kw: Any) -> Source:
    return replace(Source(key=key, name=f"Source {key}", url=f"http://127.0.0.1:1/{key}.xml"),
                   **kw)  # fmt: skip


A, B, C = src("a"), src("b"), src("c")


def failed(source: Source, status: int = 500) -> SourceReport:
    return SourceReport(source_key=source.key, ok=False, status=status, error=f"HTTP {status}",
                        error_kind="http")  # fmt: skip


def record(source: Source, nxt: NextPoll, *, when: datetime = T0, good: bool = True) -> PollRecord:
    return PollRecord(source, ok(source) if good else failed(source), None, when, nxt)


def row(store: Store, key: str) -> dict[str, Any]:
    with store.engine.connect() as c:
        found = c.execute(select(sources_table).where(sources_table.c.key == key)).one()
    return dict(found._mapping)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        s.sync_sources([A, B, C], T0)
        yield s


@pytest.fixture
def other(store: Store, db_url: str) -> Iterator[Store]:
    """A second Store on the same database: another process's engine."""
    with Store.open(db_url) as s:
        yield s


# -- leases ------------------------------------------------------------------------------


def test_a_lease_goes_to_one_owner_across_two_stores(store: Store, other: Store) -> None:
    assert store.acquire_leases(["a", "b"], "p1", T0, TTL) == {"a", "b"}
    assert other.acquire_leases(["a", "b", "c"], "p2", T0 + timedelta(seconds=1), TTL) == {"c"}
    assert row(store, "a")["lease_owner"] == "p1" and row(store, "c")["lease_owner"] == "p2"
    assert row(store, "a")["lease_until"] == T0 + timedelta(seconds=TTL)
    assert store.acquire_leases([], "p1", T0, TTL) == set()


def test_the_same_owner_may_re_acquire_and_extends_its_lease(store: Store, other: Store) -> None:
    assert store.acquire_leases(["a"], "p1", T0, TTL) == {"a"}
    later = T0 + timedelta(seconds=100)
    assert other.acquire_leases(["a"], "p1", later, TTL) == {"a"}  # same owner, any engine
    assert row(store, "a")["lease_until"] == later + timedelta(seconds=TTL)
    assert other.acquire_leases(["a"], "p2", later, TTL) == set()


def test_an_expired_lease_can_be_taken_by_another_owner(store: Store, other: Store) -> None:
    assert store.acquire_leases(["a"], "p1", T0, TTL) == {"a"}
    assert other.acquire_leases(["a"], "p2", T0 + timedelta(seconds=TTL / 2), TTL) == set()
    expired = T0 + timedelta(seconds=TTL + 1)
    assert other.acquire_leases(["a"], "p2", expired, TTL) == {"a"}
    assert row(store, "a")["lease_owner"] == "p2"
    assert store.acquire_leases(["a"], "p1", expired, TTL) == set()  # p1 lost it


def test_concurrent_pollers_take_each_key_exactly_once(db_url: str) -> None:
    keys = [f"k{i:02d}" for i in range(50)]
    workers = 6
    stores = [Store.open(db_url) for _ in range(workers)]
    stores[0].sync_sources([src(k) for k in keys], T0)
    taken: list[set[str]] = [set() for _ in range(workers)]
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(n: int) -> None:
        try:
            order = list(keys)
            random.Random(n).shuffle(order)
            start.wait()
            for i in range(0, len(order), 5):  # many small racing transactions
                taken[n] |= stores[n].acquire_leases(order[i : i + 5], f"p{n}", T0, TTL)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert errors == []
        assert sum(len(t) for t in taken) == len(keys)  # nobody took a key twice
        assert set().union(*taken) == set(keys)  # and every key was taken
        for n, mine in enumerate(taken):
            assert all(row(stores[0], k)["lease_owner"] == f"p{n}" for k in mine)
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize("good", [True, False], ids=["save_poll", "record_polls"])
def test_recording_a_poll_frees_the_lease(store: Store, other: Store, good: bool) -> None:
    assert store.acquire_leases(["a"], "p1", T0, TTL) == {"a"}
    rec = record(A, NextPoll(T0 + timedelta(minutes=30)), good=good)
    if good:
        store.save_poll(rec, [item(A, 1, published_at=T0)])
    else:
        store.record_polls([rec])
    assert row(store, "a")["lease_owner"] is None and row(store, "a")["lease_until"] is None
    assert other.acquire_leases(["a"], "p2", T0 + timedelta(seconds=1), TTL) == {"a"}


def test_release_frees_only_the_owners_own(store: Store, other: Store) -> None:
    assert store.acquire_leases(["a", "b"], "p1", T0, TTL) == {"a", "b"}
    assert other.acquire_leases(["c"], "p2", T0, TTL) == {"c"}
    store.release_leases(["a", "b", "c"], "p1")
    assert [row(store, k)["lease_owner"] for k in "abc"] == [None, None, "p2"]
    store.release_leases([], "p1")  # nothing to do, no error
    assert other.acquire_leases(["a", "b", "c"], "p3", T0, TTL) == {"a", "b"}


# -- the due query ----------------------------------------------------------------------------


def test_due_is_never_polled_first_then_most_overdue_and_skips_the_rest(
    store: Store, other: Store
) -> None:
    hour = timedelta(hours=1)
    polled = {"o1": T0 - 2 * hour, "o2": T0 - hour, "exact": T0, "future": T0 + hour}
    never = ["n2", "n1", "leased"]
    excluded_at_sync = {"off": src("off", enabled=False), "gone": src("gone"), "dead": src("dead")}
    everything = [src(k) for k in [*polled, *never, "retry"]] + list(excluded_at_sync.values())
    store.sync_sources(everything, T0 - DAY)
    store.record_polls(
        [record(src(k), NextPoll(due), when=T0 - DAY) for k, due in polled.items()]
        + [record(src("retry"), NextPoll(T0 - hour, retry_after_until=T0 + hour), good=False),
           record(src("dead"), NextPoll(T0 - hour, disabled_reason="gone: HTTP 410"),
                  good=False)]
    )  # fmt: skip
    assert other.acquire_leases(["leased"], "someone", T0, TTL) == {"leased"}
    store.sync_sources([s for s in everything if s.key != "gone"], T0)  # removed from config
    keys = [s.key for s in everything]

    assert store.due(keys, T0, 100) == ["n1", "n2", "o1", "o2", "exact"]
    assert store.due(keys, T0, 3) == ["n1", "n2", "o1"]
    assert store.due(["o2", "n2", "future", "unknown"], T0, 100) == ["n2", "o2"]  # only `keys`
    # many keys (the scheduler's every enabled source) are filtered after the read, not in
    # SQL: the same answers
    many = [f"pad{i}" for i in range(40)]
    assert store.due(keys + many, T0, 100) == ["n1", "n2", "o1", "o2", "exact"]
    assert store.due(many + keys, T0, 3) == ["n1", "n2", "o1"]
    assert store.due(["o2", "n2", "future", "unknown", *many], T0, 100) == ["n2", "o2"]

    # each exclusion lifts on its own terms; the others stay out
    later = T0 + 2 * hour  # past `future`, the Retry-After and the lease
    assert store.due(keys, later, 100) == ["leased", "n1", "n2", "o1", "o2", "retry", "exact",
                                           "future"]  # fmt: skip
    assert store.due(keys + many, later, 100) == store.due(keys, later, 100)


def test_a_lease_held_by_this_very_owner_also_hides_a_source_from_due(store: Store) -> None:
    assert store.due(["a", "b"], T0, 10) == ["a", "b"]
    store.acquire_leases(["a"], "me", T0, TTL)
    assert store.due(["a", "b"], T0, 10) == ["b"]


def test_a_url_change_clears_disabled_reason_and_backoff(store: Store) -> None:
    gone = NextPoll(T0 + timedelta(days=3650), disabled_reason="gone: HTTP 410", backoff=3600.0)
    store.record_polls([record(A, gone, good=False)])
    before = row(store, "a")
    assert before["disabled_reason"] == "gone: HTTP 410" and before["backoff_seconds"] == 3600.0
    assert before["consecutive_failures"] == 1
    assert store.due(["a"], T0 + DAY, 10) == []

    store.sync_sources([replace(A, name="Renamed"), B, C], T0 + DAY)  # same URL: still off
    assert row(store, "a")["disabled_reason"] == "gone: HTTP 410"

    store.sync_sources([replace(A, url="http://127.0.0.1:1/new.xml"), B, C], T0 + DAY)
    after = row(store, "a")
    assert after["disabled_reason"] is None and after["backoff_seconds"] == 0.0
    assert after["consecutive_failures"] == 0 and after["next_due_at"] is None
    assert store.due(["a"], T0 + DAY, 10) == ["a"]


# -- heartbeat ----------------------------------------------------------------------------------


def test_heartbeat_inserts_then_updates_one_row(store: Store) -> None:
    assert store.service("scheduler") is None
    store.heartbeat("scheduler", "host:1", T0, started_at=T0, config_path="/etc/sources.yaml",
                    config_error=None)  # fmt: skip
    first = store.service("scheduler")
    assert first == {
        "name": "scheduler", "owner": "host:1", "started_at": T0, "last_tick_at": T0,
        "config_path": "/etc/sources.yaml", "config_error": None, "stopped_at": None,
    }  # fmt: skip

    tick = T0 + timedelta(seconds=30)
    store.heartbeat("scheduler", "host:1", tick, started_at=T0, config_path="/etc/sources.yaml",
                    config_error="sources.yaml:3: bad")  # fmt: skip
    again = store.service("scheduler")
    assert again is not None
    assert again["last_tick_at"] == tick and again["started_at"] == T0
    assert again["config_error"] == "sources.yaml:3: bad" and again["stopped_at"] is None
    assert count(store, "services") == 1

    stop = T0 + timedelta(seconds=60)
    store.heartbeat("scheduler", "host:1", stop, started_at=T0, config_path=None,
                    config_error=None, stopped=True)  # fmt: skip
    stopped = store.service("scheduler")
    assert stopped is not None and stopped["stopped_at"] == stop

    restart = T0 + timedelta(seconds=90)  # a new process takes the name over
    store.heartbeat("scheduler", "host:2", restart, started_at=restart, config_path=None,
                    config_error=None)  # fmt: skip
    back = store.service("scheduler")
    assert back is not None and back["stopped_at"] is None and back["owner"] == "host:2"
    assert store.service("other") is None
    assert count(store, "services") == 1


# -- pruning -------------------------------------------------------------------------------------


def test_prune_batch_deletes_old_stories_then_old_poll_log_then_stops(store: Store) -> None:
    old, recent = T0 - timedelta(days=400), T0 - DAY
    olds = [item(A, n, published_at=old) for n in range(5)]
    save(store, A, olds, old)  # fetches row 1 (old)
    save(store, B, [replace(i, source_key="b") for i in olds], old)  # 2 (old): 2 sources each
    # 3: published long ago, first seen lately
    save(store, A, [item(A, 10, published_at=old)], recent)
    # 4 (old): first seen long ago, published lately
    save(store, A, [item(A, 11, published_at=recent)], old)
    save(store, C, [item(C, 12, published_at=recent), item(C, 13, published_at=T0)], recent)  # 5
    log_only = [T0 - timedelta(days=40), T0 - timedelta(days=40), T0 - timedelta(days=29)]
    store.record_polls([record(C, NextPoll(T0), when=w, good=False) for w in log_only])  # 6-8
    assert count(store, "items") == 9
    assert count(store, "item_sources") == 14
    assert count(store, "fetches") == 8

    done = []
    while True:
        n = store.prune_batch(T0, retention=365 * 86400.0, history=30 * 86400.0, batch=2)
        done.append(n)
        if n == 0 or len(done) > 20:
            break
        if sum(done) == 5:  # stories first: the poll log is untouched until they are gone
            assert count(store, "fetches") == 8
    assert done == [2, 2, 1, 2, 2, 1, 0]

    titles = {r["title"] for r in store.latest(limit=100)}
    assert titles == {"Story 10", "Story 11", "Story 12", "Story 13"}
    assert count(store, "item_sources") == 4  # cascaded, no orphans
    orphans = "item_sources s LEFT JOIN items i ON i.id = s.item_id WHERE i.id IS NULL"
    assert count(store, orphans) == 0
    assert count(store, "fetches") == 3
    assert store.prune_batch(T0, retention=365 * 86400.0, history=30 * 86400.0, batch=2) == 0


# -- the pipeline respects leases ----------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>{name}</title><link>http://127.0.0.1/</link><description>test</description>
<item><title>{name} one</title><link>http://127.0.0.1/{name}/1</link><guid>{name}-1</guid>
<pubDate>Mon, 01 Jun 2026 07:00:00 GMT</pubDate></item>
<item><title>{name} two</title><link>http://127.0.0.1/{name}/2</link><guid>{name}-2</guid>
<pubDate>Mon, 01 Jun 2026 07:30:00 GMT</pubDate></item>
</channel></rss>
"""


def test_the_pipeline_skips_a_source_another_process_holds(
    db_url: str, feed_server: FeedServer
) -> None:
    feed_server.put("/held.xml", RSS.format(name="held"))
    feed_server.put("/free.xml", RSS.format(name="free"))
    held = src("held", url=feed_server.url("/held.xml"))
    free = src("free", url=feed_server.url("/free.xml"))
    ttl = lease_ttl(held)

    def run(at: datetime, srcs: Sequence[Source], store: Store) -> list[SourceReport]:
        with ThreadPoolExecutor(2) as pool:  # parse in threads: no process start-up
            return pipeline.run(srcs, store, clock=lambda: at, parse_pool=pool)

    with Store.open(db_url) as store, Store.open(db_url) as elsewhere:
        store.sync_sources([held, free], T0)
        assert elsewhere.acquire_leases(["held"], "elsewhere", T0, ttl) == {"held"}

        skipped, polled = run(T0 + timedelta(seconds=1), [held, free], store)
        assert skipped.source_key == "held" and skipped.skipped is True
        assert polled.source_key == "free" and polled.ok and not polled.skipped
        assert polled.new == 2
        feed_server.wait_idle()
        assert feed_server.count("/held.xml") == 0 and feed_server.count("/free.xml") == 1
        assert row(store, "held")["lease_owner"] == "elsewhere"  # untouched
        assert row(store, "free")["lease_owner"] is None  # freed when the poll was recorded

        (late,) = run(T0 + timedelta(seconds=ttl + 1), [held], store)  # the lease ran out
        assert late.ok and not late.skipped and late.new == 2, late
        assert feed_server.count("/held.xml") == 1
        assert row(store, "held")["lease_owner"] is None
        assert store.story_count() == 4


class _SlowCountingPool(ThreadPoolExecutor):
    """Parses in threads, slowly, and counts the bodies handed over but not yet parsed."""

    def __init__(self) -> None:
        super().__init__(4)
        self.lock = threading.Lock()
        self.waiting = 0
        self.peak = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if fn is not workers.parse_job:  # the warm-up jobs carry no body
            return super().submit(fn, *args, **kwargs)
        with self.lock:
            self.waiting += 1
            self.peak = max(self.peak, self.waiting)

        def slow() -> Any:
            threading.Event().wait(0.02)
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.waiting -= 1

        return super().submit(slow)


def test_a_run_holds_at_most_concurrency_bodies_however_slow_parsing_is(
    sqlite_url: str, feed_server: FeedServer
) -> None:
    """Fetching waits for parsing: never more than `concurrency` bodies in hand."""
    many = []
    # a keep rule that keeps everything: a source with rules is parsed in the pool
    # (the slow one here), never in the pipeline's own thread (jobs.sift_here)
    everything = (Rule(action="keep", patterns=(("title", "."),)),)
    for n in range(24):
        feed_server.put(f"/f{n}.xml", RSS.format(name=f"f{n}"))
        many.append(replace(src(f"f{n}", url=feed_server.url(f"/f{n}.xml")), rules=everything))
    settings = Settings(concurrency=3)
    with Store.open(sqlite_url) as store, _SlowCountingPool() as pool:
        reports = pipeline.run(many, store, settings, parse_pool=pool)
        assert all(r.ok and r.new == 2 for r in reports), reports
        assert store.story_count() == 48
    assert 1 <= pool.peak <= 3  # 24 bodies, but never more than 3 waiting at once


def test_a_poll_cancelled_while_its_write_waits_does_not_stop_the_recorder(
    sqlite_url: str,
) -> None:
    """Shutdown cancels polls; their queued writes still land and the others still get theirs."""
    import asyncio
    import time

    from ingest.runtime.recorder import Recorder

    def record(source: Source) -> PollRecord:
        return PollRecord(source, ok(source), None, T0, NextPoll(T0 + timedelta(minutes=30)))

    async def go(store: Store) -> SourceReport:
        recorder = Recorder(store)
        recorder.start()
        busy = asyncio.ensure_future(recorder.call(time.sleep, 0.3))  # the database thread is busy
        cancelled = asyncio.ensure_future(recorder.save(record(A), None))
        await asyncio.sleep(0.05)
        cancelled.cancel()  # as the scheduler's grace period ends
        later = await asyncio.wait_for(recorder.save(record(B), None), 10)
        await busy
        await asyncio.wait_for(recorder.stop(), 10)
        return later

    with Store.open(sqlite_url) as store:
        store.sync_sources([A, B], T0)
        report = asyncio.run(go(store))
        assert report.ok and report.source_key == "b"
        assert count(store, "fetches") == 2  # the cancelled poll's write landed too
