"""Distributed mode: `ingest dispatch` and `ingest worker` processes on procrastinate.

Real PostgreSQL (a private database from ``pg_url``; skipped with a reason
without one) and the feedlab corpus served over loopback with 40 ms of
latency.  A dispatcher and three workers must store exactly the stories
feedlab says the corpus holds, then exactly the new ones of round 1; a
worker SIGKILLed mid-run must change nothing in the counts (its jobs are
retried by procrastinate's stalled-job recovery, and the retry takes over
the job's own lease); and no source may ever be polled twice at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedlab_helpers import Lab, ingest, scalar, start_logged, stop_all, wait_for
from ingest.model import CuratedItem, Rule, Settings, Source
from ingest.store.configs import (
    settings_from_json,
    settings_json,
    source_from_json,
    source_json,
)

FEEDS = 300
DEADLINE = 40.0  # seconds any one stage may take


def test_source_and_settings_survive_the_json_round_trip() -> None:
    when = datetime(2026, 3, 12, 14, 15, tzinfo=UTC)
    source = Source(
        key="k", name="K", url="https://example.org/", kind="page", include=("a", "b"),
        select=(("item", "li"), ("title", "a")), max_age=86400.0, line=12,
        items=(CuratedItem("T", "https://example.org/t", date=when, line=14),),
    )  # fmt: skip
    back = source_from_json(source_json(source))
    assert back == Source(**{**_fields(source), "line": 0, "items": (
        CuratedItem("T", "https://example.org/t", date=when),)})  # fmt: skip
    assert source_json(back) == source_json(source)  # moving a source in the file is no change
    settings = Settings(concurrency=3, allow_networks=("10.0.0.0/8",), jitter=0.0)
    assert settings_from_json(settings_json(settings)) == settings


def test_a_source_s_text_is_the_text_asdict_gave() -> None:
    """The stored text is compared with each start's: a new way of writing it must write the
    same text, or every source would look edited once."""
    when = datetime(2026, 3, 12, 14, 15, tzinfo=UTC)
    source = Source(
        key="k", name="K", url="https://example.org/", kind="curated", include=("a",),
        exclude=("b", "c"), select=(("item", "li"),), headers=(("X-A", "${A}"),),
        rules=(Rule("drop", (("title", "x"),)),), strip_params=("utm_source",), line=3,
        items=(CuratedItem("T", "https://example.org/t", date=when, summary="s", line=4),
               CuratedItem("U", "https://example.org/u", line=5)),
    )  # fmt: skip
    plain = dataclasses.replace(
        source, line=0, items=tuple(dataclasses.replace(i, line=0) for i in source.items)
    )
    data = dataclasses.asdict(plain)
    data.pop("line")
    for item in data["items"]:
        item.pop("line")
    expected = json.dumps(
        data, sort_keys=True, separators=(",", ":"), default=lambda d: d.isoformat()
    )
    assert source_json(source) == expected


def _fields(source: Source) -> dict[str, object]:
    return {name: getattr(source, name) for name in source.__dataclass_fields__}


def _wait_for(what: str, check: Callable[[], bool], logs: list[Path]) -> None:
    wait_for(what, check, logs, DEADLINE, _diagnosis)


_DB: list[str] = []


def _diagnosis() -> str:
    if not _DB:
        return ""
    engine = create_engine(_DB[0])
    try:
        with engine.connect() as c:
            rows = c.execute(text(
                "SELECT key, last_status, last_success_at, lease_owner, next_due_at, etag, "
                "last_modified FROM sources ORDER BY last_success_at LIMIT 5"
            )).all()  # fmt: skip
            jobs = c.execute(text(
                "SELECT status, count(*) FROM procrastinate_jobs GROUP BY 1"
            )).all()  # fmt: skip
            n = c.execute(text("SELECT count(*) FROM items")).scalar()
    finally:
        engine.dispose()
    return f"items={n} jobs={jobs}\n" + "\n".join(map(str, rows))


def _overlapping_polls(url: str) -> list[str]:
    """Sources with two polls (the fetches log) whose time intervals overlap."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(text(
                "SELECT source_key, started_at, duration_ms FROM fetches "
                "ORDER BY source_key, started_at"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    bad, last = [], {}
    for key, started, ms in rows:
        if key in last and started < last[key]:
            bad.append(key)
        last[key] = started + timedelta(milliseconds=ms)
    return bad


@pytest.mark.postgres
@pytest.mark.slow
def test_dispatcher_and_three_workers_store_each_story_once_despite_a_kill(
    lab: Lab, pg_url: str, tmp_path: Path
) -> None:
    _DB[:] = [pg_url]
    lab.serve(delay_ms=40)
    expected = lab.gen(feeds=FEEDS, items=25)
    sources = tmp_path / "sources.yaml"
    generated = (lab.root / "sources.yaml").read_text()
    sources.write_text(
        "settings:\n  respect_max_age: false\n  jitter: 0\ndefaults:\n  every: 3s\n" + generated
    )
    db = ["--db", pg_url]
    logs = [tmp_path / f"{name}.log" for name in ("dispatch", "w0", "w1", "w2")]
    procs = [
        start_logged(logs[0], "dispatch", "--sources", str(sources), *db, "--interval", "0.5s",
               "--stalled-after", "3s"),
        *(start_logged(p, "worker", *db, "--concurrency", "8", "--heartbeat", "1s")
          for p in logs[1:]),
    ]  # fmt: skip
    try:
        # kill one worker while it is working: some polls done, most still to come
        _wait_for("the first polls", lambda: scalar(pg_url, "SELECT count(*) FROM fetches") >= 10,
                  logs)  # fmt: skip
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=10)

        def count(sql: str) -> int:
            return scalar(pg_url, sql)

        _wait_for(
            "every source polled and every story stored",
            lambda: (
                count("SELECT count(*) FROM sources WHERE last_success_at IS NULL") == 0
                and count("SELECT count(*) FROM items") >= expected["unique_articles"]
            ),
            logs,
        )
        assert count("SELECT count(*) FROM items") == expected["unique_articles"]
        assert count("SELECT count(*) FROM item_sources") == expected["feed_entries"]

        time.sleep(1.1)  # feedlab's Last-Modified has one-second resolution
        round1 = lab.gen(feeds=FEEDS, items=25, rnd=1)
        assert round1["unique_articles"] > expected["unique_articles"]
        _wait_for(
            "round 1's new stories",
            lambda: count("SELECT count(*) FROM items") >= round1["unique_articles"],
            logs,
        )
        time.sleep(3.5)  # another poll of every source: still nothing twice
        assert count("SELECT count(*) FROM items") == round1["unique_articles"]
        assert count("SELECT count(*) FROM item_sources") == round1["feed_entries"]
        assert count("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'") == 0
        # the killed worker's jobs were handed back by the stalled-job recovery
        assert "belonged to a stalled worker" in logs[0].read_text()
    finally:
        stop_all(procs)
    assert [p.returncode for p in procs[2:]] == [0, 0], [p.read_text()[-2000:] for p in logs]
    assert lab.stats()["peak_concurrent_requests_for_one_path"] == 1
    assert _overlapping_polls(pg_url) == []
    status = ingest("status", *db)
    assert status.returncode == 0, status.stderr
    assert "queue: " in status.stdout


@pytest.mark.postgres
def test_dispatch_is_safe_to_run_redundantly(lab: Lab, pg_url: str) -> None:
    lab.gen(feeds=5, items=3)
    sources = str(lab.root / "sources.yaml")
    for _ in range(2):  # the second pass finds every job already queued
        done = ingest("dispatch", "--once", "--sources", sources, "--db", pg_url)
        assert done.returncode == 0, done.stderr
    assert scalar(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'") == 5
    assert scalar(pg_url, "SELECT count(*) FROM sources WHERE config IS NOT NULL") == 5
    assert scalar(pg_url, "SELECT count(*) FROM settings") == 1
    status = ingest("status", "--db", pg_url)
    assert "queue: 5 todo, 0 doing, 0 failed" in status.stdout


def test_workers_need_postgresql(tmp_path: Path) -> None:
    done = ingest("worker", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert done.returncode == 1
    assert "PostgreSQL" in done.stderr
    assert os.environ.get("INGEST_ALLOW_NETWORKS")  # set by conftest for the processes above


def test_sync_keeps_each_source_and_the_settings_for_workers_and_0004_downgrades(
    sqlite_url: str,
) -> None:
    from ingest.store import Store
    from store_helpers import migrate_to

    source = Source(key="a", name="A", url="https://example.org/feed", every=120.0, line=7)
    settings = Settings(respect_max_age=False, jitter=0.0)
    with Store.open(sqlite_url) as store:
        assert store.source("a") is None and store.settings() is None
        store.sync_sources([source], datetime.now(UTC), settings)
        assert store.source("a") == Source(**{**_fields(source), "line": 0})
        assert store.settings() == settings
        moved = Source(**{**_fields(source), "line": 30})  # moved in the file: no write
        assert store.sync_sources([moved], datetime.now(UTC), settings) == 0
    migrate_to(sqlite_url, "0003", down=True)
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as c:
            columns = [r[1] for r in c.execute(text("PRAGMA table_info(sources)"))]
            assert "config" not in columns and "key" in columns
    finally:
        engine.dispose()
    with Store.open(sqlite_url) as store:  # upgraded again on open
        assert store.source("a") is None  # synced again by the next dispatcher start


def test_service_names_match_what_ingest_health_reads() -> None:
    from ingest.service.distributed.dispatcher import DISPATCHER_NAME
    from ingest.service.scheduler import SERVICE_NAME

    assert (SERVICE_NAME, DISPATCHER_NAME) == ("scheduler", "dispatcher")  # as cli._health


@pytest.mark.postgres
def test_health_follows_the_dispatcher_heartbeat_and_a_refused_edit(
    lab: Lab, pg_url: str, tmp_path: Path
) -> None:
    """In distributed mode `ingest health` judges the dispatcher (alive, refused edit,
    stopped) and its workers (one alive; then none left)."""
    lab.gen(feeds=3, items=2)
    sources = tmp_path / "sources.yaml"
    good = (lab.root / "sources.yaml").read_text()
    sources.write_text(good)
    before = ingest("health", "--db", pg_url, "--stale", "0")
    # a read command creates nothing: before any process ran, the database is not ingest's
    assert before.returncode == 1 and "has no ingest tables" in before.stderr
    log, wlog = tmp_path / "dispatch.log", tmp_path / "worker.log"
    proc = start_logged(log, "dispatch", "--sources", str(sources), "--db", pg_url,
                  "--interval", "0.2s")  # fmt: skip
    worker = start_logged(wlog, "worker", "--db", pg_url, "--heartbeat", "1s")
    try:

        def healthy() -> bool:
            done = ingest("health", "--db", pg_url, "--stale", "0")
            return done.returncode == 0 and "healthy: the dispatcher (dispatch@" in done.stdout

        _wait_for("a healthy dispatcher heartbeat", healthy, [log, wlog])
        assert "1 worker(s) alive: worker@" in ingest("health", "--db", pg_url).stdout
        worker.send_signal(signal.SIGTERM)  # stopped cleanly: not stale, but none is left
        assert worker.wait(timeout=DEADLINE) == 0, wlog.read_text()[-2000:]
        alone = ingest("health", "--db", pg_url, "--stale", "0")
        assert alone.returncode == 1 and "no worker has left a heartbeat" in alone.stdout
        sources.write_text(good + "  - key: broken\n    nmae: typo\n")

        def refused() -> bool:
            done = ingest("health", "--db", pg_url, "--stale", "0", "--format", "json")
            verdict = json.loads(done.stdout)
            return verdict["service"] == "dispatcher" and any(
                "sources.yaml was edited and refused" in p for p in verdict["problems"]
            )

        _wait_for("the refused edit to show in health", refused, [log])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0, log.read_text()[-2000:]
    finally:
        for p in (proc, worker):
            if p.poll() is None:
                p.kill()
                p.wait()
    after = ingest("health", "--db", pg_url, "--stale", "0")
    assert after.returncode == 1 and "the dispatcher (dispatch@" in after.stdout
    assert "stopped at" in after.stdout, after.stdout
