"""Identity rules per source (`identity:`) and the repair of entries whose id changed.

One job: show, over loopback HTTP on SQLite and PostgreSQL, that a feed whose guids
change on every poll stores each story once.  A server plays such a feed: poll after
poll it renames every guid (and, in one case, every link too).  Without any setting,
an entry whose id changed but whose canonical link, or else title and date, match a
story this source already has updates that story, and the source's `item_sources`
row takes the new key; with `identity: title` or `identity: link` the entry's name
never changes at all.  The rules themselves are unit-checked on `entry_key_of`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import RawEntry, Settings
from ingest.stages.entry_rules import entry_key_of

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
STORIES = [
    ("Board papers", "board", "Mon, 02 Nov 2026 09:00:00 GMT"),
    ("Winter plan", "winter", "Sun, 01 Nov 2026 09:00:00 GMT"),
    ("Staff survey", "survey", "Sat, 31 Oct 2026 09:00:00 GMT"),
]


def entries(
    poll: int, *, links_change: bool = False, dated: bool = True, edit: bool = False
) -> str:
    out = []
    for n, (title, slug, date) in enumerate(STORIES):
        if edit and n == 0:
            title += " (updated)"
        link = f"https://trust.example/{slug}" + (f"?rev={poll}" if links_change else "")
        pub = f"<pubDate>{date}</pubDate>" if dated else ""
        out.append(
            f"<item><title>{title}</title><link>{link}</link>"
            f"<guid isPermaLink='false'>{slug}-{poll}-{poll * 7919}</guid>{pub}"
            f"<description>About {slug}.</description></item>"
        )
    return "".join(out)


def feed(poll: int, **kw: bool) -> str:
    body = entries(poll, **kw)
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{body}</channel></rss>'
    )


def poll(db_url: str, server: FeedServer, extra: str, when: datetime) -> tuple[int, int, int]:
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    text_ = f"sources:\n  - {{key: trust, name: Trust, url: '{server.url('/feed.xml')}'{extra}}}\n"
    sources = parse_config(text_, "sources.yaml").sources
    with Store.open(db_url) as store:
        (report,) = run_pipeline(sources, store, Settings(), clock=lambda: when)
    assert report.ok, report.error
    return report.new, report.updated, report.same


def counts(db_url: str) -> tuple[int, list[str]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            stories = conn.execute(text("select count(*) from items")).scalar_one()
            keys = conn.execute(
                text("select entry_key from item_sources where source_key = 'trust' order by 1")
            ).scalars()
            return int(stories), list(keys)
    finally:
        engine.dispose()


def test_changing_guids_with_steady_links_update_the_stories(
    db_url: str, feed_server: FeedServer
) -> None:
    feed_server.put("/feed.xml", feed(1))
    assert poll(db_url, feed_server, "", T0) == (3, 0, 0)
    feed_server.put("/feed.xml", feed(2, edit=True))
    assert poll(db_url, feed_server, "", T0 + timedelta(hours=1)) == (0, 1, 2)
    stories, keys = counts(db_url)
    assert stories == 3
    assert keys == sorted(f"id:{slug}-2-{2 * 7919}" for _, slug, _ in STORIES)


def test_changing_guids_and_links_match_by_title_and_date(
    db_url: str, feed_server: FeedServer
) -> None:
    feed_server.put("/feed.xml", feed(1, links_change=True))
    assert poll(db_url, feed_server, "", T0) == (3, 0, 0)
    for n in (2, 3):
        feed_server.put("/feed.xml", feed(n, links_change=True))
        new, updated, same = poll(db_url, feed_server, "", T0 + timedelta(hours=n))
        assert new == 0 and updated == 3 and same == 0  # the link readers follow changed
    stories, keys = counts(db_url)
    assert stories == 3 and all(k.startswith("id:") and "-3-" in k for k in keys)


def test_without_a_date_or_link_to_match_an_identity_rule_is_the_cure(
    db_url: str, feed_server: FeedServer
) -> None:
    feed_server.put("/feed.xml", feed(1, links_change=True, dated=False))
    assert poll(db_url, feed_server, ", identity: title", T0) == (3, 0, 0)
    feed_server.put("/feed.xml", feed(2, links_change=True, dated=False))
    assert poll(db_url, feed_server, ", identity: title", T0 + timedelta(hours=1)) == (0, 3, 0)
    stories, keys = counts(db_url)
    assert stories == 3 and all(k.startswith("title:") for k in keys)


def test_identity_link_ignores_the_guids(db_url: str, feed_server: FeedServer) -> None:
    feed_server.put("/feed.xml", feed(1))
    assert poll(db_url, feed_server, ", identity: link", T0) == (3, 0, 0)
    feed_server.put("/feed.xml", feed(2))
    assert poll(db_url, feed_server, ", identity: link", T0 + timedelta(hours=1)) == (0, 0, 3)
    assert counts(db_url)[1] == sorted(f"url:https://trust.example/{s}" for _, s, _ in STORIES)


def test_two_live_entries_are_never_merged(db_url: str, feed_server: FeedServer) -> None:
    """An entry still in the feed keeps its story: a new entry with the same title and date
    beside it is a story of its own."""
    feed_server.put("/feed.xml", feed(1, links_change=True))
    poll(db_url, feed_server, "", T0)
    both = entries(1, links_change=True) + entries(2, links_change=True)
    feed_server.put(
        "/feed.xml", f'<rss version="2.0"><channel><title>T</title>{both}</channel></rss>'
    )
    new, _, same = poll(db_url, feed_server, "", T0 + timedelta(hours=1))
    assert (new, same) == (3, 3)
    assert counts(db_url)[0] == 6


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (None, "id:g1"),
        ("guid", "id:g1"),
        ("link", "url:https://a.example/x"),
        ("title", "title:"),
        ("content", "content:"),
    ],
)
def test_entry_key_rules(identity: str | None, expected: str) -> None:
    raw = RawEntry(id="g1", link="https://a.example/x", title="T")
    key = entry_key_of(identity, raw, "g1", "https://a.example/x", "T", "Some text")  # type: ignore[arg-type]
    assert key.startswith(expected)
    if identity in ("title", "content"):
        same = entry_key_of(identity, raw, "g2", "https://b.example/y", "  t ", " some  TEXT ")  # type: ignore[arg-type]
        assert same == key  # case and spacing do not matter; id and link are not looked at


def test_entry_key_content_without_text_falls_back_to_the_title() -> None:
    raw = RawEntry(title="T")
    assert entry_key_of("content", raw, "", None, "T", "  ") == entry_key_of(
        "title", raw, "", None, "T", ""
    )
