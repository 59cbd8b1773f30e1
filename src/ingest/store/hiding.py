"""Hidden stories (`items.hidden_at`, `hidden_by`): what `ingest refilter` reads and writes.

One job: `recent_stories` reads the stories first seen or published since a
moment, with the sources that carry them and whether they are hidden, and
`set_hidden` hides some (with the rule that turned them away) and shows
others again.  Nothing is deleted.  Which stories to hide is `refilter.py`'s
decision; the readers (`reads.latest`, the `latest_items` view) leave hidden
stories out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from ingest.store import search
from ingest.store.db import chunks
from ingest.store.reads import carriers
from ingest.store.schema import items

__all__ = ["recent_stories", "set_hidden"]


def recent_stories(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    """Stories first seen or published at or after `since`, each with `sources` (the keys
    of the sources that carry it, in the order they first did), oldest first."""
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                items.c.id,
                items.c.canonical_url,
                items.c.url,
                items.c.title,
                items.c.summary,
                items.c.author,
                items.c.published_at,
                items.c.date_source,
                items.c.section,
                items.c.hidden_by,
                carriers(conn.dialect.name).label("sources"),
            )
            .where(or_(items.c.first_seen_at >= since, items.c.published_at >= since))
            .order_by(items.c.published_at, items.c.id)
        )
    ]
    for r in rows:
        r["sources"] = r["sources"].split(",") if r["sources"] else []
    return rows


def set_hidden(
    conn: Connection, hide: Mapping[int, str], show: Sequence[int], now: datetime
) -> None:
    """Hide the stories of `hide` (story id -> why) and show those of `show` again."""
    if hide:
        conn.execute(
            update(items)
            .where(items.c.id == bindparam("b_id"))
            .values(hidden_at=now, hidden_by=bindparam("b_why")),
            [{"b_id": item_id, "b_why": why} for item_id, why in hide.items()],
        )
    for chunk in chunks(list(show)):
        conn.execute(
            update(items).where(items.c.id.in_(chunk)).values(hidden_at=None, hidden_by=None)
        )
    # a hidden story is not found by search either; shown again, it is indexed again
    search.remove_documents(conn, list(hide))
    for chunk in chunks(list(show)):
        search.write_documents(
            conn,
            [
                (r.id, r.title, r.summary, r.content, r.published_at)
                for r in conn.execute(
                    select(items.c.id, items.c.title, items.c.summary, items.c.content,
                           items.c.published_at).where(items.c.id.in_(chunk))
                )
            ],
        )  # fmt: skip
