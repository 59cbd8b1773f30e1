"""`per_host_delay` shared through the database: requests of several processes to one host
keep the spacing together.

One job: show, on SQLite and PostgreSQL, that the store hands out a host's request slots
one `delay` apart whoever asks (two stores on one database, as two processes have), and,
over loopback HTTP, that two pipelines polling one host at the same time (one with the
`Store` in-process, as the scheduler and `ingest worker` have it, one through a
`StoreProcess`, as `ingest run` does) send their requests at least the delay apart, as the
test server's own clock sees them arrive.  The bound asserted is a lower bound on spacing
(behaviour), never a speed.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import Settings, Source, SourceReport
from ingest.stages.politeness import slot_after

DELAY = 0.8  # seconds between two requests to the host
# The delay spaces when requests leave; the server stamps when each one's head has been
# read, so the bound there is the delay less the difference of two requests' delivery over
# loopback (a new connection against a kept one, on a busy machine): allowed up to this
# much. Without the shared slots the two pipelines' requests arrive milliseconds apart.
DELIVERY = 0.2


def rss(n: int) -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>Story {n}</title><link>http://other.example/{n}</link></item>"
        "</channel></rss>"
    )


def test_a_slot_is_the_later_of_now_and_the_last_one_given() -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    assert slot_after(None, t0, 2.0) == (t0, t0 + timedelta(seconds=2))
    past = t0 - timedelta(seconds=9)
    assert slot_after(past, t0, 2.0) == (t0, t0 + timedelta(seconds=2))  # the host was idle
    ahead = t0 + timedelta(seconds=3)
    assert slot_after(ahead, t0, 2.0) == (ahead, ahead + timedelta(seconds=2))


def test_the_store_gives_out_one_slot_per_delay_across_processes(db_url: str) -> None:
    from ingest.store import Store

    t0 = datetime.now(UTC)
    with Store.open(db_url) as one, Store.open(db_url) as two:
        slots = [store.take_slot("feeds.example", t0, 2.0) for store in (one, two, one, two)]
        assert slots == [t0 + timedelta(seconds=2 * i) for i in range(4)]
        assert two.take_slot("other.example", t0, 2.0) == t0  # each host has its own
        later = t0 + timedelta(seconds=60)  # the host idle since: its slot is now
        assert one.take_slot("feeds.example", later, 2.0) == later


def test_two_pipelines_on_one_database_space_their_requests_to_a_host(db_url: str) -> None:
    from ingest.runtime.pipeline import run
    from ingest.runtime.store_process import StoreProcess
    from ingest.store import Store

    settings = Settings(per_host_delay=DELAY)
    with FeedServer() as server, FeedServer() as other:
        for n in range(6):
            server.put(f"/s{n}.xml", rss(n))
        other.put("/o.xml", rss(9))
        text = "sources:\n" + "".join(
            f"  - {{key: s{n}, name: s{n}, url: '{server.url(f'/s{n}.xml')}'}}\n"
            for n in range(6)
        ) + f"  - {{key: o, name: o, url: '{other.url('/o.xml')}'}}\n"  # fmt: skip
        sources = parse_config(text, "sources.yaml").sources
        halves = (sources[0:3], (*sources[3:6], sources[6]))
        reports: list[SourceReport] = []
        failures: list[BaseException] = []
        with StoreProcess(db_url) as remote, Store.open(db_url) as local:
            remote.sync_sources(sources, datetime.now(UTC))  # the schema, before both start
            start = threading.Barrier(2)

            def poll(store: Store | StoreProcess, half: tuple[Source, ...]) -> None:
                try:
                    start.wait()
                    reports.extend(run(half, store, settings))
                except BaseException as e:  # reported below, not lost in the thread
                    failures.append(e)

            threads = [
                threading.Thread(target=poll, args=(store, half))
                for store, half in zip((local, remote), halves, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        assert not failures, failures
        assert sorted(r.source_key for r in reports if r.ok) == ["o", *(f"s{n}" for n in range(6))]
        arrivals = sorted(r.time for r in server.requests)
        assert len(arrivals) == 6 and len(other.requests) == 1
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= DELAY - DELIVERY, gaps
