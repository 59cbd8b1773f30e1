"""Unit tests of `ingest.stages.normalize`: URL forms, the date chain, identity, text and HTML.

One job: pin down each rule of normalization on small hand-made `RawEntry`
values.  Whole documents (parse + normalize) are the file-driven cases of
test_parse.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ingest.model import RawEntry, Source
from ingest.stages.normalize import MAX_DEPTH, MAX_SUMMARY, MAX_TITLE, normalize
from ingest.stages.urls import canonical_url, clean_url

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BASE = "https://site.example/feed/"
SOURCE = Source(key="src", name="Source", url=BASE, section="blogs")


def one(
    entry: RawEntry, source: Source = SOURCE, base: str = BASE, now: datetime = NOW
) -> dict[str, Any]:
    items = normalize(source, base, [entry], now)
    assert len(items) == 1
    return dataclasses.asdict(items[0])


# -- canonical_url / clean_url ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("http://example.com/a", "https://example.com/a"),
        ("HTTPS://WWW.Example.COM/Path/Case", "https://www.example.com/Path/Case"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?", "https://example.com/"),
        ("http://example.com:80/a", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com./a", "https://example.com/a"),
        ("https://example.com/a#section-2", "https://example.com/a"),
        ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
        ("https://example.com/a?UTM_Campaign=x&id=3", "https://example.com/a?id=3"),
        ("https://example.com/a?fbclid=1&gclid=2&dclid=3&msclkid=4", "https://example.com/a"),
        ("https://example.com/a?mc_cid=1&mc_eid=2&igshid=3&yclid=4", "https://example.com/a"),
        ("https://example.com/a?_hsenc=1&_hsmi=2&mkt_tok=3&ref_src=4", "https://example.com/a"),
        ("https://example.com/a?b=2&a=1&c=3", "https://example.com/a?a=1&b=2&c=3"),
        ("https://example.com/a?tag=x&page=2&tag=a", "https://example.com/a?page=2&tag=x&tag=a"),
        ("https://example.com/a?ref=home", "https://example.com/a?ref=home"),
        ("https://example.com/a?flag&x=", "https://example.com/a?flag&x="),
        ("https://example.com/a?&&x=1&", "https://example.com/a?x=1"),
        ("https://example.com/%7Euser/%41%62c", "https://example.com/~user/Abc"),
        ("https://example.com/a%2fb%3F", "https://example.com/a%2Fb%3F"),
        ("https://example.com/caf\u00e9 menu", "https://example.com/caf%C3%A9%20menu"),
        ("https://example.com/caf%c3%a9", "https://example.com/caf%C3%A9"),
        (
            "https://example.com/s?q=caf%c3%a9+bar&lang=en",
            "https://example.com/s?lang=en&q=caf%C3%A9+bar",
        ),
        ("https://example.com/s?q=a%26b", "https://example.com/s?q=a%26b"),
        ("https://user@example.com/a", "https://user@example.com/a"),
        ("https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com/a?%75tm_source=x", "https://example.com/a"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


@pytest.mark.parametrize(
    ("url", "strip", "canonical"),
    [
        ("https://example.com/a?rss=1", ["rss"], "https://example.com/a"),
        ("https://example.com/a?RSS=1&x=2", ["rss"], "https://example.com/a?x=2"),
        ("https://example.com/a?rss=1&x=2", ["RSS"], "https://example.com/a?x=2"),
        ("https://example.com/a?rssfeed=1", ["rss"], "https://example.com/a?rssfeed=1"),
    ],
)
def test_canonical_url_strip_params_are_exact_names(
    url: str, strip: list[str], canonical: str
) -> None:
    assert canonical_url(url, strip) == canonical


def test_strip_params_may_be_any_iterable_and_add_to_the_tracking_list() -> None:
    url = "https://example.com/a?rss=1&utm_source=x&fbclid=y&id=3"
    for strip in (["rss"], ("rss",), {"rss"}, frozenset({"rss"}), iter(["rss"])):
        assert canonical_url(url, strip) == "https://example.com/a?id=3"
    assert clean_url(url, frozenset({"rss"})) == "https://example.com/a?id=3"


def test_canonical_url_spellings_of_one_page_agree() -> None:
    spellings = [
        "http://News.Example.org:80/story/1?utm_source=rss&b=2&a=1#comments",
        "https://news.example.org/story/1?a=1&b=2",
        "https://news.example.org:443/story/1?b=2&fbclid=XYZ&a=1",
        "https://NEWS.example.org/story/%31?a=%31&b=2",
    ]
    assert len({canonical_url(u) for u in spellings}) == 1


@pytest.mark.parametrize(
    ("url", "strip", "clean"),
    [
        ("https://example.com/a", [], "https://example.com/a"),
        ("http://Example.com/A?b=2&a=1#frag", [], "http://Example.com/A?b=2&a=1#frag"),
        ("https://example.com/a?utm_source=rss", [], "https://example.com/a"),
        ("https://example.com/a?utm_source=rss#top", [], "https://example.com/a#top"),
        ("https://example.com/a?b=2&utm_medium=x&a=1", [], "https://example.com/a?b=2&a=1"),
        ("https://example.com/a?x=%7E&fbclid=1", [], "https://example.com/a?x=%7E"),
        ("https://example.com/a?rss=1&id=7", ["rss"], "https://example.com/a?id=7"),
        ("https://example.com/a#?utm_source=x", [], "https://example.com/a#?utm_source=x"),
        (" https://example.com/a ", [], "https://example.com/a"),
    ],
)
def test_clean_url(url: str, strip: list[str], clean: str) -> None:
    assert clean_url(url, strip) == clean


# -- dates --------------------------------------------------------------------------


PAST = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
EARLIER = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SOON = NOW + timedelta(hours=23)  # within the day of tolerance
FUTURE = NOW + timedelta(days=1, seconds=1)


@pytest.mark.parametrize(
    ("published", "updated", "expected", "source"),
    [
        (PAST, EARLIER, PAST, "published"),
        (PAST, None, PAST, "published"),
        (None, PAST, PAST, "updated"),
        (None, None, NOW, "first_seen"),
        (FUTURE, PAST, PAST, "updated"),
        (FUTURE, None, NOW, "first_seen"),
        (FUTURE, FUTURE, NOW, "first_seen"),
        (None, FUTURE, NOW, "first_seen"),
        (SOON, PAST, SOON, "published"),
    ],
    ids=[
        "published",
        "published-only",
        "updated-only",
        "undated",
        "future-published",
        "future-only",
        "both-future",
        "future-updated",
        "within-a-day",
    ],
)
def test_date_fallback_chain(
    published: datetime | None, updated: datetime | None, expected: datetime, source: str
) -> None:
    item = one(
        RawEntry(title="T", link="https://a.example/1", published=published, updated=updated)
    )
    assert (item["published_at"], item["date_source"]) == (expected, source)
    assert item["published_at"].tzinfo == UTC


def test_dates_are_converted_to_utc_and_naive_means_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = one(RawEntry(title="T", published=datetime(2026, 2, 1, 11, 0, tzinfo=plus_two)))
    naive = one(RawEntry(title="T", published=datetime(2026, 2, 1, 9, 0)))
    assert aware["published_at"] == naive["published_at"] == PAST
    assert str(naive["published_at"].tzinfo) == "UTC"
    naive_now = one(RawEntry(title="T"), now=NOW.replace(tzinfo=None))
    assert naive_now["published_at"] == NOW


def test_first_seen_date_does_not_change_the_content_hash() -> None:
    entry = RawEntry(title="T", link="https://a.example/1", summary="<p>S</p>")
    first = one(entry, now=NOW)
    later = one(entry, now=NOW + timedelta(hours=5))
    assert first["published_at"] != later["published_at"]
    assert first["content_hash"] == later["content_hash"]
    dated = one(dataclasses.replace(entry, published=PAST))
    redated = one(dataclasses.replace(entry, published=EARLIER))
    assert dated["content_hash"] != redated["content_hash"]


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Other"},
        {"summary": "<p>Other</p>"},
        {"link": "https://a.example/2"},
        {"author": "Someone"},
        {"images": ("https://a.example/i.png",)},
    ],
)
def test_content_hash_follows_what_readers_see(change: dict[str, Any]) -> None:
    entry = RawEntry(id="x", title="T", link="https://a.example/1", summary="<p>S</p>")
    assert one(entry)["content_hash"] != one(dataclasses.replace(entry, **change))["content_hash"]


# -- identity ------------------------------------------------------------------------


def test_entry_keys_are_prefixed_by_kind() -> None:
    entries = [
        RawEntry(id=" guid-1 ", title="A", link="https://a.example/1"),
        RawEntry(title="B", link="http://A.example/2?utm_source=x"),
        RawEntry(title="C", published=PAST),
        RawEntry(id="https://a.example/4", title="D"),
    ]
    items = normalize(SOURCE, BASE, entries, NOW)
    keys = [i.entry_key for i in items]
    assert keys[:2] == ["id:guid-1", "url:https://a.example/2"]
    assert keys[2].startswith("hash:") and len(keys[2]) == len("hash:") + 40
    assert keys[3] == "id:https://a.example/4"
    assert [i.canonical_url for i in items[2:]] == [
        f"urn:ingest:src:{keys[2]}",
        "urn:ingest:src:id:https://a.example/4",
    ]
    assert [i.url for i in items] == ["https://a.example/1", "http://A.example/2", "", ""]


def test_duplicate_ids_fall_back_to_links_and_duplicate_keys_keep_the_first() -> None:
    entries = [
        RawEntry(id="7", title="first", link="https://a.example/1"),
        RawEntry(id="7", title="second", link="https://a.example/2"),
        RawEntry(id="7", title="first again", link="https://a.example/1#x"),
        RawEntry(id="8", title="unique", link="https://a.example/1"),
    ]
    items = normalize(SOURCE, BASE, entries, NOW)
    assert [(i.entry_key, i.title) for i in items] == [
        ("url:https://a.example/1", "first"),
        ("url:https://a.example/2", "second"),
        ("id:8", "unique"),
    ]


def test_hash_identity_is_stable_and_depends_on_title_and_date() -> None:
    entry = RawEntry(title="Notice", published=PAST)
    key = one(entry)["entry_key"]
    assert one(entry, now=NOW + timedelta(days=3))["entry_key"] == key
    assert one(dataclasses.replace(entry, title="Other"))["entry_key"] != key
    assert one(dataclasses.replace(entry, published=EARLIER))["entry_key"] != key


def test_links_resolve_against_xml_base_then_base_url_and_must_be_http() -> None:
    def url_of(link: str, base: str | None = None) -> str:
        return str(one(RawEntry(title="T", link=link, base=base))["url"])

    assert url_of("/x") == "https://site.example/x"
    assert url_of("x") == "https://site.example/feed/x"
    assert url_of("x", base="https://other.example/dir/") == "https://other.example/dir/x"
    assert url_of("x", base="../blog/") == "https://site.example/blog/x"
    assert url_of("//cdn.example/x") == "https://cdn.example/x"
    for unsafe in ("javascript:alert(1)", "mailto:a@b.example", "ftp://a.example/f", "data:,x"):
        assert url_of(unsafe) == ""


# -- titles, summaries, images -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Plain", "Plain"),
        ("  Spaced\n\t out  ", "Spaced out"),
        ("Caf&eacute; &amp; bar", "Café & bar"),
        ("<b>Bold</b> &lt;i&gt;move&lt;/i&gt;", "Bold move"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("<script>alert(1)</script>Safe", "Safe"),
        ("A<br/>B", "A B"),
        ("Bell\x07 and nul\x00 removed", "Bell and nul removed"),
    ],
)
def test_titles_are_plain_text(raw: str, title: str) -> None:
    assert one(RawEntry(title=raw))["title"] == title


def test_title_comes_from_summary_text_when_missing_and_entries_without_either_are_dropped() -> (
    None
):
    summary = "<p>" + " ".join(["word"] * 40) + "</p>"
    item = one(RawEntry(link="https://a.example/1", summary=summary))
    assert item["title"] == " ".join(["word"] * 16) + "…"
    assert len(item["title"]) <= 81
    dropped = [RawEntry(link="https://a.example/2"), RawEntry(title=" ", summary="<p> </p>")]
    assert normalize(SOURCE, BASE, dropped, NOW) == ()


def test_title_and_summary_are_capped() -> None:
    item = one(RawEntry(title="t" * 5000, summary="<p>" + "s & " * 60_000 + "</p>"))
    assert len(item["title"]) == MAX_TITLE
    assert len(item["summary"]) <= MAX_SUMMARY
    assert item["summary"].startswith("<p>s &amp; s")


def test_summary_prefers_summary_then_content_and_is_sanitized() -> None:
    entry = RawEntry(
        title="T",
        summary='<p onclick="x()">Short <a href="rel/page">more</a></p><script>alert(1)</script>',
        content="<p>Long</p>",
        base="https://b.example/posts/",
    )
    assert one(entry)["summary"] == (
        '<p>Short <a href="https://b.example/posts/rel/page" rel="noopener noreferrer">more</a></p>'
    )
    assert one(dataclasses.replace(entry, summary=" "))["summary"] == "<p>Long</p>"


def test_relative_urls_are_dropped_when_there_is_no_usable_base() -> None:
    item = one(RawEntry(title="T", summary='<a href="/x">x</a><img src="y.png">'), base="")
    assert item["summary"] == '<a rel="noopener noreferrer">x</a><img>'


@pytest.mark.parametrize(
    ("entry", "image"),
    [
        (
            RawEntry(title="T", images=("/a.png", "https://x.example/b.png")),
            "https://site.example/a.png",
        ),
        (
            RawEntry(title="T", images=("data:image/png;base64,AA", "b.png")),
            "https://site.example/feed/b.png",
        ),
        (
            RawEntry(title="T", summary='<img src="s.png">', content='<img src="c.png">'),
            "https://site.example/feed/s.png",
        ),
        (
            RawEntry(title="T", summary="<p>no image</p>", content='<IMG SRC="c.png?a=1&amp;b=2">'),
            "https://site.example/feed/c.png?a=1&b=2",
        ),
        (
            RawEntry(
                title="T", content='<img src="p.gif" width="1" height="1"><img src=\'r.png\'>'
            ),
            "https://site.example/feed/r.png",
        ),
        (RawEntry(title="T", summary='<img src="javascript:alert(1)">'), None),
        (RawEntry(title="T", summary="<p>none</p>"), None),
    ],
    ids=[
        "declared",
        "declared-skips-data",
        "summary-img",
        "content-img",
        "skips-pixel",
        "unsafe",
        "none",
    ],
)
def test_image_url(entry: RawEntry, image: str | None) -> None:
    assert one(entry)["image_url"] == image


def test_author_section_and_source_key() -> None:
    item = one(RawEntry(title="T", author="  Jo \n Evans "))
    assert (item["author"], item["section"], item["source_key"]) == ("Jo Evans", "blogs", "src")
    assert one(RawEntry(title="T", author="   "))["author"] is None


def test_inputs_are_not_mutated() -> None:
    entries = [RawEntry(id="1", title="<b>T</b>", link="/a", summary="<script>x</script>")]
    before = list(entries)
    normalize(SOURCE, BASE, entries, NOW)
    assert entries == before


C0 = "".join(chr(c) for c in range(32)) + "\x7f"


@pytest.mark.parametrize("where", ["title", "summary", "content", "link", "images", "media"])
def test_no_c0_control_survives_in_any_text_field_or_url(where: str) -> None:
    """Whatever the reader handed over, every string of the Item is free of C0 controls
    and DEL (a NUL is refused by PostgreSQL; ESC and BEL drive terminals); tab and
    newline may stay in text, never in URLs."""
    dirty = "\x00\x1b]0;owned\x07\x1b[31m\x08\x7f"
    raw = RawEntry(
        id=f"id{dirty}1",
        link=f"https://a.example/{dirty}story",
        title=f"Title {dirty}" if where == "title" else None,
        summary=f"<p>Story\t{dirty}text\n<img src='https://a.example/{dirty}i.png'></p>"
        if where in ("title", "summary")
        else None,
        content=f"<p>Content {dirty}</p>" if where == "content" else None,
        author=f"Au{dirty}thor",
        images=(f"https://a.example/{dirty}img.png",) if where == "images" else (),
        media_url=f"https://a.example/{dirty}v.mp4" if where == "media" else None,
        media_kind="video" if where == "media" else None,
    )
    if where in ("link", "images", "media"):
        raw = dataclasses.replace(raw, title="T")
    item = one(raw)
    for name, value in item.items():
        if isinstance(value, str):
            allowed = "" if name.endswith("url") else "\t\n"
            assert not [c for c in value if c in C0 and c not in allowed], (name, value)
    assert item["url"] == "https://a.example/]0;owned[31mstory"
    assert item["author"] == "Au]0;owned[31mthor"
    if where == "title":
        assert item["title"] == "Title ]0;owned[31m"
    if where == "images":
        assert item["image_url"] == "https://a.example/]0;owned[31mimg.png"
    if where == "media":
        assert item["media_url"] == "https://a.example/]0;owned[31mv.mp4"


def test_a_title_taken_from_the_summary_has_no_escape_sequences() -> None:
    item = one(RawEntry(link="https://a.example/1", summary="\x1b]0;pwned\x07Breaking \x1b[2Jnews"))
    assert item["title"] == "]0;pwnedBreaking [2Jnews"
    assert "\x1b" not in item["summary"] and "\x07" not in item["summary"]


@pytest.mark.parametrize("depth", [MAX_DEPTH - 10, MAX_DEPTH + 1, 15_000])
def test_html_nested_too_deep_is_stored_as_its_text(depth: int) -> None:
    """nh3's parser scans its stack of open elements for block tags, so its time grows
    with the square of the depth (20,000 nested <div>s: most of a second); deeper than
    MAX_DEPTH, a summary is stored as its text, escaped."""
    from ingest.model import RawEntry

    summary = "<div>" * depth + "deep <b>text</b> & more" + "</div>" * depth
    raw = RawEntry(id="1", link="https://a.example/1", title="t", summary=summary)
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    if depth <= MAX_DEPTH:
        assert item.summary.count("<div>") == depth and "<b>text</b>" in item.summary
    else:
        assert "<" not in item.summary and item.summary == "deep text &amp; more"


def test_tags_inside_comments_do_not_count_as_depth() -> None:
    """Word pastes `<!--[if gte mso 9]><xml>` blocks of hundreds of `<w:...>` tags: inside
    a comment they are not elements, and the summary around them stays HTML."""
    word = (
        "<!--[if gte mso 9]><xml>" + '<w:LsdException Locked="false"/>' * 800 + "</xml><![endif]-->"
    )
    raw = RawEntry(
        id="1", link="https://a.example/1", title="t", summary=word + "<p><b>kept</b></p>"
    )
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    assert "<b>kept</b>" in item.summary


@pytest.mark.parametrize(
    ("opening", "flattened"),
    [("<!-- -->", True), ("<!-->", True), ("<!--->", True), ("<!-- never closed ", False)],
)
def test_a_comment_hides_depth_only_where_a_parser_would(opening: str, flattened: bool) -> None:
    """`<!-->` and `<!--->` close at once, as an HTML parser reads them, so they hide
    nothing; an unclosed comment runs to the end, so what follows is no element."""
    summary = opening + "<div>" * (MAX_DEPTH + 1) + "deep" + "</div>" * (MAX_DEPTH + 1)
    raw = RawEntry(id="1", link="https://a.example/1", title="t", summary=summary)
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    assert "<div" not in item.summary
    if flattened:  # stored as its text
        assert "deep" in item.summary
    else:  # nh3's answer: a comment, dropped
        assert item.summary == ""


@pytest.mark.parametrize("closed", ["<p>x</p>", "<li>x</li>", "<br></br>"])
def test_end_tags_of_elements_that_do_not_nest_do_not_hide_depth(closed: str) -> None:
    """`</p>` closes no `<div>`: `<div><p>x</p>` repeated nests as deep as the `<div>`s go
    (one such summary cost nh3 most of a second), so it is stored as its text."""
    summary = (f"<div>{closed}") * (MAX_DEPTH + 1)
    raw = RawEntry(id="1", link="https://a.example/1", title="t", summary=summary)
    (item,) = normalize(SOURCE, SOURCE.url, [raw], NOW)
    assert "<div" not in item.summary
