"""Read queries: conditional-GET state, the latest stories, the state of each source.

Plain SELECTs over the tables in schema.py, returning model values or plain
dicts ready for printing; nothing here writes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.engine import Connection

from ingest.model import FetchState
from ingest.store.db import chunks
from ingest.store.schema import fetches, item_sources, items, sources

__all__ = [
    "failing_since",
    "fetch_states",
    "last_change",
    "latest",
    "sections",
    "source_status",
    "story_count",
    "story_lags",
]


def fetch_states(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[str | None, FetchState]]:
    """Per source of `keys` (polled or not): the URL the validators belong to, and the state."""
    out: dict[str, tuple[str | None, FetchState]] = {}
    for chunk in chunks(keys):
        rows = conn.execute(
            select(
                sources.c.key,
                sources.c.state_url,
                sources.c.etag,
                sources.c.last_modified,
                sources.c.body_hash,
                sources.c.consecutive_failures,
                sources.c.discovered_url,
            ).where(sources.c.key.in_(chunk))
        )
        out.update((r[0], (r[1], FetchState(r[2], r[3], r[4], r[5] or 0, r[6]))) for r in rows)
    return out


def latest(
    conn: Connection,
    *,
    section: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    before: tuple[datetime, int] | None = None,
) -> list[dict[str, Any]]:
    """Stories newest first, with every source that carried each one.

    `before` is a keyset cursor: only stories strictly after that
    `(published_at, id)` in the newest-first order (an index range scan on
    `ix_items_section_published` / `ix_items_published`).
    """
    query = (
        select(
            items.c.id,
            items.c.url,
            items.c.canonical_url,
            items.c.title,
            items.c.summary,
            items.c.author,
            items.c.image_url,
            items.c.published_at,
            items.c.date_source,
            items.c.first_seen_at,
            items.c.updated_at,
            items.c.section,
            items.c.source_key.label("source"),
            sources.c.name.label("source_name"),
            items.c.kind,
            items.c.duration_seconds.label("duration"),
            items.c.media_url,
            items.c.is_short,
            items.c.content,
        )
        .join(sources, sources.c.key == items.c.source_key)
        .where(items.c.hidden_at.is_(None))  # hidden by `ingest refilter`
        .order_by(items.c.published_at.desc(), items.c.id.desc())
        .limit(limit)
    )
    if section:
        query = query.where(items.c.section == section)
    if source:
        carried = select(item_sources.c.item_id).where(item_sources.c.source_key == source)
        query = query.where(items.c.id.in_(carried))
    if since is not None:
        query = query.where(items.c.published_at >= since)
    if before is not None:
        query = query.where(tuple_(items.c.published_at, items.c.id) < before)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    carriers: dict[int, list[str]] = defaultdict(list)
    if rows:
        links = conn.execute(
            select(item_sources.c.item_id, item_sources.c.source_key)
            .where(item_sources.c.item_id.in_([r["id"] for r in rows]))
            .order_by(item_sources.c.first_seen_at, item_sources.c.source_key)
        )
        for item_id, key in links:
            if key not in carriers[item_id]:
                carriers[item_id].append(key)
    for r in rows:
        r["sources"] = carriers.get(r["id"], [r["source"]])
    return rows


def source_status(conn: Connection) -> list[dict[str, Any]]:
    """One dict per source row, with how many stories it has carried and the median
    lag of its stories (`median_lag_seconds`, `story_lags`; None without any), and
    when a failing one started to fail (`failing_since`; None when unknown or not failing)."""
    counts: dict[str, int] = dict(
        conn.execute(
            select(item_sources.c.source_key, func.count()).group_by(item_sources.c.source_key)
        ).all()
    )
    lags = story_lags(conn)
    failing = failing_since(conn)
    rows = conn.execute(select(sources).order_by(sources.c.key))
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["items"] = int(counts.get(d["key"], 0))
        mine = lags.get(d["key"])
        d["median_lag_seconds"] = statistics.median(mine) if mine else None
        d["failing_since"] = failing.get(d["key"])
        out.append(d)
    return out


def failing_since(conn: Connection) -> dict[str, datetime]:
    """For each failing source, its first failed poll since its last success (the poll log)."""
    query = (
        select(fetches.c.source_key, func.min(fetches.c.started_at))
        .join(sources, sources.c.key == fetches.c.source_key)
        .where(
            sources.c.consecutive_failures > 0,
            fetches.c.outcome == "error",
            or_(
                sources.c.last_success_at.is_(None),
                fetches.c.started_at > sources.c.last_success_at,
            ),
        )
        .group_by(fetches.c.source_key)
    )
    return {key: when for key, when in conn.execute(query)}


def story_lags(conn: Connection) -> dict[str, list[float]]:
    """Per source (the first to carry it), each stored story's lag in seconds.

    A story's lag is from its publication to when ingest first stored it
    (`first_seen_at - published_at`), counted only where the date is the
    story's own (`date_source = 'published'`) and the story was published
    after the source was added (what it carried then is its back catalogue,
    not lateness).  Never below zero.
    """
    rows = conn.execute(
        select(items.c.source_key, items.c.published_at, items.c.first_seen_at)
        .join(sources, sources.c.key == items.c.source_key)
        .where(items.c.date_source == "published", items.c.published_at >= sources.c.created_at)
    )
    out: dict[str, list[float]] = defaultdict(list)
    for key, published, seen in rows:
        out[key].append(max(0.0, (seen - published).total_seconds()))
    return dict(out)


def sections(conn: Connection) -> list[str]:
    """Every section a configured source feeds, sorted."""
    return sorted(conn.execute(select(sources.c.section).distinct()).scalars())


def last_change(conn: Connection) -> datetime | None:
    """When ingest last wrote anything (every poll touches `sources.updated_at`)."""
    value: datetime | None = conn.execute(select(func.max(sources.c.updated_at))).scalar_one()
    return value


def story_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(items)).scalar_one())
