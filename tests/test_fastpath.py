"""The fast feed reader against feedparser: the same stories, or the document is routed.

One job: prove `ingest.stages.parse.fast` identical to the feedparser path where it reads a
document, and show where it does not.  Every `Item` field and `content_hash` from
both paths (parse, then `normalize`) must be equal for

- every feed of the real-world corpus (../shared/corpus/realworld, or
  ``INGEST_REALWORLD``), of which at least 95 % must be read by the fast reader;
- a feedlab corpus (../shared/feedlab, or ``INGEST_FEEDLAB``), every feed fast;
- every feed under tests/data/feeds;
- Hypothesis-generated documents (empty and self-closing elements, entities,
  CDATA, date offsets, encodings, element order);

unless the document is listed in tests/data/fastpath-allowlist.txt with the
reason (only where feedparser itself is wrong).  Then one minimal document per
defect that fast feed libraries were measured to have, each asserted to give
the right stories.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import ParseError
from ingest.model import Item, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse.doctype import strip_internal_subset
from ingest.stages.parse.fast import read_fast
from ingest.stages.parse.feed import parse_feed

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
REALWORLD = Path(
    os.environ.get("INGEST_REALWORLD", ROOT.parent / "shared" / "corpus" / "realworld")
)
FEEDLAB = Path(os.environ.get("INGEST_FEEDLAB", ROOT.parent / "shared" / "feedlab"))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _allowlist() -> dict[str, str]:
    """name -> reason, from tests/data/fastpath-allowlist.txt (`name: reason` lines)."""
    out: dict[str, str] = {}
    for line in (DATA / "fastpath-allowlist.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(":")
            assert reason.strip(), f"allowlist entry without a reason: {line}"
            out[name.strip()] = reason.strip()
    return out


ALLOWED = _allowlist()


def _items(content: bytes, url: str, content_type: str | None, *, fast: bool) -> tuple[Item, ...]:
    source = Source(key="k", name="k", url=url)
    return normalize(source, url, parse_feed(content, url, content_type, fast=fast), NOW)


def _differences(a: tuple[Item, ...], b: tuple[Item, ...]) -> list[str]:
    if len(a) != len(b):
        return [f"{len(a)} stories from feedparser, {len(b)} from the fast reader"]
    out = []
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        for f in dataclasses.fields(Item):
            if getattr(x, f.name) != getattr(y, f.name):
                mine, theirs = getattr(y, f.name), getattr(x, f.name)
                out.append(f"story {n} {f.name}: {theirs!r:.80} != {mine!r:.80}")
    return out


def _compare(name: str, content: bytes, url: str, content_type: str | None) -> bool:
    """Both paths' stories are equal (or `name` is allowed to differ); returns whether the
    fast reader read the document."""
    served = read_fast(strip_internal_subset(content), url, content_type) is not None
    reference = _items(content, url, content_type, fast=False)
    fast = _items(content, url, content_type, fast=True)
    differences = _differences(reference, fast)
    if name in ALLOWED:
        assert differences, f"{name} is allowlisted but both paths agree: drop it"
    else:
        assert differences == [], f"{name}: " + "; ".join(differences[:5])
    return served


# -- corpora ----------------------------------------------------------------------


@pytest.mark.skipif(
    not (REALWORLD / "manifest.json").exists(),
    reason=f"the real-world corpus is not at {REALWORLD}: set INGEST_REALWORLD to its folder",
)
def test_the_real_world_corpus_reads_the_same_and_mostly_fast() -> None:
    manifest = json.loads((REALWORLD / "manifest.json").read_text())
    served = [
        _compare(Path(m["file"]).name, (REALWORLD / m["file"]).read_bytes(), m["original_url"],
                 "application/xml")  # as feedlab's serve.py sends .xml files
        for m in manifest
    ]  # fmt: skip
    assert sum(served) >= 0.95 * len(served), f"{sum(served)} of {len(served)} fast"


@pytest.mark.parametrize(
    "document",
    sorted(p for p in (DATA / "feeds").iterdir() if not p.name.endswith(".expected.json")),
    ids=lambda p: p.name,
)
def test_every_feed_fixture_reads_the_same(document: Path) -> None:
    expected = json.loads(document.with_name(document.name.split(".")[0] + ".expected.json")
                          .read_text())  # fmt: skip
    _compare(document.name, document.read_bytes(), expected["url"], expected["content_type"])


@pytest.mark.skipif(
    not (FEEDLAB / "gen.py").exists(),
    reason=f"feedlab not found at {FEEDLAB}: set INGEST_FEEDLAB to its folder",
)
def test_a_feedlab_corpus_reads_the_same_and_all_fast(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(FEEDLAB / "gen.py"), str(tmp_path), "--feeds", "40", "--items", "20"],
        check=True, capture_output=True,
    )  # fmt: skip
    feeds = sorted((tmp_path / "feeds").iterdir())
    assert len(feeds) == 40
    for path in feeds:
        url = f"http://127.0.0.1:8765/feeds/{path.name}"
        assert _compare(path.name, path.read_bytes(), url, "application/xml"), path.name


# -- generated documents -------------------------------------------------------------

_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n <>&\"'"),
    max_size=30,
)
_ESCAPED = _TEXT.map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
_ENTITY = st.sampled_from(["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#233;", "&#x2014;",
                           "&#150;", "&amp;nbsp;", "&amp;lt;b&amp;gt;"])  # fmt: skip
_PIECE = (
    _ESCAPED | _ENTITY | _TEXT.filter(lambda t: "]]>" not in t).map(lambda t: f"<![CDATA[{t}]]>")
)
_VALUE = st.lists(_PIECE, max_size=4).map("".join)
_DATE = st.sampled_from([
    "Mon, 02 Mar 2026 08:00:00 GMT", "Mon, 02 Mar 2026 08:00:00 -0500", "2 Mar 2026 08:00 +0130",
    "2026-03-02T08:00:00Z", "2026-03-02T08:00:00-05:00", "2026-03-02T08:00:00.123+09:30",
    "2026-03-02", "not a date", "",
])  # fmt: skip
_URL = st.sampled_from([
    "https://a.example/1", "/relative/2", "post-3", "http://10.0.0.5/private",
    "https://a.example/q?a=1&amp;b=2", " https://a.example/space ", "",
])  # fmt: skip


_MEDIA_TYPE = st.sampled_from(["audio/mpeg", "image/png"])


def _element(name: str, value: str | None) -> str:
    return f"<{name}/>" if value is None else f"<{name}>{value}</{name}>"


@st.composite
def _rss_item(draw: st.DrawFn) -> str:
    parts = [
        _element("title", draw(st.none() | _VALUE)),
        _element("link", draw(st.none() | _URL)),
        _element("description", draw(st.none() | _VALUE)),
        _element("content:encoded", draw(st.none() | _VALUE)),
        _element("dc:creator", draw(st.none() | _VALUE)),
        _element("dc:creator", draw(st.none() | _VALUE)),
        _element("pubDate", draw(st.none() | _DATE)),
        _element("guid", draw(st.none() | _URL)),
        _element("itunes:duration", draw(st.none() | st.sampled_from(["872", "14:32", "x"]))),
        f'<enclosure url="{draw(_URL)}" type="{draw(_MEDIA_TYPE)}"/>',
        f'<media:thumbnail url="{draw(_URL)}"/>',
    ]
    return "<item>" + "".join(draw(st.permutations(parts))[: draw(st.integers(1, 11))]) + "</item>"


@st.composite
def _atom_entry(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "html"]))
    parts = [
        f'<title type="{kind}">{draw(_VALUE)}</title>',
        f'<link href="{draw(_URL)}"/>',
        f'<link rel="enclosure" type="video/mp4" href="{draw(_URL)}"/>',
        _element("id", draw(st.none() | _URL)),
        _element("summary", draw(st.none() | _VALUE)),
        f'<content type="{kind}" xml:base="{draw(_URL)}">{draw(_VALUE)}</content>',
        f"<author><name>{draw(_VALUE)}</name><email>a@b.example</email></author>",
        _element("published", draw(st.none() | _DATE)),
        _element("updated", draw(st.none() | _DATE)),
        f'<media:group><media:thumbnail url="{draw(_URL)}"/>'
        f"<media:description>{draw(_VALUE)}</media:description></media:group>",
    ]
    return (
        "<entry>" + "".join(draw(st.permutations(parts))[: draw(st.integers(1, 10))]) + "</entry>"
    )


_RSS = (
    '<?xml version="1.0" encoding="{encoding}"?><rss version="2.0" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>{items}</channel></rss>'
)
_ATOM = (
    '<?xml version="1.0" encoding="{encoding}"?><feed xmlns="http://www.w3.org/2005/Atom" '
    'xmlns:media="http://search.yahoo.com/mrss/" xml:base="https://b.example/base/">'
    "<title>t</title>{items}</feed>"
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(["rss", "atom"]),
    items=st.data(),
    encoding=st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "utf-16"]),
    content_type=st.sampled_from(
        ["application/rss+xml", "text/xml", "application/xml; charset=iso-8859-1", None]
    ),
)
def test_generated_documents_read_the_same(
    shape: str, items: st.DataObject, encoding: str, content_type: str | None
) -> None:
    entry = _rss_item() if shape == "rss" else _atom_entry()
    body = "".join(items.draw(st.lists(entry, min_size=1, max_size=4)))
    text = (_RSS if shape == "rss" else _ATOM).format(encoding=encoding, items=body)
    try:
        document = text.encode(encoding)
    except UnicodeEncodeError:
        document = text.encode("utf-8")  # a document that lies about its encoding
    url = "https://a.example/feed"
    try:
        reference = _items(document, url, content_type, fast=False)
    except ParseError as e:  # not a feed to feedparser: not to the fast reader either
        with pytest.raises(ParseError) as refused:
            _items(document, url, content_type, fast=True)
        assert str(refused.value) == str(e)
        return
    differences = _differences(reference, _items(document, url, content_type, fast=True))
    assert differences == [], differences


# -- the measured defects of fast feed libraries, each with its right answer -----------------

RSS_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" '
    'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>'
)


def _stories(document: bytes | str, content_type: str | None = "application/rss+xml") -> list[Item]:
    content = document.encode() if isinstance(document, str) else document
    fast = _items(content, "https://a.example/feed", content_type, fast=True)
    assert (
        _differences(_items(content, "https://a.example/feed", content_type, fast=False), fast)
        == []
    )
    return list(fast)


def test_an_empty_self_closing_element_swallows_nothing() -> None:
    items = "".join(
        f"<item><title>Story {n}</title><description/><content:encoded/><dc:creator />"
        f"<link>https://a.example/{n}</link><pubDate>Mon, 02 Mar 2026 0{n}:00:00 GMT</pubDate>"
        "</item>"
        for n in range(1, 4)
    )
    stories = _stories(RSS_HEAD + items + "</channel></rss>")
    assert [s.title for s in stories] == ["Story 1", "Story 2", "Story 3"]
    assert [s.url for s in stories] == [f"https://a.example/{n}" for n in (1, 2, 3)]
    assert all(s.summary == "" and s.content is None and s.author is None for s in stories)


def test_an_offset_date_is_converted_to_utc() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><title>x</title>'
        '<id>urn:1</id><link href="https://a.example/1"/>'
        "<published>2026-02-02T08:00:00-05:00</published></entry></feed>"
    )
    (story,) = _stories(atom, "application/atom+xml")
    assert story.published_at == datetime(2026, 2, 2, 13, tzinfo=UTC)
    rss = (
        RSS_HEAD + "<item><title>x</title><link>https://a.example/1</link>"
        "<pubDate>Mon, 02 Feb 2026 08:00:00 -0500</pubDate></item></channel></rss>"
    )
    assert _stories(rss)[0].published_at == datetime(2026, 2, 2, 13, tzinfo=UTC)


def test_links_to_private_addresses_are_kept_as_published() -> None:
    rss = RSS_HEAD + "".join(
        f"<item><title>{n}</title><link>{link}</link></item>"
        for n, link in enumerate(["http://10.0.0.5/intranet/1", "http://localhost:8080/2"])
    ) + "</channel></rss>"  # fmt: skip
    assert [s.url for s in _stories(rss)] == [
        "http://10.0.0.5/intranet/1",
        "http://localhost:8080/2",
    ]


def test_the_first_of_repeated_creators_is_the_author() -> None:
    rss = (
        RSS_HEAD + "<item><title>x</title><link>https://a.example/1</link>"
        "<dc:creator>Ada Lovelace</dc:creator><dc:creator>Charles Babbage</dc:creator>"
        "</item></channel></rss>"
    )
    assert _stories(rss)[0].author == "Ada Lovelace"


def test_a_document_that_is_an_address_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for document in (b"http://127.0.0.1:9/feed.xml", b"/etc/passwd", b"feed.xml"):
        assert read_fast(document, "https://a.example/feed", "application/xml") is None
    assert attempts == []


def test_podcast_and_video_fields_are_read() -> None:
    rss = (
        RSS_HEAD + "<item><title>Episode 12</title><link>https://a.example/e12</link>"
        "<itunes:duration>14:32</itunes:duration>"
        '<media:group><media:content url="https://a.example/e12.mp4" type="video/mp4"/>'
        '<media:thumbnail url="https://a.example/e12.jpg"/></media:group></item></channel></rss>'
    )
    (story,) = _stories(rss)
    assert (story.kind, story.duration, story.media_url, story.image_url) == (
        "video", 872, "https://a.example/e12.mp4", "https://a.example/e12.jpg",
    )  # fmt: skip


def test_an_entry_xml_base_resolves_its_links() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        '<entry xml:base="https://a.example/blog/2026/"><title>x</title><id>urn:1</id>'
        '<link href="post.html"/><content type="html">&lt;a href="notes.html"&gt;n&lt;/a&gt;'
        "</content></entry></feed>"
    )
    (story,) = _stories(atom, "application/atom+xml")
    assert story.url == "https://a.example/blog/2026/post.html"
    assert 'href="https://a.example/blog/2026/notes.html"' in story.summary


def test_rdf_content_encoded_is_the_content() -> None:
    rdf = (
        '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        '<channel rdf:about="https://a.example/"><title>t</title></channel>'
        '<item rdf:about="https://a.example/1"><title>x</title><link>https://a.example/1</link>'
        "<description>Short.</description>"
        "<content:encoded>&lt;p&gt;The whole text.&lt;/p&gt;</content:encoded></item></rdf:RDF>"
    )
    (story,) = _stories(rdf, "application/rdf+xml")
    assert story.summary == "Short." and story.content == "<p>The whole text.</p>"


def test_an_undeclared_html_entity_truncates_nothing() -> None:
    rss = (
        RSS_HEAD + "<item><title>Fish&nbsp;and chips</title><link>https://a.example/1</link>"
        "<description>Before&nbsp;after, all of it.</description></item></channel></rss>"
    )
    assert read_fast(rss.encode(), "https://a.example/feed", "application/rss+xml") is None
    (story,) = _stories(rss)
    assert story.summary.endswith("all of it.") and "chips" in story.title


def test_cp1252_bytes_under_a_latin1_label_and_a_disagreeing_charset() -> None:
    rss = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>Caf\xe9 \x93quoted\x94</title><link>https://a.example/1</link></item>"
        "</channel></rss>"
    ).encode("latin-1")
    (story,) = _stories(rss)
    assert story.title == "Café \u201cquoted\u201d"
    # the server says UTF-8, the document Latin-1: feedparser decides, the fast reader stays out
    assert read_fast(rss, "https://a.example/feed", "application/xml; charset=utf-8") is None
    _stories(rss, "application/xml; charset=utf-8")


def test_each_element_name_has_one_handler_and_none_is_refused_too() -> None:
    from ingest.stages.parse import fast_entry

    names = [name for group, _ in fast_entry._GROUPS for name in group]
    assert len(names) == len(set(names)) == len(fast_entry._HANDLERS)
    assert not set(names) & fast_entry._REFUSED
