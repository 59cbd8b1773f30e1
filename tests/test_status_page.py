"""The source-health page (`ingest serve`'s `/status`): states in words, failing first.

The words and the order are checked on plain rows first; then real sources on a
loopback FeedServer (one fine, one answering 500, one 429 with Retry-After, one moved
permanently) are polled by `ingest run` into SQLite and PostgreSQL,
`ingest serve` runs as a real process, and its page is read back with bs4.  The
browser's view (a phone's width) is tests/test_web_browser.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bs4 import BeautifulSoup

from cli_helpers import quick_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.store import Store
from ingest.web.sourcehealth import age, source_views
from websample import serving

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def row(key: str, **kw: Any) -> dict[str, Any]:
    base = {
        "key": key, "name": key.upper(), "url": f"https://example.org/{key}", "enabled": True,
        "in_config": True, "disabled_reason": None, "consecutive_failures": 0,
        "last_attempt_at": NOW - timedelta(minutes=1), "last_success_at": NOW - timedelta(
            minutes=1), "next_due_at": NOW + timedelta(minutes=29), "retry_after_until": None,
        "backoff_seconds": 0.0, "moved_to": None, "discovered_url": None, "last_error": None,
        "items": 4, "median_lag_seconds": 300.0, "failing_since": None,
    }  # fmt: skip
    return {**base, **kw}


def test_each_state_in_words_and_failing_sources_first() -> None:
    rows = [
        row("fine"),
        row("broken", consecutive_failures=3, last_error="HTTP 500", backoff_seconds=600.0,
            failing_since=NOW - timedelta(hours=5), next_due_at=NOW + timedelta(minutes=10),
            last_success_at=NOW - timedelta(hours=6)),
        row("asked", retry_after_until=NOW + timedelta(hours=1)),
        row("moved", moved_to="https://example.org/new"),
        row("found", discovered_url="https://example.org/feed.xml"),
        row("gone", disabled_reason="HTTP 410: the feed is gone", consecutive_failures=1,
            last_error="HTTP 410"),
        row("off", enabled=False),
        row("removed", in_config=False),
        row("fresh", last_attempt_at=None, last_success_at=None, next_due_at=None, items=0,
            median_lag_seconds=None),
    ]  # fmt: skip
    views = {v.key: v for v in source_views(rows, NOW)}
    order = [v.key for v in source_views(rows, NOW)]
    assert order[:2] == ["broken", "gone"]  # failing first
    assert order[-2:] == ["off", "removed"]
    assert views["broken"].state == (
        "failing since 2026-12-07 07:00 UTC (3 polls in a row); "
        "backing off until 2026-12-07 12:10 UTC"
    )
    assert views["broken"].last_success == "6 h ago" and views["broken"].error == "HTTP 500"
    assert views["gone"].state == "disabled by ingest: HTTP 410: the feed is gone"
    assert views["gone"].next_due == "not polled"
    assert views["asked"].state == "ok; asked us to wait until 2026-12-07 13:00 UTC"
    assert views["asked"].kind == "waiting"
    assert views["moved"].notes == ("moved to https://example.org/new: update sources.yaml",)
    assert views["found"].notes[0].startswith("feed found at https://example.org/feed.xml")
    assert views["off"].state == "disabled in sources.yaml"
    assert views["removed"].state == "removed from sources.yaml"
    assert views["fresh"].state == "not polled yet" and views["fresh"].next_due == "now"
    assert views["fine"].state == "ok" and views["fine"].error is None
    assert views["fine"].median_lag == "5 min" and views["fine"].next_due == "in 29 min"
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (5, 300, 7200, 86400 * 3)] == [
        "just now", "5 min ago", "2 h ago", "3 days ago"
    ]  # fmt: skip
    assert age(None, NOW) == "never"


def feed(tag: str) -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>{tag}</title><link>http://example.org/{tag}</link>"
        f"<pubDate>{datetime.now(UTC):%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>"
        "</channel></rss>"
    )


def fill(feed_server: FeedServer, tmp_path: Path, db: str) -> None:
    """Four sources in the states polling leads to, polled twice by `ingest run`.  The busy
    one (429) is on a host of its own: its cool-down holds back every source of its host."""
    feed_server.put("/fine.xml", feed("fine"))
    feed_server.put("/broken.xml", "boom", status=500)
    feed_server.put("/new.xml", feed("moved"))
    feed_server.put("/old.xml", redirect_to=feed_server.url("/new.xml"), redirect_status=301)
    with FeedServer() as busy_host:
        busy_host.put("/busy.xml", "slow down", status=429, headers={"Retry-After": "3600"})
        entries = "".join(
            f"  - key: {key}\n    name: Source {key}\n    url: {server.url(f'/{path}.xml')}\n"
            for key, path, server in (("fine", "fine", feed_server),
                                      ("broken", "broken", feed_server),
                                      ("busy", "busy", busy_host), ("moved", "old", feed_server))
        )  # fmt: skip
        sources = quick_sources(tmp_path, entries)
        for _ in range(2):
            assert main(["run", "--sources", sources, "--db", db]) == 1  # some fail


def cards(html: str) -> list[Any]:
    return BeautifulSoup(html, "html.parser").select("li.source")


def test_status_page_shows_each_source_failing_first(
    feed_server: FeedServer, tmp_path: Path, db_url: str
) -> None:
    fill(feed_server, tmp_path, db_url)
    with serving(db_url, tmp_path / "serve.log") as url:
        answer = httpx.get(url + "status", timeout=10)
        home = httpx.get(url, timeout=10).text
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-robots-tag"] == "noindex"
    found = {c["id"].removeprefix("source-"): c for c in cards(answer.text)}
    order = list(found)
    assert order == ["broken", "busy", "moved", "fine"]  # failing, waiting, to update, ok
    broken = found["broken"]
    assert broken["data-state"] == "failing"
    state = broken.select_one(".state").get_text()
    assert state.startswith("failing since 20") and "(2 polls in a row)" in state
    assert "500" in broken.select_one(".error").get_text()
    assert broken.select_one(".last-success").get_text() == "never"
    assert "asked us to wait until" in found["busy"].select_one(".state").get_text()
    assert found["fine"].select_one(".state").get_text() == "ok"
    assert found["fine"].select_one(".error") is None
    moved = found["moved"].select_one(".notes").get_text()
    assert f"moved to {feed_server.url('/new.xml')}" in moved
    assert "/status" not in home  # linked from nowhere public


def test_no_status_turns_the_page_off(tmp_path: Path, sqlite_url: str) -> None:
    Store.open(sqlite_url).close()  # an empty ingest database: serve creates none itself
    with serving(sqlite_url, tmp_path / "serve.log", "--no-status") as url:
        assert httpx.get(url + "status", timeout=10).status_code == 404
        assert httpx.get(url + "metrics", timeout=10).status_code == 200
