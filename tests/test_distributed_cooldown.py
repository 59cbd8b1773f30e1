"""Two `ingest worker` processes and `ingest dispatch` respect a host's 429 together.

One job: show end to end, with real processes on a real PostgreSQL database
(distributed mode needs it; skipped, saying so, without one) and loopback
servers, that once one worker has been answered 429 by a host, no worker
requests that host again until the cool-down (its Retry-After) ends, counted at
the server, while another host is polled as usual.  The worker that saw the
429 is paused (SIGSTOP) while the host's other sources are added, so every one
of their jobs runs in the other worker, which can only know of the cool-down
from the database; then both run again until the cool-down has ended and the
host is asked again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedlab_helpers import scalar, start_logged, stop_all, wait_for
from feedserver import FeedServer

COOL = 30  # seconds of Retry-After: long enough for the second phase on a busy machine
DEADLINE = 60.0  # seconds any one stage may take
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Story</title><link>http://other.example/1</link></item></channel></rss>"
)


def _wait_for(what: str, check: Callable[[], bool], logs: list[Path]) -> None:
    wait_for(what, check, logs, DEADLINE)


def _sources(busy: FeedServer, calm: FeedServer, n: int) -> str:
    lines = [f"  - {{key: calm, name: calm, url: '{calm.url('/calm.xml')}'}}\n"]
    lines += [
        f"  - {{key: busy{i}, name: busy{i}, url: '{busy.url(f'/busy{i}.xml')}'}}\n"
        for i in range(n)
    ]
    return (
        "settings:\n  jitter: 0\n  respect_max_age: false\ndefaults:\n  every: 1s\n"
        "sources:\n" + "".join(lines)
    )


def _cooldown_until(url: str) -> datetime:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            until: datetime = c.execute(text("SELECT until FROM host_cooldowns")).scalar_one()
    finally:
        engine.dispose()
    return until


@pytest.mark.postgres
@pytest.mark.slow
def test_no_worker_asks_a_host_again_until_its_429_cool_down_ends(
    pg_url: str, tmp_path: Path
) -> None:
    db = ["--db", pg_url]
    logs = [tmp_path / f"{name}.log" for name in ("w1", "w2", "dispatch")]
    sources = tmp_path / "sources.yaml"
    with FeedServer() as busy, FeedServer() as calm:
        for i in range(7):
            busy.error(f"/busy{i}.xml", 429, "slow down", retry_after=COOL)
        calm.put("/calm.xml", RSS)
        sources.write_text(_sources(busy, calm, 1))  # one source of the busy host, at first
        workers = [start_logged(log, "worker", *db, "--concurrency", "4", "--heartbeat", "1s")
                   for log in logs[:2]]  # fmt: skip
        procs = [*workers]
        try:
            _wait_for(
                "both workers",
                lambda: (
                    scalar(pg_url, "SELECT count(*) FROM services WHERE name LIKE 'worker@%'") == 2
                ),
                logs,
            )
            procs.append(start_logged(logs[2], "dispatch", "--sources", str(sources), *db,
                                "--interval", "0.2s"))  # fmt: skip

            # 1. one worker asks the busy host and is answered 429
            _wait_for("the 429", lambda: scalar(pg_url, "SELECT count(*) FROM host_cooldowns")
                      == 1, logs)  # fmt: skip
            assert busy.count() == 1
            until = _cooldown_until(pg_url)
            seer = next(
                w for w, log in zip(workers, logs, strict=False)
                if "busy0 failed status=429" in log.read_text()
            )  # fmt: skip
            other = next(w for w in workers if w is not seer)

            # 2. with that worker paused, the host's other sources come: all in the other
            os.kill(seer.pid, signal.SIGSTOP)
            try:
                sources.write_text(_sources(busy, calm, 7))
                _wait_for(
                    "the other worker to hold back the host's six new sources",
                    lambda: (
                        scalar(
                            pg_url,
                            "SELECT count(DISTINCT source_key) FROM fetches WHERE source_key "
                            "<> 'busy0' AND source_key LIKE 'busy%' AND error LIKE 'not polled:%'",
                        )
                        == 6
                    ),
                    logs,
                )
                assert busy.count() == 1  # nobody asked the host again
                held = "is cooling down until"
                assert held in logs[workers.index(other)].read_text()
                assert held not in logs[workers.index(seer)].read_text()
            finally:
                os.kill(seer.pid, signal.SIGCONT)

            # 3. both run again: the host is asked again once the cool-down has ended
            _wait_for("a request after the cool-down", lambda: busy.count() > 1, logs)
            arrivals = sorted(r.time for r in busy.requests)
            assert all(t >= until.timestamp() for t in arrivals[1:]), (until, arrivals)
            assert arrivals[0] < until.timestamp()
            meanwhile = [r.time for r in calm.requests if arrivals[0] < r.time < arrivals[1]]
            assert meanwhile, "the other host was polled as usual during the cool-down"
        finally:
            stop_all(procs)
    assert [p.returncode for p in procs] == [0, 0, 0], [p.read_text()[-2000:] for p in logs]
