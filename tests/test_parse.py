"""Tests of `ingest.stages.parse`: the feed fixtures end to end, and the parser's safety.

One job: check that documents become the right `Item`s (through `parse_feed` and
`normalize`), that no document can expand entities, read files or fetch anything,
and that what is not a feed is refused with a clear `ParseError`.  Normalization
details (URLs, dates, sanitizing) are unit-tested in test_normalize.py.

File-driven: every `tests/data/feeds/<case>.<ext>` (RSS/Atom/RDF `.xml`, JSON Feed
`.json`) sits next to `<case>.expected.json`, which holds the fetch it pretends
to be (`url`, `content_type`, `now`), the `source` it came from, and the `items`
expected, as JSON (datetimes ISO 8601 in UTC).  To add a case, write the document
and an expected file with `"items": []`, run
``INGEST_UPDATE_EXPECTED=1 pytest tests/test_parse.py`` to fill in the items, and
then read them: an expected file that mirrors a bug is worthless.
"""

from __future__ import annotations

import dataclasses
import io
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from expected import assert_items, load_expected, source_from_spec
from ingest.errors import ParseError
from ingest.model import Fetched, RawEntry, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse import parse
from ingest.stages.parse.discover import looks_like_html
from ingest.stages.parse.feed import parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
CASES = sorted(p for p in FEEDS.iterdir() if p.is_file() and not p.name.endswith(".expected.json"))


@pytest.mark.parametrize("document", CASES, ids=[p.name for p in CASES])
def test_feed_fixture(document: Path) -> None:
    expected_path = document.with_name(document.name.split(".")[0] + ".expected.json")
    expected = load_expected(expected_path)
    source = source_from_spec(expected["source"], expected["url"])
    content = document.read_bytes()
    # every fixture is a feed: none may be taken for an HTML page (a doctype, a string
    # inside a JSON Feed or a comment decides nothing; the root element does)
    assert not looks_like_html(content)
    raw = parse_feed(content, expected["url"], expected["content_type"])
    items = normalize(source, expected["url"], raw, datetime.fromisoformat(expected["now"]))
    assert_items(expected_path, expected, items)


# -- entities, external entities, fetching ----------------------------------------

LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
# All on one line: feedparser's own DOCTYPE filter only looks at line starts.
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol0 "lol">' + LAUGHS + "]>"
    '<rss version="2.0"><channel><title>t</title><item><title>&lol9;</title>'
    "<description>&lol9;&lol9;</description><link>https://a.example/1</link></item>"
    "</channel></rss>"
)
BILLION_LAUGHS_MULTILINE = BILLION_LAUGHS.replace("<!ENTITY", "\n <!ENTITY")


def _all_text(entries: tuple[RawEntry, ...]) -> str:
    return " ".join(str(v) for e in entries for v in dataclasses.astuple(e))


COMMENTED_LAUGHS = BILLION_LAUGHS.replace("?><!DOCTYPE", "?><!-- <rss> --><?pi x?><!DOCTYPE")
UTF16_LAUGHS = BILLION_LAUGHS.replace('"1.0"', '"1.0" encoding="utf-16"')


@pytest.mark.parametrize(
    ("document", "encoding"),
    [
        (BILLION_LAUGHS.encode(), "utf-8"),
        (BILLION_LAUGHS_MULTILINE.encode(), "utf-8"),
        (COMMENTED_LAUGHS.encode(), "utf-8"),
        (b"\xef\xbb\xbf" + BILLION_LAUGHS.encode(), "utf-8-sig"),
        (UTF16_LAUGHS.encode("utf-16"), "utf-16"),
        (UTF16_LAUGHS.encode("utf-16-be"), "utf-16-be"),
    ],
    ids=["one-line", "multi-line", "after-comment", "utf-8-bom", "utf-16-bom", "utf-16-be-no-bom"],
)
def test_billion_laughs_is_not_expanded(
    document: bytes, encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    real_parse = feedparser.parse

    def spy(stream: io.BytesIO, **kwargs: Any) -> Any:
        seen.append(stream.getvalue())
        return real_parse(stream, **kwargs)

    monkeypatch.setattr(feedparser, "parse", spy)
    entries = parse_feed(document, "https://a.example/feed")
    assert "lollol" not in _all_text(entries)
    assert [e.link for e in entries] == ["https://a.example/1"]
    # No declaration reaches feedparser, so nothing can be expanded (expat's own
    # amplification guard would stop a bomb too, but only after ~0.7 s of CPU).
    assert "<!ENTITY" not in seen[0].decode(encoding)


def _xxe_documents(secret_file: Path) -> list[str]:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>x&xxe;y</title>'
        "<description>&xxe;</description><link>https://a.example/1</link></item></channel></rss>"
    )
    uri = secret_file.as_uri()
    return [
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{uri}">\n]>\n{body}',
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{uri}">]>{body}',
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{body}',
        f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{uri}"> %p; <!ENTITY xxe "&#x25;p;">]>{body}',
        f'<!DOCTYPE rss SYSTEM "http://127.0.0.1:9/evil.dtd">{body}',
        f'<!DOCTYPE rss PUBLIC "-//x//y" "{uri}" [<!ENTITY xxe SYSTEM "{uri}">]>{body}',
    ]


def test_external_entities_are_never_read_or_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-4711\n")
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    for document in _xxe_documents(secret_file):
        entries = parse_feed(document.encode(), "https://a.example/feed")
        text = _all_text(entries)
        assert "TOP-SECRET" not in text
        assert "root:" not in text
        assert [e.link for e in entries] == ["https://a.example/1"]
    assert attempts == []


@pytest.mark.parametrize(
    "content",
    [b"https://a.example/feed.xml", b"/etc/passwd", b"file:///etc/passwd"],
    ids=["url", "path", "file-url"],
)
def test_content_is_never_treated_as_a_location(content: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed: looks like text"):
        parse_feed(content, "https://a.example/feed")


# -- what is not a feed ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"<!DOCTYPE html><html><head><title>Home</title></head><body></body></html>", "HTML"),
        (b"\n<html lang='en'><body><p>Moved</p></body></html>", "HTML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary data"),
        (b"", "an empty document"),
        (b"   \n", "an empty document"),
        (b'{"data": [1, 2, 3]}', "JSON but is not a JSON Feed"),
        (b"{not json", "JSON but does not parse"),
        (b'<?xml version="1.0"?><config><debug>true</debug></config>', "root element <config>"),
        (b"Service Unavailable", "text starting 'Service Unavailable'"),
    ],
    ids=["html", "html-no-doctype", "png", "empty", "blank", "json", "bad-json", "xml", "text"],
)
def test_not_a_feed_raises_parse_error(content: bytes, looks_like: str) -> None:
    with pytest.raises(ParseError, match=r"https://a\.example/feed: not a feed") as caught:
        parse_feed(content, "https://a.example/feed", "text/html")
    assert looks_like in str(caught.value)


def test_json_feed_tolerates_odd_values() -> None:
    document = (
        b'{"version": "https://jsonfeed.org/version/1", "items": [7, {"id": 3, "title": 5,'
        b' "authors": 4, "date_published": "yesterday", "url": ["x"]},'
        b' {"title": "T", "author": {"name": "Ann"}, "date_modified": "2026-02-01T10:00:00"}]}'
    )
    first, second = parse_feed(document, "https://a.example/feed.json")
    assert (first.id, first.title, first.author, first.published, first.link) == (
        "3",
        None,
        None,
        None,
        None,
    )
    assert (second.author, second.updated) == ("Ann", datetime(2026, 2, 1, 10, tzinfo=UTC))


def test_a_feed_without_entries_is_empty_not_an_error() -> None:
    document = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    assert parse_feed(document, "https://a.example/feed") == ()


# -- parse(): dispatch ---------------------------------------------------------------


def _fetched(content: bytes, **changes: Any) -> Fetched:
    fetched = Fetched(
        source_key="s",
        url="https://a.example/feed",
        final_url="https://b.example/feed/",
        status=200,
        content=content,
        content_type="application/rss+xml",
    )
    return dataclasses.replace(fetched, **changes)


def test_parse_reads_feeds_against_the_final_url() -> None:
    source = Source(key="s", name="S", url="https://a.example/feed")
    document = (
        b'<rss version="2.0"><channel><item><title>T</title><link>p/1</link></item></channel></rss>'
    )
    entries = parse(source, _fetched(document))
    assert [e.link for e in entries] == ["https://b.example/feed/p/1"]


def test_parse_skips_what_was_not_modified() -> None:
    source = Source(key="s", name="S", url="https://a.example/feed")
    assert parse(source, _fetched(b"", status=304, not_modified=True)) == ()
    assert parse(source, _fetched(b"", unchanged=True)) == ()


def test_importing_parse_does_not_import_feedparser() -> None:
    code = "import sys, ingest.stages.parse; assert 'feedparser' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_feedparser_reads_through_the_buffered_expat_driver() -> None:
    import xml.sax

    import feedparser.api

    from ingest.stages.parse.saxdriver import BufferedExpatParser

    parse_feed(b"<rss version='2.0'><channel/></rss>", "https://a.example/feed")
    assert feedparser.api.PREFERRED_XML_PARSERS == ["ingest.stages.parse.saxdriver"]
    reader = xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS)
    assert isinstance(reader, BufferedExpatParser)


def test_text_split_by_lines_entities_and_cdata_comes_back_whole() -> None:
    document = (
        b"<rss version='2.0'><channel><item><title>Fish &amp; chips,\n"
        b"peas &#8211; and &lt;b&gt;gravy&lt;/b&gt;</title>"
        b"<description>one\n<![CDATA[<p>two</p>]]>\nthree &amp; four</description>"
        b"<link>https://a.example/1</link></item></channel></rss>"
    )
    (entry,) = parse_feed(document, "https://a.example/feed")
    assert entry.title == "Fish & chips,\npeas \u2013 and <b>gravy</b>"
    assert entry.summary == "one\n<p>two</p>\nthree & four"


def test_relative_links_resolve_against_xml_base_then_the_document() -> None:
    document = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/"><title>B</title>'
        b'<entry><id>1</id><title>One</title><link href="posts/1"/></entry>'
        b'<entry xml:base="https://other.example/x/"><id>2</id><title>Two</title>'
        b'<link href="2"/></entry>'
        b'<entry><id>3</id><title>Three</title><link href="https://abs.example/3"/></entry>'
        b"</feed>"
    )
    entries = parse_feed(document, "https://a.example/feeds/atom.xml")
    assert [e.link for e in entries] == [
        "https://a.example/blog/posts/1",
        "https://other.example/x/2",
        "https://abs.example/3",
    ]


def test_a_json_feed_date_out_of_range_leaves_the_entry_undated() -> None:
    document = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": ['
        b'{"id": "1", "url": "https://a.example/1", "title": "Early",'
        b' "date_published": "0001-01-01T00:00:00+01:00"},'
        b'{"id": "2", "url": "https://a.example/2", "title": "Fine",'
        b' "date_published": "2026-06-01T08:00:00+01:00"}]}'
    )
    early, fine = parse_feed(document, "https://a.example/feed.json")
    assert early.title == "Early" and early.published is None
    assert fine.published == datetime(2026, 6, 1, 7, tzinfo=UTC)
