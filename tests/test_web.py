"""ingest.web: the page, /api/items, the feeds, /healthz, conditional GET, export, serve.

The database is filled through the real pipeline (tests/websample.py: the seed
page's stories as four feeds on a loopback FeedServer, then `ingest run`); tests
that need a story to arrive later store it with `Store.save_poll`, as a poll
would.  The app is called in-process through httpx's ASGI transport (Starlette's
endpoints run in its thread pool exactly as under uvicorn); `ingest serve` itself
is started once as a subprocess on loopback.  Tests taking `db_url` run on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from bs4 import BeautifulSoup

from feedserver import FeedServer
from ingest.cli.main import main
from ingest.model import STORY_FIELDS
from ingest.store import Store
from ingest.web.app import create_app
from ingest.web.page import TemplateProblem
from ingest.web.params import MAX_LIMIT, Cursor, decode_cursor, encode_cursor
from websample import Collection, add_story, fill, serving

ATOM = "{http://www.w3.org/2005/Atom}"
PAGE = {"highlighted": 3, "videos": 3, "blogs": 4, "latest": 15}  # stories shown per section
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class Client:
    """A synchronous client for the ASGI app (no server, no sockets)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def get(self, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.get(path, **kw)

        return asyncio.run(go())


@pytest.fixture
def collection(feed_server: FeedServer, tmp_path: Path, db_url: str) -> Collection:
    return fill(feed_server, tmp_path, db_url)


@pytest.fixture
def sqlite_collection(feed_server: FeedServer, tmp_path: Path, sqlite_url: str) -> Collection:
    return fill(feed_server, tmp_path, sqlite_url)


@pytest.fixture
def store(collection: Collection) -> Any:
    with Store.open(collection.db_url) as s:
        yield s


@pytest.fixture
def sqlite_store(sqlite_collection: Collection) -> Any:
    with Store.open(sqlite_collection.db_url) as s:
        yield s


def all_items(client: Client, **params: Any) -> list[dict[str, Any]]:
    """Every story /api/items gives, following next_cursor to the end."""
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        r = client.get("/api/items", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        data = r.json()
        out += data["items"]
        cursor = data["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("next_cursor never ran out")


# -- the page ------------------------------------------------------------------------------


def test_page_shows_each_sections_stories(collection: Collection, store: Store) -> None:
    r = Client(create_app(store)).get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find("html")["lang"] == "en"
    assert len(soup.find_all("main")) == 1 and soup.find("nav")["aria-label"] == "Sections"
    assert soup.find_all("script") == []
    sections = soup.select("main > section")
    assert [s["id"] for s in sections] == list(PAGE)
    assert [s.h2.get_text(strip=True) for s in sections] == [
        "Highlighted resources", "Videos", "Blog posts", "Latest news and research",
    ]  # fmt: skip
    for section in sections:
        expected = collection.stories[section["id"]][: PAGE[section["id"]]]
        stories = section.select("article.story")
        assert [a.h3.get_text(strip=True) for a in stories] == [s.title for s in expected]
        for article, story in zip(stories, expected, strict=True):
            assert article.h3.a["href"] == story.url
            assert article.select_one(".source").get_text() == story.source_name
            assert datetime.fromisoformat(article.time["datetime"]) == story.published
            img = article.find("img")
            assert (img["src"] if img else None) == story.image_url
            assert img is None or img["alt"] == ""
        if section["id"] != "latest":  # cards and rows show the summary, as HTML
            assert all(a.select_one(".summary p") for a in stories)
        assert (
            section.select_one(".feeds a[href$='.atom']")["href"] == f"feeds/{section['id']}.atom"
        )


def test_titles_are_escaped_and_summaries_are_html(sqlite_store: Store) -> None:
    now = datetime.now(UTC)
    add_story(sqlite_store, "bmj-leader", "latest", '<script>alert("x")</script> & friends',
              now, summary="<p>Safe <em>emphasis</em></p>")  # fmt: skip
    add_story(sqlite_store, "nhs-england-blog", "blogs", "Blog <b>bold</b> claim", now,
              summary="<p>Body with <a href=\"https://example.org/\">a link</a></p>")  # fmt: skip
    html = Client(create_app(sqlite_store)).get("/").text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; friends" in html
    assert "Blog &lt;b&gt;bold&lt;/b&gt; claim" in html
    assert '<p>Body with <a href="https://example.org/">a link</a></p>' in html


def test_publisher_templates_override_the_shipped_ones(sqlite_store: Store, tmp_path: Path) -> None:
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "story.html").write_text('<p class="mine">{{ story.title }} ({{ story.source }})</p>')
    (mine / "style.css").write_text("body { color: rebeccapurple; }")
    html = Client(create_app(sqlite_store, templates=mine)).get("/").text
    assert '<p class="mine">How to turn a group of strangers into a team (ted)</p>' in html
    assert "rebeccapurple" in html and "<h2" in html  # the rest still comes from ingest

    (mine / "story.html").write_text("{{ story.nothing_here() }}")  # fails only when rendered
    broken = Client(create_app(sqlite_store, templates=mine)).get("/")
    assert broken.status_code == 500 and "cannot render the page" in broken.json()["error"]
    assert f"{mine / 'story.html'}:1: " in broken.json()["error"]  # where it failed

    with pytest.raises(TemplateProblem, match="does not exist"):
        create_app(sqlite_store, templates=tmp_path / "nope")
    (mine / "index.html").write_text("{% for x in %}")
    with pytest.raises(TemplateProblem, match="page template"):
        create_app(sqlite_store, templates=mine)
    # a syntax error names its file and line, in any of the templates
    (mine / "index.html").unlink()
    (mine / "story.html").write_text("<p>\n{{ story.title }\n</p>\n")
    with pytest.raises(TemplateProblem) as info:
        create_app(sqlite_store, templates=mine)
    assert f"{mine / 'story.html'}:2: " in str(info.value)


# -- /api/items ----------------------------------------------------------------------------


def test_api_pages_through_every_story_once(collection: Collection, store: Store) -> None:
    client = Client(create_app(store))
    first = client.get("/api/items").json()
    assert len(first["items"]) == 20 and first["next_cursor"]
    assert all(tuple(item) == STORY_FIELDS for item in first["items"])

    items = all_items(client, limit=4)
    every = collection.all()
    assert len(items) == len(every) and len({i["id"] for i in items}) == len(every)
    assert {i["title"] for i in items} == {s.title for s in every}
    keys = [(i["published_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id
    assert all(i["published_at"].endswith("+00:00") for i in items)

    for section, stories in collection.stories.items():
        got = all_items(client, section=section, limit=5)
        assert [i["title"] for i in got] == [s.title for s in stories]
        assert {i["section"] for i in got} == {section}
    ted = all_items(client, source="ted", limit=2)
    assert [i["title"] for i in ted] == [s.title for s in collection.stories["videos"]]
    assert all(i["sources"] == ["ted"] for i in ted)


def test_a_story_added_between_pages_is_neither_skipped_nor_repeated(
    collection: Collection, store: Store
) -> None:
    client = Client(create_app(store))
    before = {i["id"] for i in all_items(client, limit=MAX_LIMIT)}
    page = client.get("/api/items", params={"section": "latest", "limit": 5}).json()
    seen = [i["title"] for i in page["items"]]
    boundary = datetime.fromisoformat(page["items"][-1]["published_at"])

    # while the client reads page 1: a brand-new story (it belongs on a fresh first page,
    # not in the rest of this pass), one dated further down the list, and one dated at the
    # boundary itself (same published_at as the last story of page 1, a higher id)
    add_story(store, "bmj-leader", "latest", "Fresh story", datetime.now(UTC))
    add_story(store, "bmj-leader", "latest", "Backdated story", boundary - timedelta(hours=20))
    add_story(store, "bmj-leader", "latest", "Tie at the boundary", boundary)

    cursor = page["next_cursor"]
    while cursor:
        page = client.get("/api/items", params={"section": "latest", "limit": 5,
                                                "cursor": cursor}).json()  # fmt: skip
        seen += [i["title"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen))  # nothing twice
    old = [s.title for s in collection.stories["latest"]]
    assert [t for t in seen if t in old] == old  # nothing skipped, still newest first
    assert seen.count("Backdated story") == 1
    assert "Fresh story" not in seen and "Tie at the boundary" not in seen  # above the cursor
    fresh = client.get("/api/items", params={"section": "latest", "limit": 2}).json()["items"]
    assert [i["title"] for i in fresh] == ["Fresh story", old[0]]
    # an offset-based API would have repeated page 1's last story here; check we did not
    assert len({i["id"] for i in all_items(client, limit=7)}) == len(before) + 3


def test_api_since_and_limit(collection: Collection, store: Store) -> None:
    client = Client(create_app(store))
    latest = collection.stories["latest"]
    cut = latest[4].published
    for since in (cut.isoformat(), cut.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  cut.astimezone().isoformat(), cut.isoformat().replace("+", " ")):  # fmt: skip
        got = client.get("/api/items", params={"section": "latest", "since": since}).json()
        assert [i["title"] for i in got["items"]] == [s.title for s in latest[:5]], since
        assert got["next_cursor"] is None
    day = client.get("/api/items", params={"since": cut.date().isoformat(), "limit": 200}).json()
    assert all(i["published_at"] >= cut.date().isoformat() for i in day["items"])
    got = client.get("/api/items", params={"limit": "200"}).json()
    assert len(got["items"]) == len(collection.all()) and got["next_cursor"] is None
    empty = client.get("/api/items", params={"section": "podcasts"}).json()
    assert empty == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"),
        ("limit=-1", "limit"), ("limit=1.5", "limit"), ("since=yesterday", "since"),
        ("since=2026-13-01", "since"), ("cursor=garbage!", "cursor"),
        ("cursor=" + encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), 1)[:-3], "cursor"),
        ("cursor=WyJ4IiwxXQ", "cursor"),  # ["x",1]
        ("section=Latest%20News", "section"), ("source=../etc", "source"),
        ("sort=oldest", "sort"), ("limit=5&limit=6", "limit"),
    ],
)  # fmt: skip
def test_bad_parameters_are_a_400_with_a_json_error(
    sqlite_store: Store, query: str, parameter: str
) -> None:
    r = Client(create_app(sqlite_store)).get(f"/api/items?{query}")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["parameter"] == parameter and body["error"]
    assert r.headers["etag"] and r.headers["last-modified"]


def test_cursors_round_trip() -> None:
    moment = datetime(2026, 6, 1, 8, 30, 15, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, 42)) == Cursor(moment, 42)
    assert decode_cursor(encode_cursor(moment, 42, -1.25e-06)) == Cursor(moment, 42, -1.25e-06)
    assert decode_cursor(encode_cursor(moment, 42, -3.5, 9000)) == Cursor(moment, 42, -3.5, 9000)
    assert decode_cursor(encode_cursor(moment, 42, None, 9000)) == Cursor(moment, 42)  # no score
    for bad in ("", "AAAA", "bnVsbA", "WzEsMl0", "WyIyMDI2LTA2LTAxVDA4OjAwOjAwIix0cnVlXQ"):
        with pytest.raises(ValueError):
            decode_cursor(bad)
    stamp = moment.isoformat()
    for position in ([stamp, 42, -3.5, True], [stamp, 42, -3.5, "9000"], [stamp, 42, -3.5, 1.5],
                     [stamp, 42, -3.5, 9000, 1]):  # fmt: skip
        raw = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        with pytest.raises(ValueError):
            decode_cursor(raw)


# -- feeds ---------------------------------------------------------------------------------


def test_feeds_parse_back_with_the_same_stories_and_dates(
    collection: Collection, store: Store
) -> None:
    client = Client(create_app(store))
    for section, stories in collection.stories.items():
        r = client.get(f"/feeds/{section}.atom")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
        root = ET.fromstring(r.content)  # well-formed, and the Atom elements RFC 4287 requires
        assert root.tag == f"{ATOM}feed"
        for required in ("id", "title", "updated"):
            assert root.find(f"{ATOM}{required}") is not None
        assert root.find(f"{ATOM}link[@rel='self']").get("href") == (
            f"http://testserver/feeds/{section}.atom"
        )
        for entry in root.findall(f"{ATOM}entry"):
            for required in ("id", "title", "updated", "published", "author"):
                assert entry.find(f"{ATOM}{required}") is not None
            assert RFC3339.fullmatch(entry.findtext(f"{ATOM}updated") or "")

        atom = feedparser.parse(r.content)
        assert not atom.bozo and atom.version == "atom10"
        assert atom.feed.title == "News and resources: " + {  # the site's title, the list's
            "latest": "Latest news and research", "blogs": "Blog posts",
            "videos": "Videos", "highlighted": "Highlighted resources",
        }[section]  # fmt: skip
        jf = client.get(f"/feeds/{section}.json")
        assert jf.headers["content-type"] == "application/feed+json; charset=utf-8"
        data = jf.json()
        assert data["version"] == "https://jsonfeed.org/version/1.1"
        assert data["feed_url"] == f"http://testserver/feeds/{section}.json"
        # feedparser 6.0 does not read JSON Feed: check the items against the stories directly
        items = data["items"]
        assert [i["title"] for i in items] == [s.title for s in stories]
        assert [i["url"] for i in items] == [s.url for s in stories]
        assert [i["id"] for i in items] == [s.url for s in stories]  # canonical URLs

        assert [e.title for e in atom.entries] == [s.title for s in stories]
        assert [e.link for e in atom.entries] == [s.url for s in stories]
        assert [e.id for e in atom.entries] == [s.url for s in stories]
        for e, s, item in zip(atom.entries, stories, items, strict=True):
            assert datetime(*e.published_parsed[:6], tzinfo=UTC) == s.published
            assert datetime(*e.updated_parsed[:6], tzinfo=UTC) == s.published  # never edited
            assert e.author == s.source_name
            assert item["date_published"] == s.published.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert item.get("image") == s.image_url
            assert item["_ingest"]["source"] == s.source
            if section != "latest":  # the latest list's feed carries no summaries
                assert e.content[0].type == "text/html"
                assert e.content[0].value.startswith("<p>")
                assert item["content_html"] == e.content[0].value
            else:
                assert "content" not in e and item["content_html"] == ""

    assert client.get("/feeds/podcasts.atom").status_code == 404
    assert client.get("/feeds/podcasts.json").json() == {"error": "no section named 'podcasts'"}


def test_a_changed_story_has_its_change_as_the_entry_update(sqlite_store: Store) -> None:
    from ingest.model import Item, NextPoll, PollRecord, Source, SourceReport

    client = Client(create_app(sqlite_store))
    entry = feedparser.parse(client.get("/feeds/blogs.atom").content).entries[0]
    published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
    row = next(r for r in sqlite_store.latest(section="blogs") if r["title"] == entry.title)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    source = Source(key=row["source"], name="x", url="http://127.0.0.1:9/", section="blogs")
    key = f"id:{row['url']}"  # websample's guid is the story's URL
    edited = Item(
        source_key=row["source"], entry_key=key, canonical_url=row["canonical_url"],
        url=row["url"], title=row["title"] + " (updated)", summary=row["summary"],
        published_at=row["published_at"], date_source="published", section="blogs",
        image_url=row["image_url"], content_hash="edited",
    )  # fmt: skip
    report = SourceReport(source_key=row["source"], ok=True, status=200)
    plan = sqlite_store.save_poll(
        PollRecord(source, report, None, later, NextPoll(later)), [edited]
    )
    assert len(plan.changed) == 1
    entry = feedparser.parse(client.get("/feeds/blogs.atom").content).entries[0]
    assert entry.title.endswith("(updated)")
    assert datetime(*entry.published_parsed[:6], tzinfo=UTC) == published
    assert datetime(*entry.updated_parsed[:6], tzinfo=UTC) == later


def test_full_content_reaches_the_api_the_page_and_the_feeds(sqlite_store: Store) -> None:
    """A story with full text: /api/items carries it as `content`, the page offers it
    behind "Read the full text", Atom has summary and content, JSON Feed the content."""
    full = '<p>The whole post, with <a href="https://added.example.org/data">the data</a>.</p>'
    url = add_story(
        sqlite_store, "nhs-england-blog", "blogs", "A post with its full text",
        datetime.now(UTC), summary="<p>The excerpt.</p>", content=full,
    )  # fmt: skip
    client = Client(create_app(sqlite_store))
    items = {i["url"]: i for i in all_items(client, section="blogs")}
    assert items[url]["content"] == full and items[url]["summary"] == "<p>The excerpt.</p>"
    assert all(i["content"] is None for u, i in items.items() if u != url)

    soup = BeautifulSoup(client.get("/").text, "html.parser")
    story = next(a for a in soup.select("article.story") if "full text" in a.get_text())
    assert story.select_one(".story-title").get_text(strip=True) == "A post with its full text"
    details = story.select_one("details.full-text")
    assert details is not None and details.select_one(".content a")["href"].endswith("/data")
    assert len(soup.select("details.full-text")) == 1  # stories without content offer none

    atom = feedparser.parse(client.get("/feeds/blogs.atom").content)
    entry = next(e for e in atom.entries if e.link == url)
    assert entry.summary == "<p>The excerpt.</p>" and entry.content[0].value == full
    feed = client.get("/feeds/blogs.json").json()
    item = next(i for i in feed["items"] if i["url"] == url)
    assert item["content_html"] == full


# -- conditional GET -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/api/items", "/api/items?section=videos&limit=2", "/feeds/latest.atom",
     "/feeds/blogs.json", "/healthz"],
)  # fmt: skip
def test_a_second_request_with_the_validators_gets_304(sqlite_store: Store, path: str) -> None:
    client = Client(create_app(sqlite_store))
    first = client.get(path)
    assert first.status_code == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and parsedate_to_datetime(modified).tzinfo is not None

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["last-modified"] == modified
    assert client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110)
    both = {"If-None-Match": '"stale"', "If-Modified-Since": modified}
    assert client.get(path, headers=both).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200


def test_validators_follow_the_stories(sqlite_collection: Collection, sqlite_store: Store) -> None:
    client = Client(create_app(sqlite_store))
    first = client.get("/api/items", params={"section": "latest"})
    newest = max(datetime.fromisoformat(i["updated_at"]) for i in first.json()["items"])
    assert parsedate_to_datetime(first.headers["last-modified"]) == newest.replace(microsecond=0)

    later = datetime.now(UTC) + timedelta(seconds=5)
    add_story(sqlite_store, "bmj-leader", "latest", "Breaking", datetime.now(UTC), when=later)
    for path in ("/", "/api/items?section=latest", "/feeds/latest.atom", "/feeds/latest.json"):
        stale = {"If-None-Match": first.headers["etag"],
                 "If-Modified-Since": first.headers["last-modified"]}  # fmt: skip
        r = client.get(path, headers=stale)
        assert r.status_code == 200 and "Breaking" in r.text, path
        assert parsedate_to_datetime(r.headers["last-modified"]) == later.replace(microsecond=0)
        r2 = client.get(path, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert r2.status_code == 200, path
    # a section the new story is not in did not change
    blogs = client.get("/feeds/blogs.atom")
    assert client.get("/feeds/blogs.atom", headers={"If-Modified-Since": blogs.headers[
        "last-modified"]}).status_code == 304  # fmt: skip


def test_errors_and_unknown_paths_carry_validators_too(sqlite_store: Store) -> None:
    client = Client(create_app(sqlite_store))
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    assert r.headers["etag"] and r.headers["last-modified"] and r.headers["cache-control"]
    assert client.get("/nowhere", headers={"If-None-Match": r.headers["etag"]}).status_code == 404


# -- /healthz ------------------------------------------------------------------------------


def test_healthz_reports_the_database_and_the_story_count(
    sqlite_collection: Collection, sqlite_store: Store
) -> None:
    r = Client(create_app(sqlite_store)).get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "reachable",
                        "stories": len(sqlite_collection.all())}  # fmt: skip
    assert r.headers["cache-control"] == "no-cache"


def test_healthz_is_503_when_the_database_is_gone(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    broken = Store(create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.sqlite3'}"))
    client = Client(create_app(broken))
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["database"] == "unreachable" and r.json()["status"] == "unavailable"
    api = client.get("/api/items")
    assert api.status_code == 503 and "database" in api.json()["error"]


# -- export --------------------------------------------------------------------------------


def test_export_writes_the_served_content_and_rewrites_only_changed_files(
    sqlite_collection: Collection, sqlite_store: Store, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "site"
    base = "https://news.example.org/leadership/"
    args = [
        "export",
        "--db",
        sqlite_collection.db_url,
        "--out",
        str(out),
        "--base-url",
        base,
        "--sources",
        str(tmp_path / "none.yaml"),
    ]  # no site: block: the default words
    assert main(args) == 0
    assert "0 unchanged" in capsys.readouterr().out
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    sections = ["blogs", "highlighted", "latest", "videos"]
    assert files == sorted(
        ["index.html", "api/items.json"]
        + [f"api/items-{s}.json" for s in sections]
        + [f"feeds/{s}.{k}" for s in sections for k in ("atom", "json")]
    )
    client = Client(create_app(sqlite_store, base_url=base))
    assert (out / "index.html").read_bytes() == client.get("/").content
    for s in sections:
        for kind in ("atom", "json"):
            assert (out / f"feeds/{s}.{kind}").read_bytes() == client.get(
                f"/feeds/{s}.{kind}"
            ).content
        served = client.get("/api/items", params={"section": s, "limit": 100}).content
        assert (out / f"api/items-{s}.json").read_bytes() == served
    assert json.loads((out / "api/items.json").read_bytes())["next_cursor"] is None

    old = datetime(2020, 1, 1).timestamp()
    for p in out.rglob("*"):
        os.utime(p, (old, old))
    assert main(args) == 0
    assert f"0 written, {len(files)} unchanged" in capsys.readouterr().out
    assert all(p.stat().st_mtime == old for p in out.rglob("*") if p.is_file())

    add_story(sqlite_store, "ted", "videos", "A new talk", datetime.now(UTC))
    assert main(args) == 0
    assert f"5 written, {len(files) - 5} unchanged" in capsys.readouterr().out
    changed = {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.stat().st_mtime != old
    }
    assert changed == {"index.html", "api/items.json", "api/items-videos.json",
                       "feeds/videos.atom", "feeds/videos.json"}  # fmt: skip
    assert "A new talk" in (out / "index.html").read_text()
    assert not list(out.rglob(".*.tmp"))


def test_export_without_a_base_url_links_relatively(
    sqlite_collection: Collection, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    assert main(["export", "--db", sqlite_collection.db_url, "--out", str(out)]) == 0
    atom = feedparser.parse((out / "feeds/latest.atom").read_bytes())
    assert not atom.bozo
    assert atom.feed.id == "urn:ingest:feed:latest"
    assert "feed_url" not in json.loads((out / "feeds/latest.json").read_bytes())


# -- ingest serve --------------------------------------------------------------------------


def test_ingest_serve_answers_on_loopback(sqlite_collection: Collection, tmp_path: Path) -> None:
    with serving(sqlite_collection.db_url, tmp_path / "serve.log") as url:
        page = httpx.get(url, timeout=5)
        assert page.status_code == 200 and "Latest news and research" in page.text
        api = httpx.get(url + "api/items", params={"limit": 3}, timeout=5)
        assert len(api.json()["items"]) == 3
        again = httpx.get(url, headers={"If-None-Match": page.headers["etag"]}, timeout=5)
        assert again.status_code == 304
        assert httpx.head(url + "feeds/latest.atom", timeout=5).status_code == 200


def test_ingest_serve_on_a_port_in_use_says_so_in_one_line(
    sqlite_collection: Collection, tmp_path: Path
) -> None:
    with serving(sqlite_collection.db_url, tmp_path / "serve.log") as url:
        port = url.rsplit(":", 1)[1].strip("/")
        done = subprocess.run(
            [sys.executable, "-m", "ingest.cli.main", "serve", "--db", sqlite_collection.db_url,
             "--host", "127.0.0.1", "--port", port],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"ingest: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in done.stderr and "--port" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
