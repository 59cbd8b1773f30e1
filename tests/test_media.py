"""Talks and videos: durations, kinds, speakers, hashes, and migration 0003.

One job: the rules behind `Item.kind`, `duration`, `media_url` and
`is_short` that the feed fixtures (tests/data/feeds) exercise only by
example, the split of "Talk | Speaker" titles (and the titles it must leave
alone), that articles keep the content hashes they had before these fields
existed, and that migration 0003 upgrades a database holding stories (and
downgrades again) on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ingest.model import MediaKind, RawEntry, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse.values import parse_duration
from ingest.store import Store
from store_helpers import migrate_to

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
SOURCE = Source(key="s", name="S", url="https://x.org/feed", section="videos")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:14:32", 872), ("0:12:13", 733), ("14:32", 872), ("75:30", 4530), ("872", 872),
        ("872.6", 873), (" 5:07 ", 307), ("PT14M32S", 872), ("PT1H", 3600), ("pt2m", 120),
        (905.4, 905), (60, 60),
        ("0", None), ("", None), (None, None), ("about ten minutes", None), ("1:75", None),
        ("2:99:00", None), ("PT", None), ("-5", None), ("nan", None), ("inf", None),
        ("9999999", None), (True, None),
    ],
)  # fmt: skip
def test_parse_duration(value: object, seconds: int | None) -> None:
    assert parse_duration(value) == seconds


def _item(
    title: str,
    link: str = "https://x.org/a",
    author: str | None = None,
    media: MediaKind | None = None,
) -> tuple[str, str | None, str]:
    raw = RawEntry(id="1", link=link, title=title, author=author, media_kind=media,
                   media_url="https://cdn.x.org/a.mp4" if media else None)  # fmt: skip
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    return item.title, item.author, item.kind


@pytest.mark.parametrize(
    ("title", "author", "media", "expected"),
    [
        # talks: the speaker becomes the author
        ("How to turn a group of strangers into a team | Amy Edmondson", None, "video",
         ("How to turn a group of strangers into a team", "Amy Edmondson")),
        ("Talk | Dr. Lena Fischer", "TED", "video", ("Talk", "Dr. Lena Fischer")),
        ("Talk | Ludwig van Beethoven", None, "audio", ("Talk", "Ludwig van Beethoven")),
        ("Talk | bell hooks", "bell hooks", "video", ("Talk", "bell hooks")),  # = its author
        # any entry whose suffix is its own author's name
        ("Annual report | NHS England", "NHS England", None, ("Annual report", "NHS England")),
        # left alone
        ("Annual report | NHS England", None, None, ("Annual report | NHS England", None)),
        ("Quarterly review | Jane Smith", "Bob Jones", None,
         ("Quarterly review | Jane Smith", "Bob Jones")),
        ("Teams | Part Two", None, "video", ("Teams | Part Two", None)),
        ("Teams | Episode Four", None, "video", ("Teams | Episode Four", None)),
        ("Leadership | 2026 highlights", None, "video", ("Leadership | 2026 highlights", None)),
        ("A | B | Carol Dean", None, "video", ("A | B | Carol Dean", None)),
        ("Leadership|Carol Dean", None, "video", ("Leadership|Carol Dean", None)),
        ("Why we lead | Madonna", None, "video", ("Why we lead | Madonna", None)),  # one word
        ("Leadership | the long view", None, "video", ("Leadership | the long view", None)),
    ],
)  # fmt: skip
def test_talk_titles_split_off_the_speaker_only_when_it_is_safe(
    title: str, author: str | None, media: MediaKind | None, expected: tuple[str, str | None]
) -> None:
    got_title, got_author, _ = _item(title, author=author, media=media)
    assert (got_title, got_author) == expected


@pytest.mark.parametrize(
    ("link", "kind", "media_url", "short"),
    [
        ("https://www.youtube.com/watch?v=Qx7fR2mLk0A", "video",
         "https://www.youtube.com/embed/Qx7fR2mLk0A", False),
        ("https://youtu.be/Qx7fR2mLk0A", "video", "https://www.youtube.com/embed/Qx7fR2mLk0A",
         False),
        ("https://m.youtube.com/shorts/b9Kw3nZp1sE?feature=share", "video",
         "https://www.youtube.com/embed/b9Kw3nZp1sE", True),
        ("https://www.ted.com/talks/amy_edmondson_how_to_turn_a_group_of_strangers_into_a_team",
         "video",
         "https://embed.ted.com/talks/amy_edmondson_how_to_turn_a_group_of_strangers_into_a_team",
         False),
        ("https://www.youtube.com/channel/UCa1b2c3", "article", None, False),
        ("https://www.youtube.com/watch?list=PL123", "article", None, False),
        ("https://www.ted.com/playlists/123/leadership", "article", None, False),
        ("https://notyoutube.com/shorts/b9Kw3nZp1sE", "article", None, False),
        ("https://example.org/shorts/b9Kw3nZp1sE", "article", None, False),
    ],
)  # fmt: skip
def test_links_to_videos_make_videos(
    link: str, kind: str, media_url: str | None, short: bool
) -> None:
    (item,) = normalize(SOURCE, SOURCE.url, [RawEntry(id="1", link=link, title="T")], NOW)
    assert (item.kind, item.media_url, item.is_short) == (kind, media_url, short)


def test_articles_keep_the_hash_they_had_and_media_changes_it() -> None:
    import hashlib

    article = RawEntry(id="1", link="https://x.org/a", title="T", summary="S")
    (before,) = normalize(SOURCE, SOURCE.url, [article], NOW)
    # the formula from before media fields existed: url, title, summary, image, author, date
    # (undated: the date is left out)
    old = hashlib.sha1("\x00".join(("https://x.org/a", "T", "S", "", "", "")).encode())
    assert before.content_hash == old.hexdigest()
    video = RawEntry(id="1", link="https://x.org/a", title="T", summary="S", media_kind="video",
                     media_url="https://cdn.x.org/a.mp4", duration=60)  # fmt: skip
    longer = RawEntry(id="1", link="https://x.org/a", title="T", summary="S", media_kind="video",
                      media_url="https://cdn.x.org/a.mp4", duration=61)  # fmt: skip
    (v1,) = normalize(SOURCE, SOURCE.url, [video], NOW)
    (v2,) = normalize(SOURCE, SOURCE.url, [longer], NOW)
    assert len({before.content_hash, v1.content_hash, v2.content_hash}) == 3
    assert (v1.kind, v1.duration, v1.media_url) == ("video", 60, "https://cdn.x.org/a.mp4")


def test_a_duration_without_media_is_not_kept() -> None:
    raw = RawEntry(id="1", link="https://x.org/a", title="T", duration=300)
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    assert (item.kind, item.duration) == ("article", None)


# -- migration 0003 ---------------------------------------------------------------


def test_migration_0003_upgrades_stored_stories_and_downgrades_again(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    migrate_to(db_url, "0002")
    engine = create_engine(db_url)
    stamp = "2026-03-01 10:00:00"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO sources (key, name, url, created_at, updated_at) "
                "VALUES ('s', 'S', 'https://x.org/feed', :t, :t)"
            ),
            {"t": stamp},
        )
        c.execute(
            text(
                "INSERT INTO items (id, canonical_url, url, title, summary, published_at, "
                "date_source, section, source_key, content_hash, first_seen_at, updated_at) "
                "VALUES (1, "
                "'https://x.org/a', 'https://x.org/a', 'Old story', '', :t, 'published', 'latest', "
                "'s', 'h', :t, :t)"
            ),
            {"t": stamp},
        )
        c.execute(text(
            "INSERT INTO item_sources (source_key, entry_key, item_id, url, content_hash, "
            "first_seen_at, updated_at) VALUES ('s', 'id:1', 1, 'https://x.org/a', 'h', :t, :t)"),
            {"t": stamp})  # fmt: skip
    engine.dispose()

    with Store.open(db_url) as store, store.engine.connect() as c:  # migrates to the head
        row = c.execute(text(
            "SELECT title, kind, duration_seconds, media_url, is_short, sources, source_name "
            "FROM latest_items")).one()  # fmt: skip
        assert tuple(row) == ("Old story", "article", None, None, False, "s", "S")
        assert c.execute(text("SELECT discovered_url FROM sources")).scalar_one() is None
        rows = store.latest(limit=5)
        assert rows[0]["kind"] == "article" and rows[0]["is_short"] is False

    migrate_to(db_url, "0002", down=True)
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            view = c.execute(text("SELECT * FROM latest_items"))
            assert "kind" not in list(view.keys()) and len(view.all()) == 1
            item_columns = c.execute(text("SELECT * FROM items")).keys()
            assert "is_short" not in item_columns
            assert c.execute(text("SELECT count(*) FROM item_sources")).scalar_one() == 1
    finally:
        engine.dispose()
