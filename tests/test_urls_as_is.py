"""The URL shortcuts give what the whole reading gives: `joins_as_is` (which lets
`absolute_http_url` and the fast reader skip a join) and `canonical_url`'s ordinary
shape, on generated URLs and bases and on every link of the real-world corpus."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import feedparser.urls
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.stages.urls import _canonical, absolute_http_url, canonical_url, joins_as_is

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "realworld" / "feeds"


def joined(url: str, base: str) -> str | None:
    """`absolute_http_url` as it was before the shortcut."""
    if not url:
        return None
    url = url.strip()
    try:
        absolute = urllib.parse.urljoin(base, url) if base else url
        parts = urllib.parse.urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return absolute


# the pieces a join treats specially, and a few ordinary ones
pieces = st.sampled_from(
    ["http://", "https://", "HTTP://", "ftp://", "//", "/", "?", "#", ";", "[", "]", ":", "@",
     "%2F", "\t", "\n", "\r", " ", "\x00", "\x1f", "é", "ä.example", "a", "b.org", "..", ".",
     "x=1", "&", "=", "80", "[::1]", "\\"]
)  # fmt: skip
anything = st.lists(pieces, max_size=8).map("".join)
# most links are absolute: a scheme and a host, then anything
absolute = st.tuples(
    st.sampled_from(["http://", "https://"]),
    st.sampled_from(["a.example", "b.org:8080", "x"]),
    anything,
).map("".join)
urls = st.one_of(anything, absolute)
bases = st.one_of(
    st.sampled_from(["", "http://example.org/a/b", "https://example.org/", "ftp://x/y",
                     "http://[::1]/", "http://[bad/", "https://é.example/", "/relative"]),
    urls,
)  # fmt: skip


@settings(max_examples=3000)
@given(url=urls, base=bases)
@example(url="http://a/b?", base="http://x/")
@example(url="http://a/b?#f", base="http://x/")
@example(url="http://a/b;p", base="http://x/")
@example(url="http:///b", base="http://x/")
@example(url="http://a/b", base="http://[bad/")
@example(url="https://a/b", base="http://x/")
def test_a_url_kept_as_is_is_what_the_joins_give(url: str, base: str) -> None:
    stripped = url.strip()
    if joins_as_is(stripped, base):
        assert urllib.parse.urljoin(base, stripped) == stripped
        assert feedparser.urls._urljoin(base, stripped) == stripped
        assert joined(stripped, base) == stripped
    assert absolute_http_url(url, base) == joined(url, base)


def test_the_shapes_a_join_would_change_are_not_kept() -> None:
    base = "http://example.org/"
    for url in (
        "http://a/b?",
        "http://a/b#",
        "http://a/b?#x",
        "http://a/b;p",
        "http:///b",
        "http://a/b\tc",
        "http://[::1]/",
        "HTTP://a/",
        "http://é.example/",
        "//a/b",
    ):
        assert not joins_as_is(url, base), url  # fmt: skip
    assert not joins_as_is("http://a/b", "http://[::1]/")  # a base with brackets
    assert joins_as_is("https://a.example/b?c=d#e", base)
    assert joins_as_is("http://a.example", "")


HREF = re.compile(rb"""(?:href|url|src)=["']([^"']{1,500})["']|<link>([^<]{1,500})</link>""")


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="../shared/corpus/realworld is not here")
def test_every_link_of_the_real_feeds_joins_alike() -> None:
    seen = kept = 0
    for path in sorted(REALWORLD.iterdir()):
        for match in HREF.finditer(path.read_bytes()):
            url = (match.group(1) or match.group(2)).decode("utf-8", "replace")
            for base in ("", "https://www.example.org/feed/", "http://example.org/"):
                seen += 1
                kept += joins_as_is(url.strip(), base)
                assert absolute_http_url(url, base) == joined(url, base), (url, base)
                if joins_as_is(url.strip(), base):
                    assert feedparser.urls._urljoin(base, url.strip()) == url.strip()
            assert canonical_url(url) == _canonical(url.strip(), ()), url
    assert seen > 10_000 and kept > seen // 2  # the corpus's links, most of them kept


# a canonical-looking URL, then anything: the shapes canonical_url's shortcut may take
ordinary = st.tuples(
    st.sampled_from(["http://", "https://", "HTTP://"]),
    st.sampled_from(["a.example", "b-c.org", "x_y.example", "10.0.0.1", "Up.example", "a.b."]),
    st.sampled_from(["", "/", "/p/a-t_h.html", "/a;b=c/", "/%7Ex", "/é", "//x"]),
    st.sampled_from(["", "?", "?b=2&a=1", "?utm_source=x&id=3", "?q=a+b&Q=c", "?x=%41", "?a=é"]),
    st.sampled_from(["", "#", "#frag", "#a?b"]),
    anything,
).map("".join)


@settings(max_examples=3000)
@given(url=st.one_of(ordinary, urls), strip=st.sampled_from([(), ("id",), ("Q", "b")]))
@example(url="https://a.example/p?b=2&a=1#f", strip=())
def test_canonical_urls_shortcut_gives_what_the_whole_reading_gives(
    url: str, strip: tuple[str, ...]
) -> None:
    assert canonical_url(url, strip) == _canonical(url.strip(), strip)
