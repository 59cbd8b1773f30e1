"""Feed discovery: a `kind: feed` source whose URL answers with an HTML page.

One job: check `parse.discover` (which links count as feeds, what counts as
HTML) and the whole path through the real pipeline over loopback: the page's
`<link rel="alternate">` feed is fetched and stored, the database remembers
it (`sources.discovered_url`) so that `ingest status` tells the editor and
later polls ask for the feed directly with its own conditional-GET state, a
page without a feed link is a failed poll that says so, a discovered feed
that disappears sends the next poll back to the page, and an editor's new
URL forgets the old discovery.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import quick_sources, status_json
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.stages.parse.discover import find_feed_links, looks_like_html

DATA = Path(__file__).parent / "data" / "feeds"

PAGE = """<!DOCTYPE html>
<html lang="en"><head><title>NHS England blog</title>
<base href="/blog/">
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="Blog &raquo; Comments Feed"
      href="comments/feed/">
<link rel="alternate" type="application/rss+xml" title="Blog &raquo; Feed" href="{href}">
</head><body><h1>Blog</h1><p>Posts...</p></body></html>"""


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<link rel="alternate" type="application/rss+xml" href="/feed">', ("https://a.org/feed",)),
        ('<link rel="alternate" type="application/atom+xml" href="atom.xml">',
         ("https://a.org/news/atom.xml",)),
        ('<link rel="alternate" type="application/feed+json" href="//cdn.a.org/f.json">',
         ("https://cdn.a.org/f.json",)),
        ('<link rel="ALTERNATE home" type="Application/RSS+XML; charset=UTF-8" href="/f">',
         ("https://a.org/f",)),
        ('<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">', ()),
        ('<link rel="feed" type="application/rss+xml" href="/f">', ()),
        ('<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">', ()),
        ('<link rel="alternate" type="application/rss+xml" href="">', ()),
        ('<link rel="alternate" type="application/rss+xml" href="/a">'
         '<link rel="alternate" type="application/rss+xml" href="/a">', ("https://a.org/a",)),
        ('<link rel="alternate" type="application/rss+xml" title="Comments Feed" href="/c">'
         '<link rel="alternate" type="application/atom+xml" href="/main">',
         ("https://a.org/main", "https://a.org/c")),
        ('<base href="https://b.org/x/"><link rel="alternate" type="application/rss+xml" '
         'href="feed">', ("https://b.org/x/feed",)),
    ],
)  # fmt: skip
def test_find_feed_links(head: str, expected: tuple[str, ...]) -> None:
    page = f"<!doctype html><html><head>{head}</head><body></body></html>".encode()
    assert find_feed_links(page, "https://a.org/news/") == expected


@pytest.mark.parametrize(
    ("content", "html"),
    [
        (b"<!DOCTYPE html><html><body>x</body></html>", True),
        (b"\xef\xbb\xbf\n  <!-- hi --><html lang='en'>", True),
        (b"<head><title>t</title></head>", True),
        (b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>', False),
        (b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "x"><html>', True),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>', False),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', False),
        (b"", False),
    ],
)
def test_looks_like_html(content: bytes, html: bool) -> None:
    assert looks_like_html(content) is html


def test_garbage_advertises_nothing() -> None:
    assert find_feed_links(b"\x00\xff" * 100, "https://a.org/") == ()


# -- through the pipeline ---------------------------------------------------------


def _sources(tmp_path: Path, url: str) -> str:
    return quick_sources(
        tmp_path, f"  - key: blog\n    name: Blog\n    url: {url}\n    section: blogs\n"
    )


def _serve_blog_with_feed(server: FeedServer, content_type: str = "text/html") -> None:
    """The blog page at /blog/, advertising its feed (three stories) at /blog/feed/."""
    server.put("/blog/", PAGE.format(href="feed/"), content_type)
    server.put("/blog/feed/", (DATA / "wordpress-rss2.xml").read_bytes())


def test_a_page_with_a_feed_link_is_polled_through_that_feed(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_blog_with_feed(feed_server, "text/html; charset=utf-8")
    sources = _sources(tmp_path, feed_server.url("/blog/"))
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    feed_url = feed_server.url("/blog/feed/")

    assert main(["run", "--sources", sources, "--db", db]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("ok    blog HTTP 200: 3 new")
    assert f"feed found at {feed_url}: update sources.yaml" in line
    assert feed_server.count("/blog/comments/feed/") == 0  # the main feed, not the comments'

    status = status_json(db, capsys)["blog"]
    assert status["discovered_url"] == feed_url
    assert status["items"] == 3 and status["last_error"] is None
    assert main(["status", "--db", db]) == 0
    assert f"feed found at {feed_url}: update sources.yaml" in capsys.readouterr().out

    # the next poll asks for the feed straight away, conditionally; the page is not read again
    feed_server.clear()
    assert main(["run", "--sources", sources, "--db", db, "--format", "json"]) == 0
    poll = json.loads(capsys.readouterr().out.splitlines()[0])
    assert poll["not_modified"] and poll["discovered_url"] == feed_url
    assert feed_server.count("/blog/") == 0
    assert feed_server.last("/blog/feed/").header("if-none-match")
    assert status_json(db, capsys)["blog"]["discovered_url"] == feed_url  # still remembered


def test_a_page_without_a_feed_link_is_a_failed_poll(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/about", "<!doctype html><html><head><title>About us</title></head></html>",
                    "text/html")  # fmt: skip
    sources = _sources(tmp_path, feed_server.url("/about"))
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 1
    assert "no feed link was found" in capsys.readouterr().out
    status = status_json(db, capsys)["blog"]
    assert "no feed link was found" in str(status["last_error"])
    assert status["last_error_kind"] == "parse" and status["discovered_url"] is None


def test_a_discovered_feed_that_is_gone_sends_the_poll_back_to_the_page(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_blog_with_feed(feed_server)
    sources = _sources(tmp_path, feed_server.url("/blog/"))
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 0

    feed_server.error("/blog/feed/", 404, "gone")
    feed_server.put("/blog/", PAGE.format(href="/new-feed.xml"), "text/html")
    feed_server.put("/new-feed.xml", (DATA / "wordpress-rss2.xml").read_bytes())
    assert main(["run", "--sources", sources, "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"feed found at {feed_server.url('/new-feed.xml')}" in out
    assert "0 new" in out  # the same stories, found again through the new feed
    assert status_json(db, capsys)["blog"]["discovered_url"] == feed_server.url("/new-feed.xml")


def test_an_editor_changing_the_url_forgets_the_discovered_feed(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_blog_with_feed(feed_server)
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert (
        main(["run", "--sources", _sources(tmp_path, feed_server.url("/blog/")), "--db", db]) == 0
    )
    # the editor did as told: the feed's own address now, so nothing is discovered any more
    edited = _sources(tmp_path, feed_server.url("/blog/feed/"))
    feed_server.clear()
    capsys.readouterr()
    assert main(["run", "--sources", edited, "--db", db, "--format", "json"]) == 0
    poll = json.loads(capsys.readouterr().out.splitlines()[0])
    assert poll["discovered_url"] is None and poll["not_modified"]
    # the validators belong to the feed's URL, which is now the source's own: still used
    assert feed_server.last("/blog/feed/").header("if-none-match")
    assert feed_server.count("/blog/") == 0
    assert status_json(db, capsys)["blog"]["discovered_url"] is None
