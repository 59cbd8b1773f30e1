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

from ingest.model import Arrivals
from ingest.policy import adaptive_interval, cadence_window
from ingest.store.configs import source_from_json
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
    out: dict[str, Arrivals] = {}
    for key in keys:  # one source at a time: each is read by the primary key's prefix
        first = conn.execute(select(func.min(arrived)).select_from(joined).where(mine == key))
        since: datetime | None = first.scalar()
        if since is None:
            continue
        recent = conn.execute(
            # an arrival is never later than first_seen_at: the index narrows, Python sorts
            select(arrived).select_from(joined)
            .where(mine == key, item_sources.c.first_seen_at >= start)
        ).scalars()  # fmt: skip
        out[key] = Arrivals(tuple(sorted(t for t in recent if t >= start)), since)
    return out


def with_intervals(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """Add `every_auto` and `poll_interval_seconds` to each status row (None for cron).

    An `every: auto` source's interval is what policy.py would choose at `now`
    from its arrivals; a row whose stored configuration cannot be read shows
    its `every_seconds`.
    """
    for row in rows:
        row["every_auto"] = False
        row["poll_interval_seconds"] = row.get("every_seconds")
        try:
            source = source_from_json(row["config"]) if row.get("config") else None
        except (ValueError, TypeError):
            continue
        if source is None or not source.auto:
            continue
        start = now - timedelta(seconds=cadence_window(source))
        got = arrivals(conn, [source.key], start).get(source.key, Arrivals())
        row["every_auto"] = True
        row["poll_interval_seconds"] = adaptive_interval(
            got, now, min_every=source.min_every, max_every=source.max_every
        )
