"""The source-health page (`ingest serve`'s `/status`): states in words, failing first.

The words and the order are checked on plain rows first; then real sources on a
loopback FeedServer (one fine, one answering 500, one 429 with Retry-After, one moved
permanently) are polled by `ingest run` into SQLite and PostgreSQL,
`ingest serve` runs as a real process, and its page is read back with bs4.  The same
for WebSub push states: subscriptions written through the store in each state
(subscribed, pending verification, lease ended, failed, denied) are shown on the page
as `ingest status` shows them.  The whole protocol, with the page read while a hub
pushes, is tests/test_websub_e2e.py's; the browser's view (a phone's width) is
tests/test_web_browser.py's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup

from cli_helpers import quick_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.model import Source, SourceReport
from ingest.stages.websub import Subscription, callback_url
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


# -- WebSub push states ------------------------------------------------------------------


def test_push_states_in_words_with_lease_and_last_push() -> None:
    hub = "https://hub.example/"
    rows = [
        row("pushed", push_status="subscribed", push_hub=hub, pushed=True, pushes=3,
            push_expires_at=NOW + timedelta(days=9), push_last_at=NOW - timedelta(minutes=5),
            next_due_at=NOW + timedelta(hours=5)),
        row("asked", push_status="pending", push_hub=hub, pushes=0),
        row("lapsed", push_status="lapsed", push_hub=hub, pushes=1,
            push_expires_at=NOW - timedelta(hours=2), push_last_at=NOW - timedelta(days=3)),
        row("failed", push_status="failed", push_hub=hub, pushes=0,
            push_trouble="the hub answered HTTP 400"),
        row("polled"),
    ]  # fmt: skip
    views = {v.key: v for v in source_views(rows, NOW)}
    pushed = views["pushed"].push
    assert pushed is not None and (pushed.status, pushed.state) == ("subscribed", "subscribed")
    assert pushed.hub == hub and pushed.trouble is None
    assert pushed.lease == "ends 2026-12-16 12:00 UTC (in 9 days)"
    assert pushed.last_push == "5 min ago (3 pushes)"
    assert views["pushed"].next_due == "in 5.0 h (pushed; polled only as a safety net)"
    asked = views["asked"].push
    assert asked is not None and asked.state == "pending verification"
    assert (asked.lease, asked.last_push) == (None, "never")
    assert views["asked"].next_due == "in 29 min"  # not pushed: polled at its own interval
    lapsed = views["lapsed"].push
    assert lapsed is not None and lapsed.state == "lease ended, renewing"
    assert lapsed.lease == "ended 2026-12-07 10:00 UTC (2 h ago)"
    assert lapsed.last_push == "3 days ago (1 push)"
    failed = views["failed"].push
    assert failed is not None and failed.state == "failed"
    assert failed.trouble == "the hub answered HTTP 400"
    assert views["failed"].kind == "ok"  # its polls are fine: the card is not failing
    assert views["polled"].push is None


def _subscription(key: str) -> Subscription:
    sub_id = f"id-{key}"
    return Subscription(
        id=sub_id, source_key=key, hub="https://hub.example/", topic=f"https://{key}.example/",
        callback=callback_url("https://news.example", sub_id), secret="s" * 64,
        state="requested",
    )  # fmt: skip


def push_states(store: Store, now: datetime) -> None:
    """One source per push state, written through the store as the subscriber, the
    callback and the pushes write them; `polled` has no subscription."""
    keys = ("subscribed", "pending", "lapsed", "failed", "denied", "polled")
    sources = [Source(key=k, name=f"Source {k}", url=f"https://{k}.example/") for k in keys]
    store.sync_sources(sources, now)
    asked = now - timedelta(minutes=30)
    for key in keys[:-1]:
        store.subscription_requested(_subscription(key), asked)
    store.subscription_verified("id-subscribed", "subscribe", 10 * 86400, asked)
    report = SourceReport(source_key="subscribed", ok=True)
    for _ in range(2):
        store.save_push(report, sources[0], [], "id-subscribed", sources[0].url, now)
    store.push_refused("id-subscribed", now)
    store.subscription_verified("id-lapsed", "subscribe", 600, asked)  # ended 20 min ago
    store.subscription_failed(
        "id-failed", "the hub did not verify the subscription within 600s "
        "(websub_verify_timeout): is websub_callback reachable from the hub?",
        now, now + timedelta(hours=1),
    )  # fmt: skip
    store.subscription_denied("id-denied", "not a topic of ours", now, now + timedelta(hours=1))


def test_status_page_shows_push_states_as_ingest_status_does(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(db_url) as store:
        push_states(store, datetime.now(UTC))
    with serving(db_url, tmp_path / "serve.log") as url:
        answer = httpx.get(url + "status", timeout=10)
    assert answer.status_code == 200
    found = {c["id"].removeprefix("source-"): c for c in cards(answer.text)}
    assert main(["status", "--db", db_url, "--format", "json"]) == 0
    cli = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert main(["status", "--db", db_url]) == 0
    table = capsys.readouterr().out

    def text(card: Any, selector: str) -> str | None:
        node = card.select_one(selector)
        return None if node is None else " ".join(node.get_text().split())

    # the same classification as the command's, for every source
    pushes = {k: c.select_one("[data-push]") for k, c in found.items()}
    shown = {k: None if p is None else p["data-push"] for k, p in pushes.items()}
    assert shown == {k: r["push_status"] for k, r in cli.items()}
    assert shown == {"subscribed": "subscribed", "pending": "pending", "lapsed": "lapsed",
                     "failed": "failed", "denied": "denied", "polled": None}  # fmt: skip
    subscribed = found["subscribed"]
    assert text(subscribed, ".push") == "subscribed via https://hub.example/"
    assert (text(subscribed, ".push-lease") or "").startswith("ends 20")
    assert "(in 9 days)" in (text(subscribed, ".push-lease") or "")
    assert (text(subscribed, ".push-last") or "").endswith(" (2 pushes)")  # and an age
    assert text(subscribed, ".push-error") == "1 push refused (bad signature)"
    assert cli["subscribed"]["pushed"] and cli["subscribed"]["pushes"] == 2
    assert text(found["pending"], ".push") == "pending verification via https://hub.example/"
    assert text(found["pending"], ".push-lease") is None
    assert text(found["pending"], ".push-last") == "never"
    assert (text(found["lapsed"], ".push-lease") or "").startswith("ended 20")
    assert text(found["lapsed"], ".push") == "lease ended, renewing via https://hub.example/"
    failed = text(found["failed"], ".push-error") or ""
    assert failed.startswith("the hub did not verify the subscription within 600s")
    denied = text(found["denied"], ".push-error")
    assert denied == "the hub denied the subscription: not a topic of ours"
    assert text(found["denied"], ".push") == "denied by the hub via https://hub.example/"
    assert found["polled"].select_one(".push") is None
    # what the command prints of each trouble is the page's
    for key in ("subscribed", "failed", "denied"):
        trouble = text(found[key], ".push-error")
        assert trouble and f"push: {trouble}" in " ".join(table.split()), key
