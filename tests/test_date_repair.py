"""Date repair per source: `timezone:` for dates without an offset, `date_offset_fix:` for
feeds that label local time as UTC.

One job: show that a feed's dates come out right once an editor names the zone.  The
cases are files: tests/data/date_repair/<case>.<xml|json> (a feed) with
<case>.expected.json beside it (the source's settings, and the `published_at` of each
story in document order, UTC).  `zone_label` and `repair` are checked directly for the
awkward inputs (named zones, a bare date, the hour that daylight saving repeats).  End
to end: a loopback server plays a feed written in London time, polled through sources.yaml
into SQLite and PostgreSQL, and the stored dates are the true instants.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import Fetched, Settings, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse import parse
from ingest.stages.parse.dates import repair, zone_label

CASES = Path(__file__).parent / "data" / "date_repair"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _cases() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if not p.name.endswith(".expected.json"))


def test_every_case_has_its_expectation() -> None:
    assert len(_cases()) >= 5
    for path in _cases():
        assert path.with_suffix(".expected.json").is_file(), path.name


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    expected: dict[str, Any] = json.loads(path.with_suffix(".expected.json").read_text())
    source = replace(Source(key="s", name="s", url="https://feeds.example/"), **expected["source"])
    kind = "application/feed+json" if path.suffix == ".json" else "application/xml"
    fetched = Fetched("s", source.url, source.url, 200, path.read_bytes(), kind)
    items = normalize(source, source.url, parse(source, fetched), NOW)
    assert [i.published_at.isoformat() for i in items] == expected["published_at"]
    assert all(i.date_source != "first_seen" for i in items)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Wed, 01 Jul 2026 09:00:00", "none"),
        ("Wed, 01 Jul 2026 09:00:00 GMT", "utc"),
        ("Wed, 01 Jul 2026 09:00:00 UT", "utc"),
        ("Wed, 01 Jul 2026 09:00:00 +0000", "utc"),
        ("2026-07-01T09:00:00Z", "utc"),
        ("2026-07-01T09:00:00+00:00", "utc"),
        ("2026-07-01T09:00:00+01:00", "offset"),
        ("2026-07-01T09:00:00-0500", "offset"),
        ("Wed, 01 Jul 2026 09:00:00 EST", "offset"),
        ("2026-07-01T09:00:00", "none"),
        ("2026-07-01 09:00", "none"),
        ("2026-07-01", "none"),
        ("1 July 2026", "none"),
        ("1 July 2026 9:30 pm", "none"),
        ("", "offset"),
        (None, "offset"),
    ],
)
def test_zone_label(text: str | None, label: str) -> None:
    assert zone_label(text) == label


def test_repair_takes_the_earlier_reading_of_a_repeated_hour_and_leaves_offsets_alone() -> None:
    wall = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # London repeats 01:00-02:00 that night
    assert repair(wall, "none", "Europe/London", False) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert repair(wall, "utc", "Europe/London", False) == wall  # labelled UTC, no fix asked
    assert repair(wall, "utc", "Europe/London", True) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert repair(wall, "offset", "Europe/London", True) == wall  # a real offset is believed
    assert repair(wall, "none", None, True) == wall  # no zone: nothing to do


LOCAL_RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>NHS England</title>
<item><title>Board papers</title><link>https://nhs.example/board</link><guid>board</guid>
<pubDate>Wed, 01 Jul 2026 09:00:00 GMT</pubDate></item>
<item><title>Winter plan</title><link>https://nhs.example/winter</link><guid>winter</guid>
<pubDate>Mon, 12 Jan 2026 16:45:00 GMT</pubDate></item>
</channel></rss>"""


def test_a_feed_in_local_time_is_stored_at_the_true_instant(
    db_url: str, feed_server: FeedServer
) -> None:
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    feed_server.put("/feed.xml", LOCAL_RSS)
    text = (
        "sources:\n"
        f"  - {{key: nhs, name: NHS, url: '{feed_server.url('/feed.xml')}',"
        " timezone: Europe/London, date_offset_fix: true}\n"
    )
    sources = parse_config(text, "sources.yaml").sources
    with Store.open(db_url) as store:
        (report,) = run_pipeline(sources, store, Settings(), clock=lambda: NOW)
        rows = {r["title"]: r for r in store.latest(limit=10)}
    assert report.ok and report.new == 2
    board = rows["Board papers"]["published_at"]
    winter = rows["Winter plan"]["published_at"]
    as_utc = [d if d.tzinfo else d.replace(tzinfo=UTC) for d in (board, winter)]
    assert as_utc == [
        datetime(2026, 7, 1, 8, 0, tzinfo=UTC),  # 09:00 BST
        datetime(2026, 1, 12, 16, 45, tzinfo=UTC),  # 16:45 GMT
    ]
