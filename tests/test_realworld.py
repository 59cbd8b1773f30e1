"""The 200 real feeds of ../shared/corpus/realworld, read in-process: nothing refused,
nothing printed, no two entries of a source merged into one story.

One job: properties that must hold over every real publisher's shape in the corpus
(parse + normalize, as the parse worker runs them), where a hand-written fixture would
only show the shapes someone thought of.  The corpus is ``INGEST_REALWORLD`` or
../shared/corpus/realworld; where neither exists the tests skip, saying which variable
to set.  The whole corpus takes a few seconds.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.model import Item, Source
from ingest.stages.normalize import normalize
from ingest.stages.parse.discover import looks_like_html
from ingest.stages.parse.feed import parse_feed

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("INGEST_REALWORLD", ROOT.parent / "shared" / "corpus" / "realworld"))
NOW = datetime(2026, 3, 1, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    not (CORPUS / "manifest.json").exists(),
    reason=f"the real-world corpus is not at {CORPUS}: set INGEST_REALWORLD to its folder",
)


def _corpus() -> list[tuple[str, bytes, str]]:
    """(file name, bytes, the address it was fetched from) of every feed."""
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    return [
        (Path(m["file"]).name, (CORPUS / m["file"]).read_bytes(), m["original_url"])
        for m in manifest
    ]


def _items(name: str, content: bytes, url: str) -> tuple[Item, ...]:
    source = Source(key=name.split(".")[0], name=name, url=url)
    return normalize(source, url, parse_feed(content, url, "application/xml"), NOW)


def test_every_real_feed_is_a_feed_and_reads_without_a_warning() -> None:
    feeds = _corpus()
    assert len(feeds) == 200
    empty = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, content, url in feeds:
            assert not looks_like_html(content), name
            if not _items(name, content, url):  # raises ParseError if it is refused
                empty.append(name)
    assert [str(w.message) for w in caught] == []
    # one feed is not XML at all (`<?xml?xml ...??>`, unquoted attributes): feedparser
    # finds no entry in it either
    assert empty == ["7ef13a42fa7e177a.xml"]


def test_no_two_entries_of_a_feed_become_one_story_unless_they_link_the_same_url() -> None:
    """Entries with different ids may share a story only when they link the same address
    (issue: an "awesome list" of 43 sections of one page was stored as one story)."""
    merged: list[str] = []
    sharing_a_page = 0
    for name, content, url in _corpus():
        stories: dict[str, list[Item]] = defaultdict(list)
        for item in _items(name, content, url):
            stories[item.canonical_url].append(item)
        sharing_a_page += sum(1 for key in stories if "#" in key)
        for key, group in stories.items():
            if len({i.entry_key for i in group}) > 1 and len({i.url for i in group}) > 1:
                merged.append(f"{name}: {key}: {sorted(i.url for i in group)}")
    assert merged == []
    assert sharing_a_page >= 43  # the awesome list's sections, at least, are stories of their own
