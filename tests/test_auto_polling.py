"""`every: auto` end to end: a loopback FeedServer, a real SQLite file and PostgreSQL.

The scheduler (`Service`, once) and `ingest run` poll a busy feed (a story every two
hours) and a quiet one (twice a month) with `jitter: 0`, so that each source's next
poll must be exactly what policy.adaptive_interval gives for the arrivals the
feed showed; `ingest status` (table and JSON) and the scheduler's metrics must show
that interval.  The policy's own properties are in test_policy_auto.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedserver import FeedServer, dated_rss
from ingest.cli.main import main
from ingest.model import Arrivals
from ingest.runtime.metrics import Metrics
from ingest.service.scheduler import Service, Timing
from ingest.stages.policy import adaptive_interval
from ingest.store import Store

DAY = 86400.0


pytestmark = pytest.mark.usefixtures("restore_logging")


def expected(published: list[datetime], at: datetime) -> float:
    """The interval policy.py gives at `at` for a source whose entries arrived at `published`."""
    times = tuple(sorted(published))
    return adaptive_interval(Arrivals(times, times[0]), at, min_every=600.0, max_every=DAY)


def rows(url: str) -> dict[str, dict[str, Any]]:
    with Store.open_existing(url) as store:
        return {r["key"]: r for r in store.status()}


def planned(row: dict[str, Any]) -> float:
    return float((row["next_due_at"] - row["last_attempt_at"]).total_seconds())


def test_every_auto_polls_at_the_cadence_of_the_entries(
    feed_server: FeedServer, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # a pubDate has whole seconds
    busy = [now - timedelta(hours=2 * i, minutes=5) for i in range(12)]
    quiet = [now - timedelta(days=15 * i + 1) for i in range(4)]
    feed_server.put("/busy.xml", dated_rss("busy", busy))
    feed_server.put("/quiet.xml", dated_rss("quiet", quiet))
    feed_server.put("/fixed.xml", dated_rss("fixed", busy[:2]))
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "settings:\n  respect_max_age: false\n  jitter: 0\n"
        "defaults:\n  every: auto\nsources:\n"
        f"  - {{key: busy, name: Busy, url: '{feed_server.url('/busy.xml')}'}}\n"
        f"  - {{key: quiet, name: Quiet, url: '{feed_server.url('/quiet.xml')}'}}\n"
        f"  - {{key: fixed, name: Fixed, url: '{feed_server.url('/fixed.xml')}', every: 2h}}\n"
    )

    # the scheduler's first poll reads the cadence from the back catalogue's dates
    metrics = Metrics("scheduler")
    with Store.open(db_url) as store:
        service = Service(str(sources), store, timing=Timing(), once=True, metrics=metrics)
        assert asyncio.run(service.run()) == 0
    first = rows(db_url)
    busy_at = first["busy"]["last_attempt_at"]
    assert planned(first["busy"]) == pytest.approx(expected(busy, busy_at), abs=1e-3)
    assert 3600 < planned(first["busy"]) < 2 * 3600  # about a story every two hours
    assert planned(first["quiet"]) == pytest.approx(DAY, abs=1e-3)  # max_every
    assert planned(first["fixed"]) == pytest.approx(7200, abs=1e-3)
    gauge = metrics.registry.get_sample_value
    for key in ("busy", "quiet", "fixed"):
        got = gauge("ingest_source_poll_interval_seconds", {"source": key})
        assert got == pytest.approx(planned(first[key]), abs=1e-3), key

    # ingest status: the interval each auto source gets now, in the table and in JSON
    assert main(["status", "--db", db_url]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "(auto: 1h)" in table["busy"] and "(auto: 1d)" in table["quiet"]
    assert "auto" not in table["fixed"]
    assert main(["status", "--db", db_url, "--format", "json"]) == 0
    shown = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert shown["busy"]["every_auto"] is True and shown["fixed"]["every_auto"] is False
    assert shown["busy"]["poll_interval_seconds"] >= planned(first["busy"])  # slower with time
    assert shown["busy"]["poll_interval_seconds"] < 2 * 3600
    assert shown["quiet"]["poll_interval_seconds"] == DAY
    assert shown["fixed"]["poll_interval_seconds"] == 7200
    assert main(["status", "--db", db_url, "--wide"]) == 0
    assert "(auto: 1h)" in capsys.readouterr().out

    # the busy source publishes twice more: `ingest run` counts only the new entries,
    # at their dates, and polls it sooner; the quiet one stays at max_every
    later = [now + timedelta(seconds=1), now + timedelta(seconds=2)]
    feed_server.put("/busy.xml", dated_rss("busy", [*later, *busy]))
    assert main(["run", "--sources", str(sources), "--db", db_url]) == 0
    capsys.readouterr()
    second = rows(db_url)
    at = second["busy"]["last_attempt_at"]
    assert at > busy_at
    assert planned(second["busy"]) == pytest.approx(expected([*busy, *later], at), abs=1e-3)
    assert planned(second["busy"]) < planned(first["busy"])
    assert planned(second["quiet"]) == pytest.approx(DAY, abs=1e-3)
