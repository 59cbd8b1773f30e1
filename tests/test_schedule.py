"""The unattended service (schedule.py) and `ingest health`, over real sockets and databases.

In process, a `Service` with fast `Timing` runs (``asyncio.run``) in a background thread,
or with ``once=True`` in the test's own thread, over a sources file in tmp_path whose
sources point at the loopback ``feed_server``; the tests watch what the server was asked
for (request counts and timestamps) and what the database holds.  Out of process,
``scheduler.py`` itself is started with subprocess, edited under, sent SIGTERM and
restarted, on SQLite and (when ``INGEST_TEST_POSTGRES_URL`` is set) on PostgreSQL.

Every wait is a poll loop with a deadline; a fixed sleep is used only to show that
something did *not* happen (or to let a race settle before counting).  Windows are sized
so that the jitter (±10%) and the tick granularity cannot turn a pass into a fail: the
worst cases are worked out where used.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from sqlalchemy import func, select

from feedserver import FeedServer
from ingest.cli.main import main
from ingest.config import load_config
from ingest.model import Item, NextPoll, PollRecord, SourceReport
from ingest.service.scheduler import SERVICE_NAME, Service, Timing
from ingest.store import Store
from ingest.store.schema import fetches, item_sources, items

ROOT = Path(__file__).resolve().parents[1]
FAST = Timing(tick=0.2, reload=0.3, heartbeat=0.2, prune=0.5, grace=2)
# FeedServer sends Cache-Control: max-age=300, which would otherwise floor every wait at 5 min
CONFIG_DATA = Path(__file__).parent / "data" / "config"
QUICK = "  respect_max_age: false\n"
T = TypeVar("T")


# -- helpers --------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("restore_logging")


def rss(tag: str, n: int = 3) -> str:
    """A small RSS 2.0 feed of `n` recent stories (older ones would fall to retention)."""
    now = datetime.now(UTC)
    entries = "".join(
        f"<item><title>{tag} story {i}</title><link>http://example.org/{tag}/{i}</link>"
        f"<guid>{tag}-{i}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(hours=1 + i), usegmt=True)}</pubDate>"
        f"<description>Story {i} from {tag}.</description></item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{tag}</title><link>http://example.org/{tag}/</link>{entries}</channel></rss>"
    )


def entry(key: str, url: str, every: str = "1s") -> str:
    return f"  - key: {key}\n    name: Source {key}\n    url: {url}\n    every: {every}\n"


def sources_text(entries: list[str], settings: str = QUICK) -> str:
    return "settings:\n" + settings + "sources:\n" + "".join(entries)


def write(path: Path, text: str) -> None:
    """Replace the file in one step, as editors do (never seen half-written)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def wait_until(cond: Callable[[], T], timeout: float, what: str, alive: Any = None) -> T:
    """Poll `cond` until it is truthy; fail after `timeout` s (or when `alive()` is false)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if alive is not None and not alive():
            pytest.fail(f"the service died while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def status(store: Store) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in store.status()}


def stored(store: Store, *keys: str) -> bool:
    rows = status(store)
    return all(k in rows and rows[k]["items"] > 0 for k in keys)


def count_rows(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def in_window(server: FeedServer, path: str, start: float, end: float) -> int:
    return sum(1 for r in server.requests_for(path) if start <= r.time <= end)


@pytest.fixture
def busy_server() -> Iterator[FeedServer]:
    """/busy.xml answering 429 with Retry-After: 120, on a server of its own: a 429 holds
    back every source of its host (politeness.py), and the good feeds must go on."""
    with FeedServer() as server:
        server.error("/busy.xml", 429, "slow down", retry_after=120)
        yield server


def serve_good_and_failing(server: FeedServer, *good: str) -> None:
    """The `good` feeds (three recent stories each) and /err.xml failing with HTTP 500.
    (A 429 cools down its whole host, so /busy.xml is served by a server of its own.)"""
    for key in good:
        server.put(f"/{key}.xml", rss(key))
    server.error("/err.xml", 500, "oops")


def first_poll(server: FeedServer) -> float:
    """When the first of a, b and err was first asked for: where a backoff timeline starts."""
    return min(server.requests_for(f"/{k}.xml")[0].time for k in ("a", "b", "err"))


def assert_backed_off(server: FeedServer, t0: float, since: float, end: float) -> None:
    """In (since, end], the good sources a and b were polled at least 3 times and more than
    twice as often as the failing err; in [t0, end] a and b at least 5 times, err 2-3."""
    good = [in_window(server, f"/{k}.xml", since, end) for k in ("a", "b")]
    failing = in_window(server, "/err.xml", since, end)
    assert min(good) >= 3 and 2 * failing < min(good), (good, failing)  # backing off
    assert min(in_window(server, f"/{k}.xml", t0, end) for k in ("a", "b")) >= 5
    assert 2 <= in_window(server, "/err.xml", t0, end) <= 3  # retried, less and less


class Running:
    """A Service run by `asyncio.run` in a background thread, as an embedding program would."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.rc: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="ingest-service", daemon=True)

    def _main(self) -> None:
        try:
            self.rc = asyncio.run(self.service.run())
        except BaseException as e:  # handed to the test by stop()/wait()
            self.error = e

    def alive(self) -> bool:
        return self.thread.is_alive()

    def wait(self, cond: Callable[[], T], timeout: float, what: str) -> T:
        return wait_until(cond, timeout, what, alive=self._alive_or_raise)

    def _alive_or_raise(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.alive()

    def stop(self, timeout: float = 15.0) -> int:
        self.service.request_stop()  # from this thread: request_stop must be thread-safe
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the service did not stop within {timeout}s"
        if self.error is not None:
            raise self.error
        assert self.rc is not None
        return self.rc


@contextmanager
def serving(sources: Path, url: str, timing: Timing = FAST) -> Iterator[Running]:
    with Store.open(url) as store:
        running = Running(Service(str(sources), store, timing=timing))
        running.thread.start()
        try:
            yield running
        finally:
            if running.alive():
                running.service.request_stop()
                running.thread.join(15)


def once(sources: Path, url: str) -> int:
    with Store.open(url) as store:
        return asyncio.run(Service(str(sources), store, timing=FAST, once=True).run())


def heartbeat(store: Store) -> dict[str, Any]:
    row = store.service(SERVICE_NAME)
    assert row is not None, "the scheduler left no heartbeat"
    return row


def age(when: datetime) -> float:
    return (datetime.now(UTC) - when).total_seconds()


def health(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["health", "--db", url, *args])
    return code, capsys.readouterr().out


# -- the service in process -------------------------------------------------------------


def test_service_polls_good_sources_backs_off_failing_ones_and_obeys_the_server(
    feed_server: FeedServer, busy_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    serve_good_and_failing(feed_server, "a", "b")
    feed_server.error("/gone.xml", 410, "gone for good")
    keys = ("a", "b", "err", "busy", "gone")
    sources = tmp_path / "sources.yaml"
    urls = {k: (busy_server if k == "busy" else feed_server).url(f"/{k}.xml") for k in keys}
    write(sources, sources_text([entry(k, urls[k]) for k in keys]))

    with Store.open(sqlite_url) as db, serving(sources, sqlite_url) as svc:
        svc.wait(lambda: stored(db, "a", "b"), 10, "the good sources to be stored")
        t0 = first_poll(feed_server)
        # Timeline (every 1s, jitter ±0.1 s, no wait under 1 s, tick 0.2 s): a good source
        # is polled every 1.2 s (0, 1.2, 2.4, ...); the failing one waits 2, 4, then 8 s
        # (each ±0.1 s and rounded up to a tick): polls at 0, ~2.2, ~6.4, then not before
        # 13.7 s.  In (t0 + 3.1, t0 + 9.5] (window edges between ticks) that is 5 polls of
        # each good source against 1 of the failing one; without backoff it would be 5.
        end = t0 + 9.5
        svc.wait(lambda: time.time() > end + 0.3, 15, "the measuring window to pass")
        beat = heartbeat(db)
        beat_age = age(beat["last_tick_at"])
        rows = status(db)
        assert svc.stop() == 0

    assert_backed_off(feed_server, t0, t0 + 3.1, end)
    assert rows["a"]["items"] == rows["b"]["items"] == 3
    assert rows["err"]["consecutive_failures"] == feed_server.count("/err.xml")
    assert rows["err"]["backoff_seconds"] > 0 and "500" in rows["err"]["last_error"]

    # 429 with Retry-After: 120 -> asked once, and not again inside two minutes
    assert busy_server.count("/busy.xml") == 1
    assert rows["busy"]["last_status"] == 429
    assert rows["busy"]["retry_after_until"] > datetime.now(UTC) + timedelta(seconds=100)

    # 410 Gone -> disabled, with the reason, and never asked again
    assert feed_server.count("/gone.xml") == 1
    assert rows["gone"]["disabled_reason"] and "410" in rows["gone"]["disabled_reason"]

    # the heartbeat was fresh while it ran, and says "stopped" after a clean stop
    assert beat["owner"].startswith("scheduler@") and beat["stopped_at"] is None
    assert beat_age < 2 and beat["config_error"] is None
    assert beat["config_path"] == str(sources.absolute())
    with Store.open(sqlite_url) as db:
        after = heartbeat(db)
        assert after["stopped_at"] is not None and age(after["stopped_at"]) < 10
        assert after["last_tick_at"] >= beat["last_tick_at"]
        assert all(r["lease_owner"] is None for r in db.status())  # no lease left behind


def test_live_reload_adds_removes_and_survives_an_invalid_file(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for k in "abc":
        feed_server.put(f"/{k}.xml", rss(k))
    a, b, c = (entry(k, feed_server.url(f"/{k}.xml")) for k in "abc")
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([a, b]))

    with Store.open(sqlite_url) as db, serving(sources, sqlite_url) as svc:
        svc.wait(lambda: stored(db, "a", "b"), 10, "a and b to be stored")
        assert feed_server.count("/c.xml") == 0

        # appended to the file: picked up without a restart
        with sources.open("a") as f:
            f.write(c)
        svc.wait(lambda: stored(db, "c"), 5, "the appended source c to be polled and stored")

        # removed from the file: no more polls, stories kept
        write(sources, sources_text([a, c]))
        svc.wait(lambda: not status(db)["b"]["in_config"], 5, "b to leave the configuration")
        time.sleep(0.5)  # a poll of b begun just before the reload may still reach the server
        b_polls = feed_server.count("/b.xml")

        # an invalid edit: refused with file:line, the last good configuration keeps running
        bad = sources_text([a, c, entry("d", feed_server.url("/d.xml"), every="often")])
        line = bad.splitlines().index("    every: often") + 1
        write(sources, bad)
        error = svc.wait(lambda: heartbeat(db)["config_error"], 5, "the refused edit")
        assert re.match(rf"{re.escape(str(sources))}:{line}: .*often", error), error
        a_polls = feed_server.count("/a.xml")
        svc.wait(lambda: feed_server.count("/a.xml") >= a_polls + 2, 5, "a to be polled on")
        assert svc.alive() and "d" not in status(db)
        code, out = health(capsys, sqlite_url, "--stale", "0")
        assert code == 1 and "refused" in out and f":{line}:" in out, out

        # fixed: the error clears
        write(sources, sources_text([a, c]))
        svc.wait(lambda: heartbeat(db)["config_error"] is None, 5, "the error to clear")
        assert health(capsys, sqlite_url, "--stale", "0")[0] == 0
        c_polls = feed_server.count("/c.xml")
        svc.wait(lambda: feed_server.count("/c.xml") > c_polls, 5, "c to be polled on")
        assert svc.stop() == 0

        assert feed_server.count("/b.xml") == b_polls  # ~4 s at `every: 1s`: not polled again
        rows = status(db)
        assert rows["b"]["items"] == 3 and not rows["b"]["in_config"]
        assert len(db.latest(source="b")) == 3


def test_reload_reads_the_file_off_the_event_loop(tmp_path: Path, sqlite_url: str) -> None:
    """While the watcher reads the file, the event loop runs on: here the read waits for
    a coroutine on the loop, which could never run if the read blocked the loop."""
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", "https://a.example/feed")]))
    with Store.open(sqlite_url) as store:
        service = Service(str(sources), store, timing=FAST)
        read_check = service.watch.check
        released = threading.Event()
        readers: list[threading.Thread] = []

        def slow_check() -> Any:
            readers.append(threading.current_thread())
            if not released.wait(10):
                raise AssertionError("the event loop was stalled by the reload")
            return read_check()

        service.watch.check = slow_check  # type: ignore[method-assign]

        async def go() -> None:
            async def release() -> None:
                await asyncio.sleep(0.01)
                released.set()

            releaser = asyncio.create_task(release())
            await service.reload()
            await releaser

        asyncio.run(go())
    assert len(readers) == 1 and readers[0] is not threading.main_thread()


def test_a_merge_key_bomb_saved_by_an_editor_is_read_at_once(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    """`<<: [*prev, *prev]` 25 deep (2**25 merges if expanded naively) is read as the 26
    sources it means; a file that merges past the budget is refused with its line."""
    feed_server.put("/a.xml", rss("a"))
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", feed_server.url("/a.xml"))]))
    bomb = "".join(f"  - &m{i} {{<<: [*m{i - 1}, *m{i - 1}], key: s{i}}}\n" for i in range(1, 26))
    first = f"  - &m0 {{key: s0, name: S, url: '{feed_server.url('/a.xml')}', every: 1h}}\n"
    with Store.open(sqlite_url) as db, serving(sources, sqlite_url) as svc:
        svc.wait(lambda: stored(db, "a"), 10, "a to be stored")
        write(sources, sources_text([entry("a", feed_server.url("/a.xml")), first + bomb]))
        svc.wait(lambda: len(status(db)) == 27, 10, "the 26 sources of the bomb file")
        budget = (CONFIG_DATA / "merge_budget.yaml").read_text()
        write(sources, budget)
        error = svc.wait(lambda: heartbeat(db)["config_error"], 10, "the refused edit")
        assert ":480: the '<<' merges of this file bring in more than 200,000" in error
        assert svc.alive()
        assert svc.stop() == 0


def test_once_polls_what_is_due_and_exits(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/a.xml", rss("a"))
    feed_server.error("/err.xml", 500, "oops")
    a = entry("a", feed_server.url("/a.xml"), every="1h")
    err = entry("err", feed_server.url("/err.xml"), every="1h")
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([a]))

    # through the command line: exit 0, one log line for the poll
    assert main(["schedule", "--once", "--sources", str(sources), "--db", sqlite_url]) == 0
    log = capsys.readouterr().err
    assert len(re.findall(r"ingest\.poll: a status=200 new=3 ", log)) == 1, log
    assert feed_server.count("/a.xml") == 1

    write(sources, sources_text([a, err]))
    assert once(sources, sqlite_url) == 1  # err was due (never polled) and failed; a was not due
    assert (feed_server.count("/a.xml"), feed_server.count("/err.xml")) == (1, 1)

    assert once(sources, sqlite_url) == 0  # nothing is due: a in 1 h, err backing off
    assert (feed_server.count("/a.xml"), feed_server.count("/err.xml")) == (1, 1)

    with Store.open(sqlite_url) as db:
        assert status(db)["a"]["items"] == 3
        beat = heartbeat(db)
        # a --once run is not a stopped service: health judges it by --max-silence
        assert beat["stopped_at"] is None and age(beat["last_tick_at"]) < 10


def test_once_polls_every_due_source_not_just_one_ticks_worth(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    keys = [f"s{i}" for i in range(5)]
    for k in keys:
        feed_server.put(f"/{k}.xml", rss(k, n=1))
    sources = tmp_path / "sources.yaml"
    # a tick of the long-running service takes at most 2 x concurrency sources at a time
    write(sources, sources_text([entry(k, feed_server.url(f"/{k}.xml"), every="1h") for k in keys],
                                settings=QUICK + "  concurrency: 1\n"))  # fmt: skip
    assert once(sources, sqlite_url) == 0
    assert [feed_server.count(f"/{k}.xml") for k in keys] == [1] * 5
    with Store.open(sqlite_url) as db:
        assert stored(db, *keys)


def test_request_stop_from_another_thread_wakes_an_idle_service(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    feed_server.put("/a.xml", rss("a"))
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", feed_server.url("/a.xml"), every="1h")]))
    idle = Timing(tick=60, reload=60, heartbeat=60, prune=60, grace=2)  # asleep for a minute
    with Store.open(sqlite_url) as db, serving(sources, sqlite_url, idle) as svc:
        svc.wait(lambda: stored(db, "a") and db.service(SERVICE_NAME), 10, "the first tick")
        time.sleep(0.3)  # let the loop go to sleep until its next job
        started = time.monotonic()
        assert svc.stop(timeout=20) == 0
        assert time.monotonic() - started < 3  # not at the next tick, a minute away
        assert heartbeat(db)["stopped_at"] is not None


@pytest.mark.parametrize("mode", ["service", "once"])
def test_prune_deletes_expired_stories_and_old_poll_history(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, mode: str
) -> None:
    feed_server.put("/a.xml", rss("a"))
    sources = tmp_path / "sources.yaml"
    text = sources_text([entry("a", feed_server.url("/a.xml"), every="1h")],
                        settings=QUICK + "  retention: 30d\n  history: 7d\n")  # fmt: skip
    write(sources, text)
    config = load_config(str(sources))
    source = config.sources[0]
    now = datetime.now(UTC)

    def old_poll(store: Store, days: int, stories: int) -> None:
        """A poll `days` ago that stored `stories` stories published then (rows only)."""
        at = now - timedelta(days=days)
        batch = [
            Item(source_key="a", entry_key=f"{days}-{i}", title=f"{days} days old, {i}",
                 canonical_url=f"http://example.org/{days}/{i}",
                 url=f"http://example.org/{days}/{i}", summary="", published_at=at,
                 date_source="published", content_hash=f"{days}-{i}")
            for i in range(stories)
        ]  # fmt: skip
        report = SourceReport(source_key="a", ok=True, status=200, entries=stories)
        # due in an hour: the service has nothing to fetch here, only to prune
        record = PollRecord(source, report, None, at, NextPoll(now + timedelta(hours=1)))
        store.save_poll(record, batch or None)

    with Store.open(sqlite_url) as db:
        db.sync_sources(config.sources, now - timedelta(days=90))
        old_poll(db, 60, stories=2)  # stories and poll row older than retention: pruned
        old_poll(db, 10, stories=0)  # a poll row older than history: pruned
        old_poll(db, 2, stories=2)  # recent: kept
        assert (db.story_count(), count_rows(db, fetches)) == (4, 3)

        if mode == "service":  # the prune job runs at start-up, then every `Timing.prune`
            with serving(sources, sqlite_url) as svc:
                svc.wait(lambda: db.story_count() == 2 and count_rows(db, fetches) == 1, 5,
                         "the expired rows to be pruned")  # fmt: skip
                assert svc.stop() == 0
        else:  # a timer running --once prunes after its polls
            assert once(sources, sqlite_url) == 0

        assert {s["title"] for s in db.latest(limit=10)} == {"2 days old, 0", "2 days old, 1"}
        assert count_rows(db, item_sources) == 2  # their source links went with them
        assert count_rows(db, items) == 2
        with db.engine.connect() as conn:
            kept = conn.execute(select(fetches.c.started_at)).scalar_one()
        assert abs((kept - (now - timedelta(days=2))).total_seconds()) < 1
    assert feed_server.count("/a.xml") == 0  # the restart did not refetch a source not due


# -- ingest health ----------------------------------------------------------------------


def test_health_fails_when_no_scheduler_ever_ran(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Store.open(sqlite_url).close()  # ingest's database, where no scheduler ever ran
    code, out = health(capsys, sqlite_url)
    assert code == 1 and out.startswith("UNHEALTHY") and "no scheduler (nor dispatcher)" in out
    code, out = health(capsys, sqlite_url, "--format", "json")
    verdict = json.loads(out)
    assert code == 1 and verdict["ok"] is False and verdict["stale"] == []
    assert any("no scheduler" in p for p in verdict["problems"])


def test_health_judges_the_freshest_heartbeat_of_scheduler_and_dispatcher() -> None:
    from ingest.service.health import assess, pick_service

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    old = {"owner": "scheduler@h:1:a", "last_tick_at": now - timedelta(hours=2)}
    fresh = {"owner": "dispatch@h:2:b", "last_tick_at": now - timedelta(seconds=3)}
    assert pick_service({"scheduler": None, "dispatcher": None}) == ("scheduler", None)
    assert pick_service({"scheduler": old, "dispatcher": None}) == ("scheduler", old)
    assert pick_service({"scheduler": old, "dispatcher": fresh}) == ("dispatcher", fresh)
    verdict = assess(fresh, [], now, name="dispatcher")
    assert verdict.ok and verdict.service == "dispatcher"
    assert verdict.scheduler == "the dispatcher (dispatch@h:2:b) last ticked 3s ago"
    stopped = assess({**fresh, "stopped_at": now}, [], now, name="dispatcher")
    assert not stopped.ok and stopped.problems[0].startswith(
        "the dispatcher (dispatch@h:2:b) stopped"
    )
    silent = assess(old, [], now)
    assert not silent.ok and "more than the 60s allowed" in silent.problems[0]


def test_health_is_ok_while_the_service_ticks_and_fails_once_it_stopped(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/a.xml", rss("a"))
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", feed_server.url("/a.xml"))]))
    with Store.open(sqlite_url) as db, serving(sources, sqlite_url) as svc:
        svc.wait(lambda: stored(db, "a") and db.service(SERVICE_NAME), 10, "a heartbeat")
        code, out = health(capsys, sqlite_url)
        assert code == 0 and out.startswith("healthy: the scheduler (scheduler@"), out
        code, out = health(capsys, sqlite_url, "--format", "json")
        assert code == 0 and json.loads(out) == {
            "ok": True, "service": "scheduler", "scheduler": json.loads(out)["scheduler"],
            "problems": [], "stale": [], "stale_processes": [], "workers": [],
        }  # fmt: skip
        assert svc.stop() == 0
    code, out = health(capsys, sqlite_url)
    assert code == 1 and "stopped at" in out, out
    verdict = json.loads(health(capsys, sqlite_url, "--format", "json")[1])
    assert verdict["ok"] is False and "stopped" in verdict["problems"][0]


def test_health_names_a_stale_source(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/a.xml", rss("a"))
    feed_server.error("/err.xml", 500, "oops")
    sources = tmp_path / "sources.yaml"
    # backoff_max 1s and no jitter: the failing source is retried every second, backoff 0,
    # so with --stale 1 --max-silence 2s it is stale 1 + 0 + 2 = 3 s after it was added
    write(sources, sources_text(
        [entry("a", feed_server.url("/a.xml")), entry("err", feed_server.url("/err.xml"))],
        settings=QUICK + "  backoff_max: 1s\n  jitter: 0\n",
    ))  # fmt: skip
    with Store.open(sqlite_url) as db, serving(sources, sqlite_url) as svc:
        svc.wait(lambda: stored(db, "a"), 10, "a to be stored")
        added = status(db)["err"]["created_at"]
        args = ("--stale", "1", "--max-silence", "2s", "--format", "json")
        code, out = health(capsys, sqlite_url, *args)
        assert code == 0 and json.loads(out)["ok"], out  # not stale yet
        svc.wait(lambda: age(added) > 3.5, 10, "err to go stale")
        code, out = health(capsys, sqlite_url, *args)
        verdict = json.loads(out)
        assert code == 1 and verdict["ok"] is False and verdict["stale"] == ["err"], out
        assert any(p.startswith("source err ") and "HTTP 500" in p for p in verdict["problems"])
        code, out = health(capsys, sqlite_url, "--stale", "1", "--max-silence", "2s")
        assert code == 1 and "source err has had no successful poll" in out
        assert "source a " not in out  # polled every second, always fine
        code, out = health(capsys, sqlite_url, "--stale", "0", "--max-silence", "2s")
        assert code == 0 and out.startswith("healthy"), out  # --stale 0: no source check
        assert svc.stop() == 0


def test_health_honours_max_silence(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/a.xml", rss("a"))
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", feed_server.url("/a.xml"), every="1h")]))
    assert once(sources, sqlite_url) == 0  # leaves a heartbeat, as from a timer
    with Store.open(sqlite_url) as db:
        last = heartbeat(db)["last_tick_at"]
    assert health(capsys, sqlite_url, "--max-silence", "1m")[0] == 0
    wait_until(lambda: age(last) > 1.5, 5, "the heartbeat to age")
    code, out = health(capsys, sqlite_url, "--max-silence", "1s")
    assert code == 1 and "more than the 1s allowed" in out, out
    assert health(capsys, sqlite_url, "--max-silence", "1m")[0] == 0


# -- scheduler.py as a real process ------------------------------------------------------


class Proc:
    """`python scheduler.py ...` from the repository root, its output in a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "scheduler.py", *args],
            cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def running(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 10.0) -> int:
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scheduler.py did not exit within {timeout}s of SIGTERM:\n{self.output}")

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.running():
            self.popen.kill()
            self.popen.wait(10)
        self._out.close()


@contextmanager
def scheduler_process(log: Path, sources: Path, url: str, *extra: str) -> Iterator[Proc]:
    proc = Proc(log, "--sources", str(sources), "--db", url, *extra)
    try:
        yield proc
    finally:
        proc.close()


def restarted(db: Store, before: str, proc: Proc) -> bool:
    """True once a new scheduler (not `before`) has ticked; fails if the process died."""
    if not proc.running():
        pytest.fail(f"scheduler.py exited with {proc.popen.returncode}:\n{proc.output}")
    row = db.service(SERVICE_NAME)
    return bool(row and row["owner"] != before and row["stopped_at"] is None)


def test_scheduler_process_polls_reloads_stops_on_sigterm_and_resumes(
    feed_server: FeedServer, busy_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    serve_good_and_failing(feed_server, "a", "b", "late")
    url = feed_server.url
    four = [entry(k, url(f"/{k}.xml")) for k in ("a", "b", "err")]
    four.append(entry("busy", busy_server.url("/busy.xml")))

    def count(path: str) -> int:
        return (busy_server if path == "/busy.xml" else feed_server).count(path)

    late = entry("late", url("/late.xml"), every="1m")
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text(four))
    log = tmp_path / "scheduler.log"

    with Store.open(sqlite_url) as db, scheduler_process(log, sources, sqlite_url) as proc:
        alive = proc.running
        wait_until(lambda: stored(db, "a", "b"), 20, "a and b to be stored", alive)
        t0 = first_poll(feed_server)

        # reload (every 5 s): an appended source is fetched without a restart
        with sources.open("a") as f:
            f.write(late)
        wait_until(lambda: stored(db, "late"), 12, "the appended source to be stored", alive)

        # an invalid edit is refused; the process goes on polling the last good sources
        write(sources, sources_text([*four, late]) + "    bogus: 1\n")
        wait_until(lambda: heartbeat(db)["config_error"], 12, "the refused edit", alive)
        polls = feed_server.count("/a.xml")
        wait_until(lambda: feed_server.count("/a.xml") >= polls + 2, 8, "a to be polled", alive)

        # Timeline (tick 1 s; no wait is shorter than 1 s, so `every: 1s` means a poll every
        # other tick): a good source is polled at 0, 2, 4, ... s; the failing one at 0, 2-3,
        # 6-8, then not before 14 s.  In (t0 + 3.5, t0 + 13.5] that is 5 polls of each good
        # source against 1 of the failing one (it would be 5 too without backoff).
        end = t0 + 13.5
        wait_until(lambda: time.time() > end + 0.5, 20, "the measuring window to pass", alive)
        assert_backed_off(feed_server, t0, t0 + 3.5, end)
        assert busy_server.count("/busy.xml") == 1  # Retry-After: 120

        # fixed, with the good sources slowed to every minute; once each has been polled
        # under the new interval, it is not due for most of a minute
        slow = [entry(k, url(f"/{k}.xml"), every="1m") for k in ("a", "b")]
        write(sources, sources_text([*slow, *four[2:], late]))

        def slowed() -> bool:
            rows = status(db)
            soon = datetime.now(UTC) + timedelta(seconds=40)
            return heartbeat(db)["config_error"] is None and all(
                rows[k]["next_due_at"] > soon for k in ("a", "b")
            )

        wait_until(slowed, 15, "a and b to be polled under the 1-minute interval", alive)
        owner = heartbeat(db)["owner"]
        assert proc.terminate() == 0, proc.output
        assert heartbeat(db)["stopped_at"] is not None
        assert "scheduler stopped" in proc.output
        assert re.search(r"ingest\.poll: a status=(200|304) ", proc.output)  # one line per poll
        assert "still running the last good configuration" in proc.output
        before = {k: count(f"/{k}.xml") for k in ("a", "b", "late", "busy")}

    # restarted at once: the schedule lives in the database, nothing is refetched early
    with Store.open(sqlite_url) as db, scheduler_process(log, sources, sqlite_url) as proc:
        wait_until(lambda: restarted(db, owner, proc), 15, "the restarted scheduler to tick")
        time.sleep(2.5)  # more than two ticks of the new process
        after = {k: count(f"/{k}.xml") for k in before}
        assert after == before, (before, after)
        assert proc.terminate() == 0, proc.output


def test_scheduler_process_on_postgresql(
    feed_server: FeedServer, busy_server: FeedServer, tmp_path: Path, pg_url: str
) -> None:
    serve_good_and_failing(feed_server, "a")
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([
        entry("a", feed_server.url("/a.xml"), every="1m"),
        entry("err", feed_server.url("/err.xml")),
        entry("busy", busy_server.url("/busy.xml")),
    ]))  # fmt: skip
    log = tmp_path / "scheduler.log"
    json_logs = ("--log-format", "json")
    with Store.open(pg_url) as db:
        with scheduler_process(log, sources, pg_url, *json_logs) as proc:
            wait_until(lambda: stored(db, "a") and feed_server.count("/err.xml") >= 2, 15,
                       "a stored and err retried", proc.running)  # fmt: skip
            owner = heartbeat(db)["owner"]
            assert proc.terminate() == 0, proc.output
            assert heartbeat(db)["stopped_at"] is not None
            lines = [json.loads(x) for x in proc.output.splitlines()]  # every line is JSON
            polls = [x for x in lines if x["logger"] == "ingest.poll"]
            [a_poll] = [x for x in polls if x["source"] == "a"]  # one line per poll
            assert (a_poll["status"], a_poll["new"], a_poll["entries"]) == (200, 3, 3), a_poll
            assert sum(x["source"] == "err" for x in polls) >= 2
            before = {"a": feed_server.count("/a.xml"), "busy": busy_server.count("/busy.xml")}
        assert before == {"a": 1, "busy": 1}
        with scheduler_process(log, sources, pg_url, *json_logs) as proc:
            wait_until(lambda: restarted(db, owner, proc), 15, "the restarted scheduler")
            time.sleep(2.5)
            after = {"a": feed_server.count("/a.xml"), "busy": busy_server.count("/busy.xml")}
            assert after == before
            assert proc.terminate() == 0, proc.output


def test_a_restarted_scheduler_takes_over_the_leases_of_a_dead_process(
    feed_server: FeedServer, tmp_path: Path, sqlite_url: str
) -> None:
    """A scheduler killed mid-poll cannot free its leases; the next start on this host does."""
    import socket

    feed_server.put("/a.xml", rss("a"), cache_control=None)
    sources = tmp_path / "sources.yaml"
    write(sources, sources_text([entry("a", feed_server.url("/a.xml"))]))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    owner = f"scheduler@{socket.gethostname()}:{dead}:abcdef"
    with Store.open(sqlite_url) as store:
        store.sync_sources(load_config(str(sources)).sources, datetime.now(UTC))
        assert store.acquire_leases(["a"], owner, datetime.now(UTC), 3600) == {"a"}
    assert once(sources, sqlite_url) == 0
    assert feed_server.count("/a.xml") == 1  # polled now, not an hour later
    with Store.open(sqlite_url) as store:
        row = status(store)["a"]
        assert row["lease_owner"] is None
        # once the source is due again, a live process's lease is still respected
        time.sleep(max(0.0, (row["next_due_at"] - datetime.now(UTC)).total_seconds()) + 0.3)
        live = f"scheduler@{socket.gethostname()}:{os.getppid()}:abcdef"
        assert store.acquire_leases(["a"], live, datetime.now(UTC), 3600) == {"a"}
    assert once(sources, sqlite_url) == 0
    assert feed_server.count("/a.xml") == 1
