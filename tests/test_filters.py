"""filters.py: include/exclude keyword lists (whole words, any case), max_age and retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingest.model import Item, Source
from ingest.stages.filters import keep, matches, verdicts

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


def dated(title: str, days_old: float) -> Item:
    return replace(story(title), published_at=NOW - timedelta(days=days_old))


def test_max_age_skips_stories_published_longer_ago() -> None:
    src = Source(key="s", name="S", url="https://x.org/", max_age=30 * 86400.0)
    items = [dated("new", 1), dated("edge", 30), dated("old", 30.5)]
    assert [i.title for i in keep(src, items, now=NOW)] == ["new", "edge"]
    assert keep(src, items) == tuple(items)  # without a `now` there is no age to judge


def test_the_stricter_of_max_age_and_retention_wins() -> None:
    items = [dated("a", 5), dated("b", 50), dated("c", 500)]
    loose = Source(key="s", name="S", url="https://x.org/", max_age=400 * 86400.0)
    strict = Source(key="s", name="S", url="https://x.org/", max_age=10 * 86400.0)
    retention = NOW - timedelta(days=365)
    assert [i.title for i in keep(loose, items, not_before=retention, now=NOW)] == ["a", "b"]
    assert [i.title for i in keep(strict, items, not_before=retention, now=NOW)] == ["a"]


def test_verdicts_say_why() -> None:
    src = Source(key="s", name="S", url="https://x.org/", include=("leader",),
                 exclude=("obituary",), max_age=7 * 86400.0)  # fmt: skip
    items = [dated("A leader", 1), dated("Weather", 1), dated("Leader obituary", 1),
             dated("Old leader", 8), dated("Ancient leader", 900)]  # fmt: skip
    got = verdicts(src, items, not_before=NOW - timedelta(days=365), now=NOW)
    assert [why for _, why in got] == [
        None,
        "mentions none of the include words",
        "mentions 'obituary' (exclude)",
        f"published {NOW - timedelta(days=8):%Y-%m-%d}, older than max_age 7d",
        f"published {NOW - timedelta(days=900):%Y-%m-%d}, older than max_age 7d",
    ]
    retained = Source(key="s", name="S", url="https://x.org/")
    ((_, why),) = verdicts(retained, [dated("x", 900)], not_before=NOW - timedelta(days=365))
    assert why is not None and "retention" in why
