"""Every kind of source end to end: `ingest run` over loopback into a real database.

One job: check that what the parsers produce (tests/test_parse.py and
tests/test_page.py check that, file by file) is stored and read back as the
issue asks: a story that a scraped page and a feed both carry is one story
with both sources; a JSON Feed source is stored; talks, videos, Shorts and
podcast episodes keep their kind, duration, media URL and thumbnail in the
database, in the `latest_items` view and in `ingest latest --format json`.
Runs `ingest.cli.main` in-process against the loopback FeedServer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from cli_helpers import latest_json, quick_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.model import STORY_FIELDS
from ingest.store import Store

DATA = Path(__file__).parent / "data"


BMJ_PAGE_SELECT = """\
    select:
      item: section.latest-news ul.latest > li
      title: .highwire-cite-title
      link: a.highwire-cite-linked-title@href
      date: .highwire-cite-metadata-date
"""


def test_a_story_on_a_page_and_in_a_feed_is_one_story_with_both_sources(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (DATA / "pages" / "bmj-latest.html").read_bytes()
    feed_server.put("/pages/collections/leadership", page, "text/html; charset=utf-8")
    base = feed_server.base_url
    feed = f"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>BMJ Leader current issue</title>
<item><title>We need to work differently in a crisis</title>
  <link>{base}/content/10/1/52?rss=1&amp;utm_source=rss</link>
  <guid isPermaLink="false">leader;10/1/52</guid>
  <pubDate>Thu, 05 Mar 2026 00:00:00 GMT</pubDate>
  <description>The issue's copy.</description></item>
<item><title>Only in the feed</title><link>{base}/content/10/1/99?rss=1</link>
  <pubDate>Thu, 05 Mar 2026 00:00:00 GMT</pubDate></item>
</channel></rss>"""
    feed_server.put("/rss/current.xml", feed)
    sources = quick_sources(
        tmp_path,
        f"  - key: bmj-page\n    name: BMJ Leader collection\n"
        f"    url: {feed_server.url('/pages/collections/leadership')}\n"
        f"    kind: page\n    strip_params: [rss]\n{BMJ_PAGE_SELECT}"
        f"  - key: bmj-feed\n    name: BMJ Leader current\n"
        f"    url: {feed_server.url('/rss/current.xml')}\n    strip_params: [rss]\n",
    )
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db, "--only", "bmj-page"]) == 0
    assert main(["run", "--sources", sources, "--db", db, "--only", "bmj-feed"]) == 0
    rows = latest_json(db, capsys)
    shared = [r for r in rows if str(r["canonical_url"]).endswith("/content/10/1/52")]
    assert len(shared) == 1, rows
    story = shared[0]
    assert story["sources"] == ["bmj-page", "bmj-feed"]
    assert story["source"] == "bmj-page"  # the first carrier's link and title are shown
    assert story["url"] == f"{base}/content/10/1/52"
    assert str(story["title"]).startswith("We need to work differently in a crisis: peer-")
    assert len(rows) == 8 + 1  # the page's eight stories and the feed's other one
    with Store.open(db) as store, store.engine.connect() as c:
        carriers = c.execute(
            text("SELECT source_key, url FROM item_sources WHERE item_id = :i ORDER BY 1"),
            {"i": story["id"]},
        ).all()
    assert carriers == [
        ("bmj-feed", f"{base}/content/10/1/52"),  # as published, minus utm_source and rss
        ("bmj-page", f"{base}/content/10/1/52"),
    ]


def test_a_json_feed_source_is_stored(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put(
        "/feed.json", (DATA / "feeds" / "jsonfeed.json").read_bytes(), "application/feed+json"
    )
    feed_server.put(
        "/audio.json",
        (DATA / "feeds" / "jsonfeed-media.json").read_bytes(),
        "application/json",  # served as plain JSON: still read as a JSON Feed
    )
    sources = quick_sources(
        tmp_path,
        f"  - key: qi-notes\n    name: QI notes\n    url: {feed_server.url('/feed.json')}\n"
        f"  - key: kf-audio\n    name: King's Fund audio\n"
        f"    url: {feed_server.url('/audio.json')}\n"
        "    section: videos\n",
    )
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "ok    qi-notes HTTP 200: 2 new" in out and "ok    kf-audio HTTP 200: 3 new" in out
    notes = {r["url"]: r for r in latest_json(db, capsys, "--source", "qi-notes")}
    run_charts = notes["https://qi.notes.example/2026/03/run-charts"]  # utm_source dropped
    assert run_charts["title"] == "Run charts for busy people"
    assert run_charts["summary"] == "Why a run chart beats a RAG rating &lt;usually&gt;."
    assert run_charts["published_at"] == "2026-03-01T07:15:00+00:00"
    assert run_charts["author"] == "Ada Morgan"
    assert run_charts["image_url"] == "https://qi.notes.example/img/run-chart-card.png"
    audio = {r["url"]: r for r in latest_json(db, capsys, "--section", "videos")}
    episode = audio["https://www.kingsfund.org.uk/audio-video/podcast/leadership-312"]
    assert (episode["kind"], episode["duration"]) == ("audio", 1803)
    assert episode["media_url"] == "https://media.kingsfund.org.uk/podcast/312.mp3"


def test_talks_videos_shorts_and_podcasts_keep_what_a_video_list_needs(
    feed_server: FeedServer, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, path in (("ted-podcast.xml", "/ted.xml"), ("youtube-atom.xml", "/yt.xml"),
                       ("podcast.xml", "/podcast.xml")):  # fmt: skip
        feed_server.put(path, (DATA / "feeds" / name).read_bytes())
    sources = quick_sources(
        tmp_path,
        "".join(
            f"  - key: {key}\n    name: {key}\n    url: {feed_server.url(path)}\n"
            "    section: videos\n"
            for key, path in (("ted", "/ted.xml"), ("yt", "/yt.xml"), ("pod", "/podcast.xml"))
        ),
    )
    assert main(["run", "--sources", sources, "--db", db_url]) == 0
    rows = latest_json(db_url, capsys, "--section", "videos")
    assert rows and all(tuple(r) == STORY_FIELDS for r in rows)
    by_title = {r["title"]: r for r in rows}

    talk = by_title["How to build a team that tells you the truth"]  # "| Amara Osei" split off
    assert talk["author"] == "Amara Osei"
    assert (talk["kind"], talk["duration"], talk["is_short"]) == ("video", 872, False)
    assert str(talk["media_url"]).endswith("AmaraOsei_2026V-480p.mp4?apikey=abc123")
    assert talk["image_url"] == (
        "https://pi.talks.example.org/talks/amara_osei_2026-embed_480x360.jpg"
    )

    video = by_title["Turning a group of strangers into a team"]
    assert (video["kind"], video["is_short"]) == ("video", False)
    assert video["media_url"] == "https://www.youtube.com/embed/Qx7fR2mLk0A"
    assert video["image_url"] == "https://i2.ytimg.com/vi/Qx7fR2mLk0A/hqdefault.jpg"
    short = by_title["Board development: the first 100 days"]
    assert (short["kind"], short["is_short"]) == ("video", True)  # kept, and marked

    episode = by_title["Episode 40: Leading through winter pressures"]
    assert (episode["kind"], episode["duration"]) == ("audio", 4530)

    with Store.open(db_url) as store, store.engine.connect() as c:
        view = c.execute(
            text(
                "SELECT title, kind, duration_seconds, media_url, is_short, source "
                "FROM latest_items WHERE kind <> 'article' ORDER BY title"
            )
        ).all()
        videos = c.execute(  # the example query of docs/database.md
            text(
                "SELECT title, url, author, image_url, duration_seconds, media_url FROM "
                "latest_items WHERE section = 'videos' AND kind = 'video' AND NOT is_short LIMIT 10"
            )
        ).all()
    assert ("Board development: the first 100 days", "video", None,
            "https://www.youtube.com/embed/b9Kw3nZp1sE", True, "yt") in view  # fmt: skip
    assert len(view) == 2 + 2 + 3  # two talks with video, two YouTube videos, three episodes
    assert len(videos) == 3 and "Board development: the first 100 days" not in {
        v[0] for v in videos
    }
