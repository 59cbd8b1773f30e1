"""Feed shapes that were read wrongly, each served over loopback through a real `ingest run`.

One job: the end-to-end half of the file-driven cases in tests/data/feeds (their
parse-and-normalize half is tests/test_parse.py): an Atom feed under `<!DOCTYPE html>`,
a comment that mentions `<!DOCTYPE [`, content under its own xml:base, relative guids,
numeric JSON Feed ids, markup declarations in titles, entity declarations, a JSON Feed
whose HTML holds `<body>`, and an "awesome list" whose entries are sections of one page.
Each is polled by the `ingest` command in a child process (so whatever a library
prints would show on its stderr), stored in SQLite and PostgreSQL, and read back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import latest_json, quick_sources
from feedserver import FeedServer
from ingest.cli.main import main

DATA = Path(__file__).parent / "data" / "feeds"
INGEST = str(Path(sys.executable).with_name("ingest"))

# data case -> stories it stores (its expected.json says which)
SHAPES = {
    "atom-doctype-html.xml": 2,
    "comment-doctype.xml": 2,
    "atom-content-base.xml": 2,
    "rss-relative-guids.xml": 2,
    "jsonfeed-number-ids.json": 4,
    "title-declarations.xml": 3,
    "entity-declarations.xml": 1,
    "jsonfeed-html-body.json": 1,
    "awesome-fragments.xml": 4,
}


def _ingest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INGEST, *args], capture_output=True, text=True, timeout=120)


def _source(key: str, url: str) -> str:
    return f"  - key: {key}\n    name: {key}\n    url: {url}\n"


def _serve(server: FeedServer, name: str, path: str | None = None) -> str:
    kind = "application/feed+json" if name.endswith(".json") else "application/xml"
    path = path or f"/{name}"
    server.put(path, (DATA / name).read_bytes(), kind)
    return server.url(path)


def test_every_shape_is_stored_and_nothing_is_printed_to_stderr(
    feed_server: FeedServer, tmp_path: Path, db_url: str
) -> None:
    body = "".join(
        _source(name.split(".")[0], _serve(feed_server, name)) for name in sorted(SHAPES)
    )
    sources = quick_sources(tmp_path, body)
    done = _ingest("run", "--sources", sources, "--db", db_url, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""  # no library warning (bs4's XMLParsedAsHTMLWarning) and no traceback
    reports = {r["source"]: r for r in map(json.loads, done.stdout.splitlines()) if "source" in r}
    for name, count in SHAPES.items():
        report = reports[name.split(".")[0]]
        assert report["ok"] and report["new"] == count, report

    latest = _ingest("latest", "--db", db_url, "--limit", "100", "--format", "json")
    assert latest.returncode == 0 and latest.stderr == ""
    stories: list[dict[str, Any]] = json.loads(latest.stdout)
    by_title = {s["title"]: s for s in stories}
    assert len(stories) == sum(SHAPES.values())
    # content under its own xml:base: the image and the link resolve against it
    chart = by_title["The chart that changed the board's mind"]
    assert chart["image_url"] == "https://site.example/posts/img/chart.png"
    assert 'href="https://site.example/posts/data.csv"' in chart["content"]
    # declarations are not titles; declared entities are not text
    assert "Board papers for April" in by_title and "Annual report 2025/26" in by_title
    assert not any("DOCTYPE" in t or "&" in t.replace(" & ", "") for t in by_title)
    # numeric JSON Feed ids keep two look-alike entries apart
    assert sum(s["title"] == "Clinic closed" for s in stories) == 2
    # the awesome list: one story per section, plus the page itself
    awesome = sorted(s["url"] for s in stories if s["source"] == "awesome-fragments")
    assert awesome == [
        "https://lists.example/awesome",
        "https://lists.example/awesome#one",
        "https://lists.example/awesome#three",
        "https://lists.example/awesome#two",
    ]

    again = _ingest("run", "--sources", sources, "--db", db_url, "--format", "json")
    assert again.returncode == 0 and again.stderr == ""
    assert all(r["new"] == 0 for r in map(json.loads, again.stdout.splitlines()) if "source" in r)


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Trust news</title><link>https://trust.example/</link>
<description>x</description>{items}</channel></rss>"""
ITEM = """<item><title>{title}</title><link>https://trust.example/news/{guid}</link>
<guid>{guid}</guid><description>{text}</description></item>"""


def test_an_entry_mentioning_xml_base_changes_no_other_entrys_identity(
    feed_server: FeedServer, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Relative guids are ids as written, whatever else the document contains: an entry
    whose text mentions "xml:base" (which used to make the document URL the guids' base)
    adds one story and stores nothing twice."""
    old = [ITEM.format(title=f"Story {n}", guid=f"story-{n}", text="News.") for n in (1, 2)]
    feed_server.put("/news.xml", RSS.format(items="".join(old)), "application/rss+xml")
    sources = quick_sources(tmp_path, _source("trust", feed_server.url("/news.xml")))
    assert main(["run", "--sources", sources, "--db", db_url]) == 0
    new = ITEM.format(title="Our feed", guid="feed-notes", text="We never write xml:base.")
    feed_server.put("/news.xml", RSS.format(items=new + "".join(old)), "application/rss+xml")
    capsys.readouterr()
    assert main(["run", "--sources", sources, "--db", db_url, "--format", "json"]) == 0
    (report,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:1]]
    assert (report["new"], report["updated"], report["entries"]) == (1, 0, 3)
    stories = latest_json(db_url, capsys)
    assert sorted(s["title"] for s in stories) == ["Our feed", "Story 1", "Story 2"]


def test_entries_that_share_a_page_stay_apart_and_a_fragment_link_joins_its_story(
    feed_server: FeedServer, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three entries on one page, three fragments: three stories, stored once.  Another
    source linking `page#two` joins the second story; one linking the page with a
    fragment no story is keyed by (`#comments`) joins the page's own story."""
    lists = _serve(feed_server, "awesome-fragments.xml", "/lists.xml")
    digest = """<item><title>Dashboards, reviewed</title>
        <link>http://lists.example/awesome?utm_medium=rss#two</link><guid>d-1</guid>
        <description>A review.</description></item>"""
    forum = """<item><title>Awesome health data, discussed</title>
        <link>https://lists.example/awesome#comments</link><guid>f-1</guid>
        <description>Talk.</description></item>"""
    feed_server.put("/digest.xml", RSS.format(items=digest), "application/rss+xml")
    feed_server.put("/forum.xml", RSS.format(items=forum), "application/rss+xml")
    sources = quick_sources(tmp_path, _source("lists", lists))
    assert main(["run", "--sources", sources, "--db", db_url]) == 0
    assert len(latest_json(db_url, capsys)) == 4
    assert main(["run", "--sources", sources, "--db", db_url, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["new"] == 0  # stored once

    all_three = quick_sources(
        tmp_path,
        _source("lists", lists)
        + _source("digest", feed_server.url("/digest.xml"))
        + _source("forum", feed_server.url("/forum.xml")),
    )
    assert main(["run", "--sources", all_three, "--db", db_url, "--format", "json"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["source"]: r["new"] for r in reports if "source" in r} == {
        "lists": 0,
        "digest": 1,
        "forum": 1,
    }
    stories = {s["title"]: s for s in latest_json(db_url, capsys)}
    assert len(stories) == 4  # both entries joined stories of the list
    assert stories["Dashboards"]["sources"] == ["lists", "digest"]
    assert stories["The list itself"]["sources"] == ["lists", "forum"]
    assert stories["Open datasets"]["sources"] == ["lists"]
