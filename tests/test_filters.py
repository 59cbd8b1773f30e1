"""filters.py: include/exclude keyword lists, whole words, case-insensitive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.filters import keep, matches
from ingest.model import Item, Source

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def story(title: str, summary: str = "") -> Item:
    return Item(source_key="s", entry_key=f"id:{title}", canonical_url=f"https://x.org/{title}",
                url=f"https://x.org/{title}", title=title, summary=summary, published_at=NOW,
                date_source="published")  # fmt: skip


@pytest.mark.parametrize(
    ("words", "text", "expected"),
    [
        (["leader"], "A new Leader for the trust", True),
        (["leader"], "Leadership in the NHS", False),  # whole words only
        (["LEADERSHIP"], "leadership matters", True),  # case-insensitive
        (["patient safety"], "on patient\n  safety today", True),  # phrases span whitespace
        (["c++"], "we like c++ a lot", True),  # punctuation is literal
        (["team"], "teams and teamwork", False),
        ([], "anything", False),
        (["  "], "anything", False),
    ],
)
def test_matches(words: list[str], text: str, expected: bool) -> None:
    assert matches(words, text) is expected


def test_include_keeps_only_mentions_in_title_or_summary_text() -> None:
    src = Source(key="s", name="S", url="https://x.org/feed", include=("leadership",))
    items = [
        story("Leadership lessons"),
        story("Budget news", "<p>What <b>leadership</b> means</p>"),
        story("Budget news 2", '<a href="https://x.org/leadership">link</a>'),  # only in markup
        story("Weather"),
    ]
    assert [i.title for i in keep(src, items)] == ["Leadership lessons", "Budget news"]


def test_exclude_drops_and_wins_over_include() -> None:
    src = Source(key="s", name="S", url="https://x.org/feed", include=("leader",),
                 exclude=("obituary",))  # fmt: skip
    items = [story("Leader obituary"), story("A leader speaks"), story("Obituary")]
    assert [i.title for i in keep(src, items)] == ["A leader speaks"]


def test_no_lists_keeps_everything_and_entities_are_text() -> None:
    items = [story("a"), story("b", "<p>caf&eacute; leader</p>")]
    assert keep(Source(key="s", name="S", url="https://x.org/"), items) == tuple(items)
    src = Source(key="s", name="S", url="https://x.org/", include=("café",))
    assert [i.title for i in keep(src, items)] == ["b"]
