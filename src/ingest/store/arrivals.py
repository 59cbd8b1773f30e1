"""Read when each source's entries arrived, for `every: auto` (policy.adaptive_interval).

An entry's arrival is the earlier of its story's publication date and when
this source first carried it (`item_sources.first_seen_at`): the date the
feed gave, unless it lies in the future.  `with_intervals` adds to the
rows of `ingest status` the interval each source is polled at now.  This
module only reads; what the cadence means is policy.py's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from ingest.model import Arrivals, Source
from ingest.stages.policy import adaptive_interval, cadence_window
from ingest.store.configs import source_from_json
from ingest.store.db import chunks
from ingest.store.schema import item_sources, items

__all__ = ["arrivals", "with_intervals"]


def arrivals(conn: Connection, keys: Sequence[str], start: datetime) -> dict[str, Arrivals]:
    """Per source of `keys`: its arrivals since `start` (oldest first) and its oldest ever.

    Sources without a stored entry are absent.
    """
    arrived = case(
        (items.c.published_at < item_sources.c.first_seen_at, items.c.published_at),
        else_=item_sources.c.first_seen_at,
    ).label("arrived")
    joined = item_sources.join(items, items.c.id == item_sources.c.item_id)
    mine = item_sources.c.source_key
    since: dict[str, datetime] = {}
    times: dict[str, list[datetime]] = {}
    for chunk in chunks(keys):  # each source's rows are read by the primary key's prefix
        oldest = select(mine, func.min(arrived)).select_from(joined)
        for key, when in conn.execute(oldest.where(mine.in_(chunk)).group_by(mine)):
            since[key] = when
        # an arrival is never later than first_seen_at: the filter narrows, Python sorts
        recent = select(mine, arrived).select_from(joined)
        recent = recent.where(mine.in_(chunk), item_sources.c.first_seen_at >= start)
        for key, when in conn.execute(recent):
            if when >= start:
                times.setdefault(key, []).append(when)
    return {key: Arrivals(tuple(sorted(times.get(key, ()))), when) for key, when in since.items()}


def with_intervals(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """Add `every_auto` and `poll_interval_seconds` to each status row (None for cron).

    An `every: auto` source's interval is what policy.py would choose at `now`
    from its arrivals; a row whose stored configuration cannot be read shows
    its `every_seconds`.
    """
    auto: dict[float, list[tuple[dict[str, Any], Source]]] = {}  # by window: one read each
    for row in rows:
        row["every_auto"] = False
        row["poll_interval_seconds"] = row.get("every_seconds")
        try:
            source = source_from_json(row["config"]) if row.get("config") else None
        except (ValueError, TypeError):
            continue
        if source is not None and source.auto:
            auto.setdefault(cadence_window(source), []).append((row, source))
    for window, group in auto.items():
        start = now - timedelta(seconds=window)
        got = arrivals(conn, [source.key for _, source in group], start)
        for row, source in group:
            row["every_auto"] = True
            row["poll_interval_seconds"] = adaptive_interval(
                got.get(source.key, Arrivals()),
                now,
                min_every=source.min_every,
                max_every=source.max_every,
            )
