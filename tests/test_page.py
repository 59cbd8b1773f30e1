"""Tests of `ingest.stages.parse.page`: the page fixtures end to end, dates, and what is refused.

One job: check that listing pages become the right `Item`s (through `parse_page`
and `normalize`), that a page whose markup no longer fits its selectors is a
`ParseError` naming the selector (never a silent empty list), that bytes which
are not HTML are refused, and that `parse_date` reads the dates pages show.

File-driven, like tests/test_parse.py: every `tests/data/pages/<case>.html` sits
next to `<case>.expected.json`, which holds the page `url`, the fetch time `now`,
the `source` (key, section, strip_params, its `select` block, and optionally
`day_first` / `date_format`), and either the `items` expected (JSON, datetimes
ISO 8601 in UTC) or the `error` expected (a substring of the `ParseError`
message).  To add a case, write the page and an expected file with
`"items": []`, run ``INGEST_UPDATE_EXPECTED=1 pytest tests/test_page.py`` to fill
in the items, and then read them: an expected file that mirrors a bug is
worthless.
"""

from __future__ import annotations

import codecs
import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from expected import assert_items, load_expected, source_from_spec
from ingest.errors import ParseError
from ingest.model import Fetched, RawEntry, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse import parse
from ingest.stages.parse.dates import parse_date
from ingest.stages.parse.page import MAX_ITEMS, parse_page

PAGES = Path(__file__).parent / "data" / "pages"
CASES = sorted(PAGES.glob("*.html"))
URL = "https://news.example.org/leadership/latest"


def _source(spec: dict[str, Any], url: str) -> Source:
    return source_from_spec(
        spec,
        url,
        kind="page",
        select=tuple(spec["select"].items()),
        day_first=spec.get("day_first", True),
        date_format=spec.get("date_format"),
    )


@pytest.mark.parametrize("page", CASES, ids=[p.stem for p in CASES])
def test_page_fixture(page: Path) -> None:
    expected_path = page.with_name(page.stem + ".expected.json")
    expected = load_expected(expected_path)
    url = expected["url"]
    source = _source(expected["source"], url)
    if "error" in expected:
        with pytest.raises(ParseError) as caught:
            parse_page(source, page.read_bytes(), url)
        assert expected["error"] in str(caught.value)
        return
    raw = parse_page(source, page.read_bytes(), url)
    items = normalize(source, url, raw, datetime.fromisoformat(expected["now"]))
    assert_items(expected_path, expected, items)


def test_every_fixture_has_an_expected_file() -> None:
    assert CASES
    for page in CASES:
        assert page.with_name(page.stem + ".expected.json").is_file(), page.name
    for expected in PAGES.glob("*.expected.json"):
        assert expected.with_name(expected.name.replace(".expected.json", ".html")).is_file()


# -- parse_date ------------------------------------------------------------------------


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


DATES: list[tuple[str, datetime | None]] = [
    # ISO 8601 and <time datetime> values
    ("2026-03-12", _utc(2026, 3, 12)),
    ("2026-03-12T09:30:00Z", _utc(2026, 3, 12, 9, 30)),
    ("2026-03-12T09:30:00+01:00", _utc(2026, 3, 12, 8, 30)),
    ("2026-03-12T09:30:00.250-05:00", datetime(2026, 3, 12, 14, 30, 0, 250000, tzinfo=UTC)),
    ("2026-03-12 09:30", _utc(2026, 3, 12, 9, 30)),
    ("20260312T093000Z", _utc(2026, 3, 12, 9, 30)),
    ("Updated: 2026-03-12T09:30:00 GMT", _utc(2026, 3, 12, 9, 30)),
    ("2026/03/12", _utc(2026, 3, 12)),
    # day month-name year
    ("12 March 2026", _utc(2026, 3, 12)),
    ("12 Mar 2026", _utc(2026, 3, 12)),
    ("12 mar 2026", _utc(2026, 3, 12)),
    ("Thursday 12 March 2026", _utc(2026, 3, 12)),
    ("Thursday, 12th March 2026", _utc(2026, 3, 12)),
    ("3rd of March, 2026", _utc(2026, 3, 3)),
    ("12-Mar-2026", _utc(2026, 3, 12)),
    ("Published on 12 March 2026 | 4 min read", _utc(2026, 3, 12)),
    ("Online first: 20 Feb 2026", _utc(2026, 2, 20)),
    # month-name day, year
    ("March 12, 2026", _utc(2026, 3, 12)),
    ("Mar 12, 2026", _utc(2026, 3, 12)),
    ("Mar. 9, 2026", _utc(2026, 3, 9)),
    ("Sept. 30, 2025", _utc(2025, 9, 30)),
    ("September 30 2025", _utc(2025, 9, 30)),
    # times and zones
    ("Thu, 12 Mar 2026 09:30:00 GMT", _utc(2026, 3, 12, 9, 30)),
    ("12 March 2026 at 9:30am", _utc(2026, 3, 12, 9, 30)),
    ("12 March 2026 10.30 pm", _utc(2026, 3, 12, 22, 30)),
    ("12 March 2026, 12:15 am", _utc(2026, 3, 12, 0, 15)),
    ("12 March 2026 13:00 BST", _utc(2026, 3, 12, 12, 0)),
    ("12 mar 2026 09:30 +0100", _utc(2026, 3, 12, 8, 30)),
    ("14:05 GMT, 12 March 2026", _utc(2026, 3, 12, 14, 5)),
    ("Posted March 12, 2026 at 9:30 PM EDT", _utc(2026, 3, 13, 1, 30)),
    ("March 9, 2026 at 2:15 PM ET", _utc(2026, 3, 9, 18, 15)),  # after US DST began (8 Mar)
    ("March 7, 2026 at 2:15 PM ET", _utc(2026, 3, 7, 19, 15)),  # before it
    ("12 March 2026 25:99", _utc(2026, 3, 12)),  # not a time: the date alone
    # numeric: day first by default; a part over 12 decides
    ("12/03/2026", _utc(2026, 3, 12)),
    ("03/12/2026", _utc(2026, 12, 3)),
    ("25/03/2026", _utc(2026, 3, 25)),
    ("03/25/2026", _utc(2026, 3, 25)),
    ("12.03.2026", _utc(2026, 3, 12)),
    ("12-03-26", _utc(2026, 3, 12)),
    ("18-02-26 14:30", _utc(2026, 2, 18, 14, 30)),
    ("99/99/2026 or 12/03/2026", _utc(2026, 3, 12)),
    # epoch seconds and milliseconds (data-timestamp attributes)
    ("1773311400", _utc(2026, 3, 12, 10, 30)),
    ("1773311400000", _utc(2026, 3, 12, 10, 30)),
    # not dates
    ("", None),
    ("   ", None),
    ("Yesterday", None),
    ("2 hours ago", None),
    ("March 2026", None),
    ("31 February 2026", None),
    ("13/13/2026", None),
    ("Marion 12 2026", None),
    ("By Jane Smith", None),
    ("x" * 10_000, None),
]


@pytest.mark.parametrize(("text", "expected"), DATES, ids=[repr(t[:40]) for t, _ in DATES])
def test_parse_date(text: str, expected: datetime | None) -> None:
    got = parse_date(text)
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/03/2026", _utc(2026, 12, 3)),
        ("03/12/2026", _utc(2026, 3, 12)),
        ("25/03/2026", _utc(2026, 3, 25)),  # 25 cannot be a month
        ("12.03.2026", _utc(2026, 12, 3)),
        ("12 March 2026", _utc(2026, 3, 12)),  # names are never ambiguous
        ("2026-03-12", _utc(2026, 3, 12)),
    ],
)
def test_parse_date_month_first(text: str, expected: datetime) -> None:
    assert parse_date(text, day_first=False) == expected


@pytest.mark.parametrize(
    ("text", "date_format", "expected"),
    [
        ("12/03/2026 09:30", "%m/%d/%Y %H:%M", _utc(2026, 12, 3, 9, 30)),
        ("2026.071", "%Y.%j", _utc(2026, 3, 12)),
        ("12 03 2026 +0100", "%d %m %Y %z", _utc(2026, 3, 11, 23, 0)),
        # the format does not fit: the general reader takes over
        ("12 March 2026", "%d/%m/%Y", _utc(2026, 3, 12)),
        ("never", "%d/%m/%Y", None),
    ],
)
def test_parse_date_with_a_format(text: str, date_format: str, expected: datetime | None) -> None:
    assert parse_date(text, date_format=date_format) == expected


def test_parse_date_never_raises_on_odd_input() -> None:
    odd = ["9999999999999", "0000-00-00", "2026-13-45T99:99", "12 March 0000", "\x00\ufffd", "-1"]
    for text in odd:
        result = parse_date(text)
        assert result is None or result.tzinfo is not None


# -- what is not an HTML page ---------------------------------------------------------

SELECT = (
    ("item", "ul.latest > li"),
    ("title", "a"),
    ("link", "a@href"),
    ("date", "time@datetime"),
    ("summary", "p"),
    ("image", "img@src"),
)
SOURCE = Source(key="latest", name="Latest", url=URL, kind="page", select=SELECT)


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip-compressed data"),
        (bytes(range(256)) * 4, "binary data"),
        (b"\x01\x02\x03\x04garbage\x05\x06<html>", "binary data"),
        (b"", "an empty document"),
        (b" \r\n\t ", "an empty document"),
        (b'{"items": [{"title": "x"}]}', "JSON"),
        (b"Service Unavailable", "text without any HTML tags, starting 'Service Unavailable'"),
    ],
    ids=[
        "pdf",
        "png",
        "jpeg",
        "zip",
        "gzip",
        "bytes",
        "controls",
        "empty",
        "blank",
        "json",
        "text",
    ],
)
def test_not_html_raises_parse_error(content: bytes, looks_like: str) -> None:
    with pytest.raises(ParseError, match=r"latest: not an HTML page: looks like") as caught:
        parse_page(SOURCE, content, URL)
    assert looks_like in str(caught.value)


def test_a_feed_given_as_a_page_says_so() -> None:
    feed = b'<?xml version="1.0"?>\n<rss version="2.0"><channel><item><title>T</title></item>'
    with pytest.raises(ParseError, match=r"matched nothing.*looks like a feed.*kind: feed"):
        parse_page(SOURCE, feed + b"</channel></rss>", URL)


# -- selectors, links, images -------------------------------------------------------------


def _page(body: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def _source_with(**select: str) -> Source:
    return Source(key="s", name="S", url=URL, kind="page", select=tuple(select.items()))


def test_field_selectors_may_match_the_item_itself() -> None:
    source = _source_with(item="div.cards > a.card", title="h3", link="a@href", image="img")
    content = _page(
        '<div class="cards"><a class="card" href="/story/1"><img src="/i/1.jpg"><h3>One</h3></a>'
        '<a class="card" href="/story/2"><h3>Two</h3></a></div>'
    )
    entries = parse_page(source, content, URL)
    assert [(e.title, e.link, e.images) for e in entries] == [
        ("One", "https://news.example.org/story/1", ("https://news.example.org/i/1.jpg",)),
        ("Two", "https://news.example.org/story/2", ()),
    ]


def test_descendants_are_preferred_to_the_item_itself() -> None:
    source = _source_with(item="div.story", title="h3", link="a@href", summary="div")
    content = _page(
        '<div class="story"><h3>T</h3><a href="/t">x</a><div>Inner <b>teaser</b></div></div>'
    )
    (entry,) = parse_page(source, content, URL)
    assert entry.summary == "Inner <b>teaser</b>"


def test_without_an_attribute_link_reads_href_and_date_reads_datetime() -> None:
    source = _source_with(item="li", title="a", link="a", date="time")
    content = _page(
        '<ul><li><a href="p/1">One</a><time datetime="2026-03-12T10:00:00Z">Thu</time></li>'
        "<li><span><a>https://other.example/p/2</a></span> <time>12 March 2026</time></li></ul>"
    )
    one, two = parse_page(source, content, URL)
    assert (one.link, one.published) == (
        "https://news.example.org/leadership/p/1",
        _utc(2026, 3, 12, 10),
    )
    assert (two.link, two.published) == ("https://other.example/p/2", _utc(2026, 3, 12))


def test_tabs_and_newlines_in_urls_are_dropped() -> None:
    source = _source_with(item="li", title="a", link="a@href", image="img@src")
    content = _page('<ul><li><a href="/news/\n2026/story">S</a><img src="/i/\tpic.jpg"></li></ul>')
    (entry,) = parse_page(source, content, URL)
    assert entry.link == "https://news.example.org/news/2026/story"
    assert entry.images == ("https://news.example.org/i/pic.jpg",)


def test_link_text_counts_only_when_it_is_a_url() -> None:
    source = _source_with(item="li", title="h3", link="span.link")
    content = _page(
        "<ul><li><h3>One</h3><span class=link>/p/1</span></li>"
        "<li><h3>Two</h3><span class=link>Read more</span></li></ul>"
    )
    (entry,) = parse_page(source, content, URL)
    assert (entry.title, entry.link) == ("One", "https://news.example.org/p/1")


def test_attribute_reads_the_first_match_that_has_it() -> None:
    source = _source_with(item="li", title="h3", link="a@href", date="span")
    content = _page(
        '<ul><li><a name="top">anchor</a><h3>T</h3><a href="/t">read</a>'
        "<span>By Jane Smith</span><span>12 Mar 2026</span></li></ul>"
    )
    (entry,) = parse_page(source, content, URL)
    assert entry.link == "https://news.example.org/t"
    assert entry.published == _utc(2026, 3, 12)  # the first span is not a date: the next is read


def test_image_candidates_without_an_attribute() -> None:
    source = _source_with(item="li", title="h3", link="a@href", image="figure")
    content = _page(
        "<ul>"
        '<li><h3><a href="/1">1</a></h3><figure><img src="data:image/gif;base64,R0lG" '
        'data-src="/lazy.jpg"></figure></li>'
        '<li><h3><a href="/2">2</a></h3><figure><img srcset="/small.jpg 320w, /big.jpg 640w">'
        "</figure></li>"
        '<li><h3><a href="/3">3</a></h3><figure><figcaption>none</figcaption></figure></li>'
        "</ul>"
    )
    images = [e.images for e in parse_page(source, content, URL)]
    assert images == [
        ("https://news.example.org/lazy.jpg",),
        ("https://news.example.org/small.jpg",),
        (),
    ]


def test_titles_are_text_escaped_for_normalize() -> None:
    source = _source_with(item="li", title="a", link="a@href")
    content = _page(
        '<ul><li><a href="/1">  Fish &amp; chips:\n <em>5</em> &lt; 6, &amp;amp;  </a></li></ul>'
    )
    (entry,) = parse_page(source, content, URL)
    assert entry.title == "Fish &amp; chips: 5 &lt; 6, &amp;amp;"
    (item,) = normalize(source, URL, (entry,), datetime(2026, 3, 14, tzinfo=UTC))
    assert item.title == "Fish & chips: 5 < 6, &amp;"  # decoded once: the text the page shows


@pytest.mark.parametrize(
    ("head", "expected_base", "expected_link"),
    [
        ("", None, "https://news.example.org/leadership/story"),
        (
            '<base href="/blog/">',
            "https://news.example.org/blog/",
            "https://news.example.org/blog/story",
        ),
        (
            '<base href="https://cdn.example.net/a/">',
            "https://cdn.example.net/a/",
            "https://cdn.example.net/a/story",
        ),
        ('<base href="javascript:alert(1)">', None, "https://news.example.org/leadership/story"),
        ('<base target="_blank">', None, "https://news.example.org/leadership/story"),
    ],
    ids=["none", "relative", "absolute", "javascript", "no-href"],
)
def test_base_href(head: str, expected_base: str | None, expected_link: str) -> None:
    source = _source_with(item="li", title="a", link="a@href", summary="p")
    content = _page('<ul><li><a href="story">S</a><p><a href="more">more</a></p></li></ul>', head)
    (entry,) = parse_page(source, content, URL)
    assert (entry.base, entry.link) == (expected_base, expected_link)
    (item,) = normalize(source, URL, (entry,), datetime(2026, 3, 14, tzinfo=UTC))
    assert item.url == expected_link
    assert f'href="{expected_link.removesuffix("story")}more"' in item.summary


def test_item_count_is_capped() -> None:
    source = _source_with(item="li", title="a", link="a@href")
    rows = "".join(f'<li><a href="/p/{i}">Story {i}</a></li>' for i in range(MAX_ITEMS + 200))
    entries = parse_page(source, _page(f"<ul>{rows}</ul>"), URL)
    assert len(entries) == MAX_ITEMS
    assert entries[-1].title == f"Story {MAX_ITEMS - 1}"


def test_a_large_page_gives_every_listed_story() -> None:
    source = _source_with(
        item="ul.latest > li", title="h3 a", link="h3 a@href", date="time@datetime", summary="p"
    )
    row = (
        '<li><h3><a href="/content/{i}">Story number {i} about leadership</a></h3>'
        '<time datetime="2026-03-12T09:30:00Z">12 March 2026</time>'
        "<p>A teaser paragraph with <em>some</em> markup, long enough to be realistic.</p></li>"
    )
    rows = "".join(row.format(i=i) for i in range(500))
    content = _page(f'<nav>{"<a href=/x>x</a>" * 500}</nav><ul class="latest">{rows}</ul>')
    entries = parse_page(source, content, URL)
    assert len(entries) == 500
    assert entries[-1].link is not None and entries[-1].link.endswith("/content/499")
    assert entries[-1].title == "Story number 499 about leadership"


# -- failures that name the selector -----------------------------------------------------


def test_links_missing_everywhere_names_the_link_selector() -> None:
    source = _source_with(item="li", title="h3", link="a.more@href")
    content = _page("<ul><li><h3>One</h3><a href='/1'>x</a></li><li><h3>Two</h3></li></ul>")
    with pytest.raises(
        ParseError, match=r"selector 'link: a\.more@href' found nothing in any of the 2 items"
    ):
        parse_page(source, content, URL)


def test_both_missing_names_both_selectors() -> None:
    source = _source_with(item="li", title="h4", link="a.more@href")
    with pytest.raises(ParseError) as caught:
        parse_page(source, _page("<ul><li><h3>One</h3></li></ul>"), URL)
    message = str(caught.value)
    assert "selector 'title: h4' found nothing in the 1 item" in message
    assert "selector 'link: a.more@href' found nothing in the 1 item" in message


def test_no_item_with_both_title_and_link() -> None:
    source = _source_with(item="li", title="h3", link="a@href")
    content = _page("<ul><li><h3>Only a title</h3></li><li><a href='/x'></a></li></ul>")
    with pytest.raises(ParseError, match=r"no item has both a title and a link.*1 of 2 items"):
        parse_page(source, content, URL)


def test_an_invalid_selector_is_a_parse_error() -> None:
    source = _source_with(item="ul >> li", title="a", link="a@href")
    with pytest.raises(ParseError, match=r"select\.item: 'ul >> li' is not a valid CSS selector"):
        parse_page(source, _page("<ul><li><a href='/1'>1</a></li></ul>"), URL)


def test_a_source_without_item_title_or_link_is_a_parse_error() -> None:
    source = _source_with(item="li", title="a")
    with pytest.raises(ParseError, match=r"no 'select\.link' selector"):
        parse_page(source, _page("<ul><li><a href='/1'>1</a></li></ul>"), URL)


# -- decoding ----------------------------------------------------------------------------


PAGE_TEXT = (
    "<html><head>{meta}<title>t</title></head><body><ul>"
    "<li><a href='/1'>Caf\u00e9 \u201cleaders\u201d \u2013 \u00a35</a></li></ul></body></html>"
)
TITLE = "Caf\u00e9 \u201cleaders\u201d \u2013 \u00a35"


@pytest.mark.parametrize(
    ("content"),
    [
        PAGE_TEXT.format(meta="").encode("utf-8"),
        codecs.BOM_UTF8 + PAGE_TEXT.format(meta='<meta charset="windows-1252">').encode("utf-8"),
        PAGE_TEXT.format(meta='<meta charset="iso-8859-1">').encode("cp1252"),
        PAGE_TEXT.format(meta="").encode("cp1252"),  # undeclared, not UTF-8
        codecs.BOM_UTF16_LE + PAGE_TEXT.format(meta="").encode("utf-16-le"),
        PAGE_TEXT.format(meta="").encode("utf-16-be"),  # no BOM
        PAGE_TEXT.format(meta='<meta charset="no-such-charset">').encode("utf-8"),
        PAGE_TEXT.format(meta="<!-- \x85 -->").encode("utf-8").replace(b"\xc2\x85", b"\x85"),
    ],
    ids=[
        "utf-8",
        "bom-wins",
        "latin1-label",
        "undeclared-1252",
        "utf-16-bom",
        "utf-16-be",
        "unknown-label",
        "mostly-utf-8",
    ],
)
def test_decoding(content: bytes) -> None:
    source = _source_with(item="li", title="a", link="a@href")
    (entry,) = parse_page(source, content, URL)
    assert entry.title == TITLE


def test_nul_bytes_inside_a_page_are_dropped() -> None:
    source = _source_with(item="li", title="a", link="a@href")
    content = _page("<ul><li><a href='/1'>One\x00Two</a></li></ul>" + "x" * 2000) + b"\x00"
    content = content.replace(b"<!DOCTYPE html>", b"<!DOCTYPE html>" + b" " * 1100)
    (entry,) = parse_page(source, content, URL)
    assert entry.title == "OneTwo"


# -- dispatch, dates from the source, imports ---------------------------------------------


def test_parse_reads_pages_against_the_final_url() -> None:
    fetched = Fetched(
        source_key="latest",
        url=URL,
        final_url="https://www.example.org/moved/",
        status=200,
        content=_page('<ul class="latest"><li><a href="p/1">One</a></li></ul>'),
        content_type="text/html; charset=utf-8",
    )
    entries = parse(SOURCE, fetched)
    assert entries == (RawEntry(link="https://www.example.org/moved/p/1", title="One"),)


def test_source_date_settings_are_used() -> None:
    content = _page(
        '<ul><li><a href="/1">1</a><span>03/12/2026</span></li>'
        '<li><a href="/2">2</a><span>2026.071</span></li></ul>'
    )
    select = (("item", "li"), ("title", "a"), ("link", "a@href"), ("date", "span"))
    uk = Source(key="s", name="S", url=URL, kind="page", select=select)
    us = dataclasses.replace(uk, day_first=False)
    ordinal = dataclasses.replace(uk, date_format="%Y.%j")
    assert [e.published for e in parse_page(uk, content, URL)] == [_utc(2026, 12, 3), None]
    assert [e.published for e in parse_page(us, content, URL)] == [_utc(2026, 3, 12), None]
    assert [e.published for e in parse_page(ordinal, content, URL)] == [
        _utc(2026, 12, 3),
        _utc(2026, 3, 12),
    ]


def test_dates_are_aware_utc() -> None:
    source = _source_with(item="li", title="a", link="a@href", date="time@datetime")
    content = _page(
        '<ul><li><a href="/1">1</a><time datetime="2026-03-12T09:30:00+05:30"></time></li></ul>'
    )
    (entry,) = parse_page(source, content, URL)
    assert entry.published == datetime(
        2026, 3, 12, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert entry.published is not None and entry.published.tzinfo is UTC


def test_importing_parse_does_not_import_bs4() -> None:
    code = (
        "import sys, ingest.stages.parse; "
        "assert not {'bs4', 'soupsieve', 'lxml'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
