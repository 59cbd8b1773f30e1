"""store_process.py: the one-shot run's database in a child process, on SQLite and PostgreSQL.

What a pipeline asks of a `StoreProcess` must come back as it would from the
`Store` itself; failures in the child (a database that cannot be opened, a
child that died) must reach the caller as `StoreError`, never as a hang; and
the `ingest run` process itself must never import SQLAlchemy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from feedserver import FeedServer
from ingest.errors import StoreError
from ingest.model import Fetched, NextPoll, Plan, PollRecord, Source, SourceReport
from ingest.runtime.store_process import StoreProcess
from ingest.store import Store
from store_helpers import T0, count, item, ok

A = Source(key="a", name="Source A", url="http://127.0.0.1:1/a.xml", section="latest")
B = Source(key="b", name="Source B", url="http://127.0.0.1:1/b.xml", section="blogs")


def test_calls_come_back_as_the_store_answers_them(db_url: str) -> None:
    with StoreProcess(db_url) as remote:
        assert remote.sync_sources([A, B], T0) == 2
        never = remote.fetch_states([A, B])
        with Store.open(db_url) as store:
            assert never == store.fetch_states([A, B])  # as the Store says
        assert all(s.etag is None and s.body_hash is None for s in never.values())
        assert remote.acquire_leases(["a", "b"], "run@h:1:x", T0, 60) == {"a", "b"}
        assert remote.acquire_leases(["a"], "other@h:2:y", T0, 60) == set()
        assert remote.lease_owners(["a", "b"]) == {"a": "run@h:1:x", "b": "run@h:1:x"}

        fetched = Fetched("a", A.url, A.url, 200, etag='"v1"', body_hash="h")
        record = PollRecord(A, ok(A), fetched, T0, NextPoll(T0 + timedelta(minutes=30)))
        plan = remote.save_poll(record, [item(A, 1), item(A, 2)])
        assert [i.entry_key for i in plan.new] == ["id:a-1", "id:a-2"]
        plans = remote.save_polls([(record, [item(A, 1), item(A, 2)])])
        assert plans[0].same == 2 and plans[0].new == ()
        remote.record_polls(
            [PollRecord(B, SourceReport(source_key="b", ok=False, error="boom"), None, T0,
                        NextPoll(T0 + timedelta(minutes=5)))]
        )  # fmt: skip
        assert remote.cooldowns_in_force(T0) == {}  # every forwarded call answers
        remote.release_leases(["a", "b"], "run@h:1:x")
        assert remote.lease_owners(["a", "b"]) == {}
        assert remote.fetch_states([A])["a"].etag == '"v1"'  # what save_poll kept
    with Store.open(db_url) as store:  # what the child wrote is in the database
        assert count(store, "items") == 2
        assert count(store, "fetches") == 3
        row = store.status()
        assert {r["key"]: r["last_error"] for r in row}["b"] == "boom"


def test_plans_come_back_as_the_stores_made_of_the_callers_own_items(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The child answers save_poll(s) with positions in the batch the parent sent, and
    the parent rebuilds each Plan from its own Items: the same Plan the Store makes."""
    record = PollRecord(A, ok(A), None, T0, NextPoll(T0 + timedelta(minutes=30)))
    first = [item(A, 1), item(A, 2), item(A, 3)]
    # the next poll: one changed, one repeated in the batch, one new, one the same
    second = [item(A, 1), item(A, 2, title="Story 2, corrected", content_hash="h2b"),
              item(A, 4), item(A, 4, title="again"), item(A, 3)]  # fmt: skip
    other = tmp_path / "reference.sqlite3"
    with StoreProcess(sqlite_url) as remote, Store.open(f"sqlite:///{other}") as store:
        assert remote.sync_sources([A], T0) == store.sync_sources([A], T0) == 1
        for batches in ([first], [second, [item(A, 5)]]):
            polls = [(record, batch) for batch in batches]
            got, want = remote.save_polls(polls), store.save_polls(polls)
            assert got == want
            for plan, batch in zip(got, batches, strict=True):  # the caller's own objects
                assert all(any(i is b for b in batch) for i in plan.new + plan.changed)
        assert got[0].changed and got[0].new and got[0].same and got[0].duplicates_in_batch
        assert remote.save_poll(record, [item(A, 6)]) == store.save_poll(record, [item(A, 6)])
        assert remote.save_poll(record, None) == Plan()


def test_open_soon_opens_the_database_before_the_first_call(tmp_path: Path) -> None:
    path = tmp_path / "soon.sqlite3"
    with StoreProcess(f"sqlite:///{path}") as remote:
        remote.open_soon()
        remote.open_soon()  # once is enough: a second one sends nothing
        for _ in range(200):  # the child creates it on its own, no call made
            if path.exists():
                break
            time.sleep(0.05)
        assert path.exists()
        assert remote.sync_sources([A], T0) == 1  # the open's answer is read first
        assert remote.fetch_states([A])["a"].etag is None  # and the calls go on in turn


def test_the_child_answers_exactly_the_calls_a_pipeline_makes() -> None:
    from ingest.runtime.recorder import PollStore
    from ingest.runtime.store_process import _CALLS

    wanted = {name for name in vars(PollStore) if not name.startswith("_")}
    assert wanted == _CALLS  # open_soon and close are the parent's own, never forwarded


def test_a_plan_whose_items_are_not_the_batchs_crosses_whole() -> None:
    from ingest.runtime.store_process import _plan, _positions

    batch = [item(A, 1), item(A, 2)]
    plan = Plan(new=(batch[1],), changed=(batch[0],), same=3, duplicates_in_batch=1, stories=1)
    assert _positions(plan, batch) == ((1,), (0,), 3, 1, 1)
    assert _plan(_positions(plan, batch), batch) == plan
    foreign = Plan(new=(item(A, 9),))
    assert _positions(foreign, batch) is foreign  # not the batch's: sent as it is
    assert _plan(foreign, batch) is foreign


@pytest.mark.parametrize("soon", [False, True], ids=["first-call", "open-soon"])
def test_a_database_that_cannot_be_opened_fails_each_call_with_its_message(
    tmp_path: Path, soon: bool
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with StoreProcess(f"sqlite:///{blocker}/db.sqlite3") as remote:
        if soon:  # opened ahead of the first call: its failure is still that call's error
            remote.open_soon()
        with pytest.raises(StoreError, match=r"cannot use database|unable to open|Not a directory"):
            remote.sync_sources([A], T0)
        with pytest.raises(StoreError):
            remote.fetch_states([A])


def test_a_dead_child_is_a_store_error_not_a_hang(sqlite_url: str) -> None:
    remote = StoreProcess(sqlite_url)
    try:
        assert remote.sync_sources([A], T0) == 1
        assert remote.pid is not None
        os.kill(remote.pid, signal.SIGKILL)
        with pytest.raises(StoreError, match="database process stopped"):
            remote.fetch_states([A])
    finally:
        remote.close()
    with pytest.raises(StoreError, match="closed"):
        remote.fetch_states([A])


def test_close_ends_the_child(sqlite_url: str) -> None:
    remote = StoreProcess(sqlite_url)
    remote.sync_sources([A], T0)
    pid = remote.pid
    remote.close()
    remote.close()  # twice is harmless
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped


def test_ingest_run_never_imports_sqlalchemy_itself(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.put(
        "/f.xml",
        b'<rss version="2.0"><channel><title>F</title><item><title>One</title>'
        b"<link>https://example.org/1</link><guid>1</guid></item></channel></rss>",
    )
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - key: f\n    name: F\n    url: {feed_server.url('/f.xml')}\n")
    db = tmp_path / "run.sqlite3"
    code = (
        "import sys\n"
        "from ingest.cli.main import main\n"
        f"rc = main(['run', '--sources', {str(sources)!r}, '--db', 'sqlite:///{db}'])\n"
        "assert rc == 0, rc\n"
        "assert 'sqlalchemy' not in sys.modules, 'the run process imported SQLAlchemy'\n"
    )
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Store.open(f"sqlite:///{db}") as store:
        assert count(store, "items") == 1


def test_a_sqlite_store_never_imports_the_postgresql_dialect(tmp_path: Path) -> None:
    """The PostgreSQL dialect package imports every driver's module: a SQLite run's
    database process (which opens the store, syncs, reads states, records and saves
    polls, lists stories) must not pay for it."""
    code = (
        "import sys\n"
        "from datetime import timedelta\n"
        "from ingest.store import Store\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from store_helpers import T0, item, ok\n"
        "from ingest.model import Fetched, NextPoll, PollRecord, Source\n"
        "a = Source(key='a', name='A', url='http://127.0.0.1:1/a.xml')\n"
        "with Store.open(sys.argv[2]) as s:\n"
        "    s.sync_sources([a], T0)\n"
        "    s.fetch_states([a])\n"
        "    f = Fetched('a', a.url, a.url, 200, etag='e', body_hash='h')\n"
        "    r = PollRecord(a, ok(a), f, T0, NextPoll(T0 + timedelta(minutes=5)))\n"
        "    s.save_polls([(r, [item(a, 1)])])\n"
        "    s.record_polls([r])\n"
        "    assert s.due(['a'], T0, 5) == [] and len(s.latest(limit=5)) == 1\n"
        "found = [m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgresql')]\n"
        "assert not found, found\n"
    )
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    here = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", code, here, url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_run_refused_for_its_sources_file_creates_no_database(tmp_path: Path) -> None:
    from ingest.cli.main import main

    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - key: f\n    name: F\n    url: not a url\n")
    db = tmp_path / "never.sqlite3"
    assert main(["run", "--sources", str(sources), "--db", f"sqlite:///{db}"]) == 2
    assert not db.exists()
