"""`kind: curated` sources: stories the editors write in sources.yaml themselves.

One job: check that curated items are read as written (tests/data/config has
the file-driven validation cases, mistakes with their lines), stored and
deduplicated like any story without a single network request, that an edit
updates the story in place on the next poll and an unchanged file costs
nothing, that the scheduler polls them, and that the project's sources.yaml
carries the seed page's highlighted resources and video picks this way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from cli_helpers import latest_json, status_json, write_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.config import load_config
from ingest.model import CuratedItem
from ingest.stages.normalize import normalize
from ingest.stages.parse.curated import curated_entries, items_hash
from ingest.store import Store
from ingest.web.params import items_query
from ingest.web.site import Site

HERE = Path(__file__).parent
REPO_SOURCES = HERE.parent / "sources.yaml"

PICKS = """\
sources:
  - key: picks
    name: Editors' picks
    kind: curated
    section: highlighted
    items:
      - title: "Inclusion: essential leadership prerequisite or optional extra?"
        url: https://www.kingsfund.org.uk/insight-and-analysis/blogs/inclusion?utm_source=x
        summary: Research suggests 'inclusion' is a critical part of the answer <really>.
        date: 2026-03-01
      - title: R&D for leaders
        url: https://example.org/r-and-d
        image: https://example.org/r-and-d.png
  - key: talks
    name: Talk picks
    kind: curated
    section: videos
    items:
      - title: How to turn a group of strangers into a team
        url: https://www.ted.com/talks/amy_edmondson_how_to_turn_a_group_of_strangers_into_a_team
      - title: A short on kindness
        url: https://www.youtube.com/shorts/aBcDeFgHiJk
"""


def test_items_are_read_as_written() -> None:
    cfg = load_config(HERE / "data" / "config" / "valid_curated.yaml")
    source = cfg.sources[0]
    first, second, third = source.items
    assert first == CuratedItem(
        title="Coaching & Mentoring Handbook: NHS Leadership Academy",
        url="https://www.leadershipacademy.nhs.uk/resources/coaching-and-mentoring-handbook/",
        summary="This handbook explains more about coaching and mentoring.\n\nA second paragraph.",
        image="https://www.leadershipacademy.nhs.uk/img/handbook.png",
        date=datetime(2026, 3, 12, tzinfo=UTC),
        line=11,
    )
    assert second.date == datetime(2026, 3, 12, tzinfo=UTC) and second.summary is None
    assert third.date == datetime(2026, 3, 12, 9, 30, tzinfo=UTC)

    now = datetime(2026, 3, 20, tzinfo=UTC)
    items = normalize(source, "", curated_entries(source), now)
    assert items[0].title == "Coaching & Mentoring Handbook: NHS Leadership Academy"
    assert items[0].summary == (
        "<p>This handbook explains more about coaching and mentoring.</p><p>A second paragraph.</p>"
    )
    assert items[0].image_url == "https://www.leadershipacademy.nhs.uk/img/handbook.png"
    assert items[0].entry_key == "url:" + items[0].canonical_url  # identity: the canonical URL
    assert [i.date_source for i in items] == ["published"] * 3


def test_the_items_hash_changes_with_what_the_items_become() -> None:
    source = load_config(HERE / "data" / "config" / "valid_curated.yaml").sources[0]
    from dataclasses import replace

    same = replace(source, every=60.0, max_age=None)
    edited = replace(source, items=(replace(source.items[0], title="New"), *source.items[1:]))
    assert items_hash(same) == items_hash(source)
    assert items_hash(edited) != items_hash(source)
    assert items_hash(replace(source, exclude=("x",))) != items_hash(source)


def test_curated_sources_are_stored_and_edits_update_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a curated source must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    sources = write_sources(tmp_path, PICKS)
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"

    assert main(["run", "--sources", sources, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "ok    picks: 2 new, 0 updated, 2 entries" in out  # no HTTP status: no request
    assert "ok    talks: 2 new" in out
    picks = {r["title"]: r for r in latest_json(db, capsys, "--source", "picks")}
    inclusion = picks["Inclusion: essential leadership prerequisite or optional extra?"]
    assert inclusion["url"] == "https://www.kingsfund.org.uk/insight-and-analysis/blogs/inclusion"
    assert inclusion["summary"] == (
        "Research suggests 'inclusion' is a critical part of the answer &lt;really&gt;."
    )
    assert inclusion["published_at"] == "2026-03-01T00:00:00+00:00"
    assert inclusion["section"] == "highlighted" and inclusion["kind"] == "article"
    assert picks["R&D for leaders"]["image_url"] == "https://example.org/r-and-d.png"
    assert picks["R&D for leaders"]["date_source"] == "listed"  # undated: its place in the file
    talks = {r["title"]: r for r in latest_json(db, capsys, "--section", "videos")}
    talk = talks["How to turn a group of strangers into a team"]
    assert talk["kind"] == "video"
    assert talk["media_url"] == (
        "https://embed.ted.com/talks/amy_edmondson_how_to_turn_a_group_of_strangers_into_a_team"
    )
    assert talks["A short on kindness"]["is_short"] is True

    # polled again, unedited: nothing to do
    assert main(["run", "--sources", sources, "--db", db, "--only", "picks"]) == 0
    assert "ok    picks: unchanged" in capsys.readouterr().out

    # an editor fixes a title and adds an item: the story is updated in place
    edited = PICKS.replace("R&D for leaders", "Research and development for leaders").replace(
        "        image: https://example.org/r-and-d.png\n",
        "        image: https://example.org/r-and-d.png\n"
        "      - title: A third pick\n        url: https://example.org/third\n",
    )
    write_sources(tmp_path, edited)
    assert main(["run", "--sources", sources, "--db", db, "--only", "picks"]) == 0
    assert "ok    picks: 1 new, 1 updated, 3 entries" in capsys.readouterr().out
    after = {r["url"]: r for r in latest_json(db, capsys, "--source", "picks")}
    renamed = after["https://example.org/r-and-d"]
    assert renamed["title"] == "Research and development for leaders"
    assert renamed["id"] == picks["R&D for leaders"]["id"]
    assert renamed["first_seen_at"] == picks["R&D for leaders"]["first_seen_at"]
    assert len(after) == 3


def test_the_scheduler_polls_curated_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(tmp_path, PICKS)
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["schedule", "--once", "--sources", sources, "--db", db]) == 0
    assert len(latest_json(db, capsys)) == 4
    status = status_json(db, capsys)
    assert status["picks"]["kind"] == "curated" and status["picks"]["last_status"] is None
    assert status["picks"]["next_due_at"] > status["picks"]["last_attempt_at"]


def test_the_project_sources_file_carries_the_seed_page_picks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(REPO_SOURCES)
    highlighted, videos = cfg.get("highlighted"), cfg.get("videos")
    assert highlighted is not None and videos is not None
    assert (highlighted.kind, highlighted.section) == ("curated", "highlighted")
    assert [i.title for i in highlighted.items] == [
        "Inclusion: essential leadership prerequisite or optional extra?",
        "Developing allied health professional leaders — an interactive guide for clinicians "
        "and trust boards",
        "Coaching & Mentoring Handbook: NHS Leadership Academy",
    ]
    assert all(i.summary for i in highlighted.items)
    assert (videos.kind, videos.section) == ("curated", "videos")
    assert [i.url for i in videos.items] == [
        "https://www.ted.com/talks/amy_edmondson_how_to_turn_a_group_of_strangers_into_a_team",
        "https://www.ted.com/talks/judith_heumann_our_fight_for_disability_rights_and_why_we_re_not_done_yet",
    ]
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", str(REPO_SOURCES), "--db", db,
                 "--only", "highlighted", "videos"]) == 0  # fmt: skip
    rows = latest_json(db, capsys)
    assert len(rows) == 5
    assert {r["kind"] for r in rows if r["section"] == "videos"} == {"video"}


ORDERED = """\
sources:
  - key: news
    name: News
    url: {feed}
    section: highlighted
  - key: picks
    name: Editors' picks
    kind: curated
    section: highlighted
    items:
{items}
"""


def _picks(*titles: str) -> str:
    return "\n".join(
        f"      - title: {t}\n        url: https://example.org/{t.lower().replace(' ', '-')}"
        for t in titles
    )


def test_picks_keep_the_order_of_the_file_everywhere_below_dated_stories(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/news.xml", (HERE / "data" / "feeds" / "wordpress-rss2.xml").read_bytes())
    text = ORDERED.format(
        feed=feed_server.url("/news.xml"), items=_picks("Alpha", "Bravo", "Charlie")
    )
    sources = write_sources(tmp_path, "settings:\n  respect_max_age: false\n" + text)
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0

    rows = latest_json(db, capsys, "--section", "highlighted")
    dated = [r["title"] for r in rows if r["source"] == "news"]
    assert len(dated) == 3
    # the feed's dated stories first (newest first), then the picks as listed
    assert [r["title"] for r in rows] == [*dated, "Alpha", "Bravo", "Charlie"]
    assert all(r["date_source"] == "listed" for r in rows[3:])

    with Store.open_existing(db) as store:
        site = Site(store)
        api = json.loads(site.items(items_query([("section", "highlighted")])).content)
        assert [i["title"] for i in api["items"]] == [r["title"] for r in rows]
        everything = json.loads(site.items(items_query([("limit", "100")])).content)["items"]
        assert [i["title"] for i in everything][-3:] == ["Alpha", "Bravo", "Charlie"]
        atom = feedparser.parse(site.feed("highlighted", "atom").content)
        assert [e.title for e in atom.entries][3:] == ["Alpha", "Bravo", "Charlie"]
        assert "published" not in atom.entries[3] and atom.entries[3].updated
        feed = json.loads(site.feed("highlighted", "json").content)
        assert [i["title"] for i in feed["items"]][3:] == ["Alpha", "Bravo", "Charlie"]
        assert "date_published" not in feed["items"][3]
        html = site.page().content.decode()
    highlighted = html.split('id="highlighted"', 1)[1].split("</section>", 1)[0]
    shown = [highlighted.index(t) for t in ("Alpha", "Bravo") if t in highlighted]
    assert shown == sorted(shown)
    assert "1970" not in html and "1969" not in html  # no date for a pick

    # the editors move Charlie to the top and drop Bravo: the page follows the file
    text = ORDERED.format(feed=feed_server.url("/news.xml"), items=_picks("Charlie", "Alpha"))
    write_sources(tmp_path, "settings:\n  respect_max_age: false\n" + text)
    assert main(["run", "--sources", sources, "--db", db, "--only", "picks"]) == 0
    rows = latest_json(db, capsys, "--section", "highlighted")
    assert [r["title"] for r in rows] == [*dated, "Charlie", "Alpha"]
    assert main(["export", "--db", db, "--out", str(tmp_path / "out")]) == 0
    exported = json.loads((tmp_path / "out" / "feeds" / "highlighted.json").read_text())
    assert [i["title"] for i in exported["items"]][3:] == ["Charlie", "Alpha"]


SEED_HEADINGS = [
    "Highlighted resources", "Highlighted Leadership Videos", "Blog posts",
    "Latest news and research",
]  # fmt: skip


def test_the_project_page_reads_like_the_seed_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bs4 import BeautifulSoup

    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", str(REPO_SOURCES), "--db", db,
                 "--only", "highlighted", "videos"]) == 0  # fmt: skip
    out = tmp_path / "site"
    assert main(["export", "--sources", str(REPO_SOURCES), "--db", db, "--out", str(out)]) == 0
    soup = BeautifulSoup((out / "index.html").read_text(), "html.parser")
    assert soup.title is not None and soup.title.get_text() == "Leadership"
    assert [h.get_text() for h in soup.find_all("h1")] == ["Leadership"]
    assert [h.get_text() for h in soup.find_all("h2")] == SEED_HEADINGS
    intro = " ".join(soup.select_one("p.intro").get_text().split())  # type: ignore[union-attr]
    assert intro.startswith("Welcome to our collection of resources on leadership in healthcare.")
    assert intro.endswith("Let us know here.")
    feedback = soup.select_one("a.feedback")
    assert feedback is not None and feedback.get_text() == "Let us know here"
    note = " ".join(soup.select_one("p.site-note").get_text().split())  # type: ignore[union-attr]
    assert note.startswith("The development and maintenance of this patient safety content")
    assert "The Health Foundation" in note
    # the editors' picks, in the order of the file, under their headings
    picks = [a.get_text() for a in soup.select("#highlighted h3 a")]
    assert picks[0] == "Inclusion: essential leadership prerequisite or optional extra?"
    assert picks[2] == "Coaching & Mentoring Handbook: NHS Leadership Academy"
    talks = [a.get_text() for a in soup.select("#videos h3 a")]
    assert talks[0] == "How to turn a group of strangers into a team"
    # feeds out carry the site's title
    feed = json.loads((out / "feeds" / "videos.json").read_text())
    assert feed["title"] == "Leadership: Highlighted Leadership Videos"


def test_picks_stored_before_the_listed_order_are_reordered_on_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import update

    from ingest.store.schema import item_sources, items, sources

    text = "sources:\n  - key: picks\n    name: P\n    kind: curated\n    items:\n" + _picks(
        "Alpha", "Bravo"
    )
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    src = write_sources(tmp_path, text)
    assert main(["run", "--sources", src, "--db", db]) == 0
    with Store.open_existing(db) as store, store.engine.begin() as conn:
        # as an older ingest left them: dated when first stored (Bravo newest), other hashes
        first_seen = datetime(2026, 1, 1, tzinfo=UTC)
        conn.execute(update(items).values(date_source="first_seen", published_at=first_seen))
        conn.execute(
            update(items).where(items.c.title == "Bravo").values(published_at=datetime.now(UTC))
        )
        conn.execute(update(sources).values(body_hash="an older rules' hash"))
        conn.execute(update(item_sources).values(content_hash="hashed without a place"))
    assert main(["run", "--sources", src, "--db", db]) == 0
    assert "picks: 0 new, 2 updated" in capsys.readouterr().out
    assert [r["title"] for r in latest_json(db, capsys)] == ["Alpha", "Bravo"]
