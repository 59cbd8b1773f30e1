"""Many stories, fast: fill a migrated database for plan tests and benchmarks.

One job: write `n` deterministic stories straight into the tables (executemany,
one transaction), exactly as the store's writes would leave them: one
`item_sources` row per story carrying the story's `published_at`, a few
stories carried by a second source too, and the search index written with
`ingest.store.search.write_documents`.  Used by tests/test_plans.py and
benchmarks/bench_api.py (`--stories 1000000` fills in minutes, where the
pipeline's own write path would take an hour).  It checks nothing.

Sources (key, section, kind, share): `bmj-leader` latest 60 %, `nhs-blog`
blogs 20 %, `ted` videos 10 % (videos), `academy` highlighted 9.9 %, and
`rare` research 0.1 % (audio: a source, section and kind whose stories a scan
would have to dig for).
Dates are a year of minutes, so some stories share a `published_at`.  Titles
and summaries are drawn from a vocabulary with word frequencies falling off as
in real text (Zipf), so a search for two ordinary words matches a small share
of the stories, as on a real site; `WORDS[0]` is the most common word.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

from ingest.model import Source
from ingest.store import Store, search
from ingest.store.schema import item_sources, items

__all__ = ["NOW", "SOURCES", "WORDS", "fill"]

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Feed:
    source: Source
    share: float
    kind: str


_FEEDS = (
    _Feed(Source(key="bmj-leader", name="BMJ Leader", url="https://a.example/rss"), 0.6, "article"),
    _Feed(Source(key="nhs-blog", name="NHS England", url="https://b.example/rss",
                 section="blogs"), 0.2, "article"),
    _Feed(Source(key="ted", name="TED", url="https://c.example/rss", section="videos"), 0.1,
          "video"),
    _Feed(Source(key="academy", name="Leadership Academy", url="https://d.example/rss",
                 section="highlighted"), 0.099, "article"),
    _Feed(Source(key="rare", name="Rare Journal", url="https://e.example/rss",
                 section="research"), 0.001, "audio"),
)  # fmt: skip
SOURCES = [f.source for f in _FEEDS]

_TOPICS = [
    "leadership", "care", "quality", "team", "nurse", "board", "culture", "safety", "patient",
    "health", "system", "clinical", "workforce", "inclusion", "learning", "trust", "evidence",
    "staff", "burnout", "wellbeing", "primary", "hospital", "digital", "research", "equality",
    "mental", "training", "community", "funding", "strategy", "outcome",
]  # fmt: skip
_SYLLABLES = ["ba", "ce", "di", "fo", "gu", "ka", "le", "mi", "no", "pu", "ra", "se", "ti", "vo",
              "zu"]  # fmt: skip
WORDS = _TOPICS + [
    a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("n", "r", "l", "s", "m", "t")
]  # 31 topic words, then 1,350 made-up ones: the vocabulary, most common first
_CUMULATIVE = list(accumulate(1 / (rank + 1) for rank in range(len(WORDS))))


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, cum_weights=_CUMULATIVE, k=n))


def _stories(
    n: int, seed: int, first_id: int = 1
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rng = random.Random(seed)
    feeds = rng.choices(_FEEDS, weights=[f.share for f in _FEEDS], k=n)
    for i, feed in enumerate(feeds, start=first_id):
        url = f"https://{feed.source.key}.example.org/content/{i}"
        published = NOW - timedelta(minutes=rng.randint(0, 525_600))
        title = _words(rng, rng.randint(5, 12)).capitalize()
        summary = f"<p>{title}. {_words(rng, 30)}.</p>"
        story = {
            "id": i, "canonical_url": url, "url": url, "title": title, "summary": summary,
            "author": None, "image_url": f"https://img.example.org/{i}.jpg" if i % 3 else None,
            "published_at": published, "date_source": "published",
            "section": feed.source.section, "source_key": feed.source.key,
            "content_hash": f"h{i}", "first_seen_at": NOW, "updated_at": NOW,
            "kind": feed.kind, "duration_seconds": 600 if feed.kind == "video" else None,
            "media_url": None, "is_short": False,
            "content": f"<div><p>{_words(rng, 40)}</p></div>" if i % 4 == 0 else None,
        }  # fmt: skip
        links = [_link(feed.source.key, f"id:{i}", i, url, published)]
        if i % 50 == 0:  # one story in 50 was carried by a second source too
            other = _FEEDS[(_FEEDS.index(feed) + 1) % len(_FEEDS)].source.key
            links.append(_link(other, f"id:{i}", i, url, published))
        yield story, links


def _link(source: str, entry: str, item_id: int, url: str, published: datetime) -> dict[str, Any]:
    return {
        "source_key": source, "entry_key": entry, "item_id": item_id, "url": url,
        "content_hash": "h", "first_seen_at": NOW, "updated_at": NOW, "published_at": published,
    }  # fmt: skip


def fill(store: Store, n: int, *, seed: int = 5, batch: int = 20_000, first_id: int = 1) -> None:
    """Write `n` stories (ids from `first_id`) into the migrated database of `store`, then
    ANALYZE."""
    store.sync_sources(SOURCES, NOW)
    stories, links = [], []
    last = first_id + n - 1
    with store.engine.begin() as conn:
        search.add_slices(conn, first_id, last)  # PostgreSQL's search slices for those ids
        for story, story_links in _stories(n, seed, first_id):
            stories.append(story)
            links.extend(story_links)
            if len(stories) >= batch:
                _write(conn, stories, links)
                stories, links = [], []
        _write(conn, stories, links)
        if conn.dialect.name == "postgresql":  # the ids were given: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('items', 'id'), "
                              "greatest(:n, (SELECT max(id) FROM items)))"),
                         {"n": max(last, 1)})  # fmt: skip
    with store.engine.begin() as conn:  # what autovacuum (PostgreSQL) / optimize would do
        conn.execute(text("ANALYZE"))


def _write(conn: Connection, stories: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
    if not stories:
        return
    conn.execute(insert(items), stories)
    conn.execute(insert(item_sources), links)
    search.write_documents(
        conn,
        [(s["id"], s["title"], s["summary"], s["content"], s["published_at"]) for s in stories],
    )
