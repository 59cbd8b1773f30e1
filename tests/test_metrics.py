"""Prometheus metrics and the health of every process, over real processes and sockets.

`scheduler.py --metrics-port`, `ingest serve` (`/metrics`: what the database knows),
and in distributed mode `ingest dispatch` and two `ingest worker`s sharing a
`PROMETHEUS_MULTIPROC_DIR` run as real processes against a loopback FeedServer and a
real SQLite file or PostgreSQL database; every scrape is parsed with prometheus-client's
own parser.  The pure parts (outcomes, lags, buckets, due counts, process states) are
checked on plain values first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from feedlab_helpers import INGEST, ROOT, free_port
from feedserver import FeedServer, dated_rss
from ingest.model import Item, Plan, SourceReport, story_lags
from ingest.runtime.metrics import outcome
from ingest.service.health import WORKER_FORGET, assess, process_states
from ingest.store import Store
from ingest.web.metrics import lag_buckets, waiting

DEADLINE = 60.0
T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- pure parts --------------------------------------------------------------------------


def test_outcome_names_each_way_a_poll_ends() -> None:
    ok = SourceReport("a", ok=True, status=200)
    assert outcome(ok) == "ok"
    assert outcome(SourceReport("a", ok=True, status=304, not_modified=True)) == "not_modified"
    assert outcome(SourceReport("a", ok=True, status=200, unchanged=True)) == "unchanged"
    assert outcome(SourceReport("a", ok=False, error="x", error_kind="timeout")) == "timeout"
    assert outcome(SourceReport("a", ok=False, error="x")) == "error"


def test_story_lags_count_only_dates_of_their_own_and_never_go_negative() -> None:
    seen = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def item(key: str, minutes: float, how: Any) -> Item:
        return Item("s", key, f"http://x/{key}", f"http://x/{key}", key, "",
                    seen - timedelta(minutes=minutes), how)  # fmt: skip

    new = (item("a", 3, "published"), item("b", 5, "updated"), item("c", -1, "published"))
    assert story_lags(new, seen) == (180.0, 0.0)
    report = SourceReport("s", ok=True).with_counts(Plan(new=new), 3, seen)
    assert report.new == 3 and report.lags == (180.0, 0.0)
    assert SourceReport("s", ok=True).with_counts(Plan(new=new), 3).lags == ()


def test_lag_buckets_are_cumulative_and_end_at_inf() -> None:
    buckets = dict(lag_buckets([10.0, 60.0, 61.0, 100000.0]))
    assert buckets["15"] == 1 and buckets["60"] == 2 and buckets["120"] == 3
    assert buckets["86400"] == 3 and buckets["+Inf"] == 4
    assert dict(lag_buckets([]))["+Inf"] == 0


def test_waiting_counts_due_unleased_sources_and_live_leases() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    base = {"enabled": True, "in_config": True, "disabled_reason": None, "lease_owner": None,
            "lease_until": None, "next_due_at": now - timedelta(seconds=5),
            "retry_after_until": None}  # fmt: skip
    rows = [
        base,
        {**base, "next_due_at": None},  # never polled: due
        {**base, "next_due_at": now + timedelta(minutes=5)},  # not yet
        {**base, "lease_owner": "x", "lease_until": now + timedelta(seconds=30)},  # polling
        {**base, "lease_owner": "x", "lease_until": now - timedelta(seconds=1)},  # expired: due
        {**base, "disabled_reason": "gone"},
        {**base, "retry_after_until": now + timedelta(hours=1)},  # asked us to wait
    ]
    assert waiting(rows, now) == (3, 1)


def test_workers_are_judged_alive_stale_stopped_or_forgotten() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def row(name: str, ago: float, stopped: bool = False) -> dict[str, Any]:
        return {"name": name, "owner": name, "last_tick_at": now - timedelta(seconds=ago),
                "stopped_at": now if stopped else None}  # fmt: skip

    dispatcher = row("dispatcher", 2)
    workers = [row("worker@h:1:a", 3), row("worker@h:2:b", 300), row("worker@h:3:c", 9, True),
               row("worker@h:4:d", WORKER_FORGET + 1)]  # fmt: skip
    states = {p.name: p.state for p in process_states([dispatcher, *workers], now, 60)}
    assert states == {"dispatcher": "alive", "worker@h:1:a": "alive",
                      "worker@h:2:b": "stale", "worker@h:3:c": "stopped"}  # fmt: skip
    verdict = assess(dispatcher, [], now, name="dispatcher", workers=workers)
    assert not verdict.ok and verdict.stale_processes == ("worker@h:2:b",)
    assert "the worker worker@h:2:b last beat 300s ago" in verdict.problems[0]
    alone = assess(dispatcher, [], now, name="dispatcher", workers=[workers[2]])
    assert not alone.ok and "no worker has left a heartbeat" in alone.problems[0]
    assert assess(dispatcher, [], now, name="dispatcher", workers=workers[:1]).ok
    # the scheduler has no workers to judge
    assert assess(row("scheduler", 1), [], now, workers=workers).ok


# -- helpers -----------------------------------------------------------------------------


def scrape(url: str) -> Samples:
    """Every sample at `url`, parsed by prometheus-client: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def wait_for(what: str, check: Callable[[], T], logs: list[Path]) -> T:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            found = check()
        except OSError:  # not listening yet
            found = None
        if found:
            return found
        time.sleep(0.2)
    tail = "\n".join(p.read_text()[-3000:] for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tail}")


@contextmanager
def started(log: Path, *argv: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A real process (its output in `log`), SIGTERMed (then killed) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})})  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the scheduler and `ingest serve` ----------------------------------------------------


@pytest.mark.slow
def test_scheduler_and_serve_metrics_agree_on_polls_failures_and_freshness(
    feed_server: FeedServer, db_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old = [now - timedelta(hours=h) for h in (1, 2, 3)]  # the back catalogue: no lag counted
    feed_server.put("/a.xml", dated_rss("a", old))
    feed_server.put("/b.xml", "boom", status=500)
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "settings:\n  respect_max_age: false\n  jitter: 0\nsources:\n"
        f"  - {{key: a, name: A, url: '{feed_server.url('/a.xml')}', every: 1s}}\n"
        f"  - {{key: b, name: B, url: '{feed_server.url('/b.xml')}', every: 1h}}\n"
    )
    port, web = free_port(), free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    logs = [tmp_path / "scheduler.log", tmp_path / "serve.log"]
    with started(logs[0], sys.executable, "scheduler.py", "--sources", str(sources),
                 "--db", db_url, "--metrics-port", str(port)):  # fmt: skip

        def first_polls() -> Samples | None:
            s = scrape(metrics)
            a_ok = value(s, "ingest_polls_total", source="a", outcome="ok")
            b_failed = value(s, "ingest_polls_total", source="b", outcome="http")
            return s if a_ok and b_failed else None

        s = wait_for("a stored and b failed", first_polls, logs)
        assert value(s, "ingest_stories_stored_total", source="a", change="new") == 3
        assert value(s, "ingest_source_consecutive_failures", source="b") == 1
        assert value(s, "ingest_source_consecutive_failures", source="a") == 0
        assert (value(s, "ingest_source_last_success_timestamp_seconds", source="a") or 0) > 0
        assert value(s, "ingest_source_last_success_timestamp_seconds", source="b") is None
        assert (value(s, "ingest_last_tick_timestamp_seconds") or 0) > 0
        assert value(s, "ingest_tick_lag_seconds") is not None
        assert value(s, "ingest_sources_due") is not None
        assert value(s, "ingest_leases_held") is not None
        assert value(s, "ingest_story_lag_seconds_count") == 0  # the first poll is left out
        assert total(s, "ingest_poll_duration_seconds_count") >= 2

        # a new story, published after the source was added: its lag is measured
        time.sleep(1.1)  # a pubDate has whole seconds: later than the source's creation
        feed_server.put("/a.xml", dated_rss("a", [*old, datetime.now(UTC)]))

        def fresh_story() -> Samples | None:
            s = scrape(metrics)
            done = value(s, "ingest_stories_stored_total", source="a", change="new") == 4
            quiet = value(s, "ingest_polls_total", source="a", outcome="not_modified")
            return s if done and quiet else None

        s = wait_for("the new story stored, then a 304", fresh_story, logs)
        assert value(s, "ingest_story_lag_seconds_count") == 1
        lag = value(s, "ingest_story_lag_seconds_sum")
        assert lag is not None and lag >= 0
        assert value(s, "ingest_story_lag_seconds_bucket", le="+Inf") == 1

        with started(logs[1], str(INGEST), "serve", "--db", db_url, "--port", str(web)):
            d = wait_for("ingest serve", lambda: scrape(f"http://127.0.0.1:{web}/metrics"), logs)
        assert value(d, "ingest_source_consecutive_failures", source="b") == 1
        assert value(d, "ingest_source_consecutive_failures", source="a") == 0
        assert value(d, "ingest_source_last_success_timestamp_seconds", source="b") is None
        assert (value(d, "ingest_source_failing_since_timestamp_seconds", source="b") or 0) > 0
        assert value(d, "ingest_source_failing_since_timestamp_seconds", source="a") is None
        assert value(d, "ingest_source_stories", source="a") == 4
        # the database's view of the same story's lag: the very same number
        assert value(d, "ingest_stored_story_lag_seconds_gcount") == 1
        assert value(d, "ingest_stored_story_lag_seconds_gsum") == pytest.approx(lag, abs=1e-3)
        assert value(d, "ingest_service_stale", service="scheduler", role="scheduler") == 0
        assert value(d, "ingest_service_stopped", service="scheduler", role="scheduler") == 0
        assert value(d, "ingest_sources_due") is not None
    with Store.open(db_url) as store:
        rows = {r["key"]: r for r in store.status()}
        assert rows["a"]["median_lag_seconds"] == pytest.approx(lag, abs=1e-3)
        assert rows["b"]["median_lag_seconds"] is None
        # a worker that went silent five minutes ago, and the stopped scheduler
        ago = datetime.now(UTC) - timedelta(minutes=5)
        store.heartbeat("worker@elsewhere:7:abc", "worker@elsewhere:7:abc", ago,
                        started_at=ago, config_path=None, config_error=None)  # fmt: skip
    with started(logs[1], str(INGEST), "serve", "--db", db_url, "--port", str(web)):
        d = wait_for("ingest serve", lambda: scrape(f"http://127.0.0.1:{web}/metrics"), logs)
    worker = {"service": "worker@elsewhere:7:abc", "role": "worker"}
    assert value(d, "ingest_service_stale", **worker) == 1
    assert value(d, "ingest_service_stopped", service="scheduler", role="scheduler") == 1
    status = subprocess.run([str(INGEST), "status", "--db", db_url], capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert "lag p50" in status.stdout


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path, sqlite_url: str) -> None:
    import socket

    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {key: a, name: A, url: 'http://127.0.0.1:9/a.xml'}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "scheduler.py", "--sources", str(sources), "--db", sqlite_url,
             "--metrics-port", str(port), "--once"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


# -- distributed mode --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_share_their_counts_and_health_names_the_stale_one(
    feed_server: FeedServer, pg_url: str, tmp_path: Path
) -> None:
    keys = [f"s{i}" for i in range(6)]
    lines = []
    for key in keys:
        feed_server.put(f"/{key}.xml", dated_rss(key, [datetime.now(UTC) - timedelta(hours=1)]))
        url = feed_server.url(f"/{key}.xml")
        lines.append(f"  - {{key: {key}, name: {key}, url: '{url}', every: 1h}}\n")
    sources = tmp_path / "sources.yaml"
    sources.write_text("settings:\n  respect_max_age: false\nsources:\n" + "".join(lines))
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    dport, wport = free_port(), free_port()
    db = ["--db", pg_url]
    logs = [tmp_path / f"{n}.log" for n in ("dispatch", "w1", "w2")]

    def health() -> dict[str, Any]:
        done = subprocess.run(
            [str(INGEST), "health", *db, "--stale", "0", "--max-silence", "8s", "--format",
             "json"], capture_output=True, text=True,
        )  # fmt: skip
        verdict: dict[str, Any] = json.loads(done.stdout)
        assert (done.returncode == 0) == verdict["ok"]
        return verdict

    with (
        started(logs[0], str(INGEST), "dispatch", "--sources", str(sources), *db,
                "--interval", "0.3s", "--metrics-port", str(dport)),
        started(logs[1], str(INGEST), "worker", *db, "--heartbeat", "1s", env=env) as lone,
    ):  # fmt: skip
        with Store.open(pg_url) as store:

            def all_polled() -> bool:
                return all(r["last_success_at"] for r in store.status()) and len(
                    store.status()
                ) == len(keys)

            wait_for("every source polled by the first worker", all_polled, logs)
        # the dispatcher records its tick when the tick ends, which may be after the
        # worker has polled every source it queued
        d = wait_for("the dispatcher's first tick",
                     lambda: (m := scrape(f"http://127.0.0.1:{dport}/metrics"))
                     and (value(m, "ingest_last_tick_timestamp_seconds") or 0) > 0 and m,
                     logs)  # fmt: skip
        assert value(d, "ingest_sources_due") is not None
        # the second worker serves the counts of both (the first did every poll)
        with started(logs[2], str(INGEST), "worker", *db, "--heartbeat", "1s",
                     "--metrics-port", str(wport), env=env):  # fmt: skip
            w = wait_for("the second worker's metrics",
                         lambda: scrape(f"http://127.0.0.1:{wport}/metrics"), logs)  # fmt: skip
            assert total(w, "ingest_polls_total") == len(keys)
            assert value(w, "ingest_last_tick_timestamp_seconds") is None  # workers do not tick
            for key in keys:
                assert value(w, "ingest_polls_total", source=key, outcome="ok") == 1
                assert value(w, "ingest_stories_stored_total", source=key, change="new") == 1
            verdict = wait_for("two live workers",
                               lambda: (v := health())["ok"] and len(v["workers"]) == 2 and v,
                               logs)  # fmt: skip
            assert {x["state"] for x in verdict["workers"]} == {"alive"}
            lone.send_signal(signal.SIGKILL)
            lone.wait(timeout=10)
            silent = f":{lone.pid}:"

            def named_stale() -> dict[str, Any] | None:
                v = health()
                return v if any(silent in n for n in v["stale_processes"]) else None

            verdict = wait_for("the killed worker named as stale", named_stale, logs)
            assert not verdict["ok"]
            assert verdict["stale_processes"] == [
                x["name"] for x in verdict["workers"] if x["state"] == "stale"
            ]
            assert any("the worker worker@" in p and silent in p for p in verdict["problems"])
