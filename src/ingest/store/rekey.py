"""Entries whose id changed: find the stored story they are, and move the entry's key to it.

Some feeds give an entry a new guid on every edit (or every poll).  Read as
it is, each new guid is a new entry, and when its link changed too (a session
parameter, a new slug) a duplicate story.  `rekey` is the repair, run by
`writes.save_items` inside the poll's transaction before dedupe decides: an
entry of the batch whose key the source has not stored, but whose canonical
link, or else whose title and date, match a story this same source carries
under another key that the batch no longer has, takes that story over: its
`item_sources` row gets the new key (so the change is recorded there), and
dedupe then sees a known entry, updated in place or the same.  It never
looks at other sources' entries (the canonical link already merges those),
never matches two entries of one batch to one story, and leaves curated
sources alone (their items are their links).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.engine import Connection

from ingest.model import Item
from ingest.store import direct
from ingest.store.db import chunks
from ingest.store.schema import item_sources, items

__all__ = ["rekey"]

_DATED = frozenset({"published", "updated"})


# built once (store/direct.py keys its compiled forms by the object; building a statement
# cost more than running it); an expanding IN list is filled in per call
_ANY_ENTRY = (
    select(item_sources.c.entry_key)
    .where(item_sources.c.source_key == bindparam("b_source"))
    .limit(1)
)
_CARRIED = item_sources.join(items, items.c.id == item_sources.c.item_id)


def _carried_by(match: Any, name: str, *wanted: Any) -> Select[Any]:
    """This source's stored entries whose story's `match` column is in the list `name`:
    `wanted`, then (entry key, content hash, story id), oldest first."""
    return (
        select(*wanted, item_sources.c.entry_key, item_sources.c.content_hash,
               item_sources.c.item_id)
        .select_from(_CARRIED)
        .where(
            item_sources.c.source_key == bindparam("b_source"),
            match.in_(bindparam(name, expanding=True)),
        )
        .order_by(item_sources.c.first_seen_at)
    )  # fmt: skip


_CARRIED_BY_URL = _carried_by(items.c.canonical_url, "b_urls", items.c.canonical_url)
_CARRIED_BY_TITLE = _carried_by(items.c.title, "b_titles", items.c.title, items.c.published_at)


def rekey(
    conn: Connection,
    source_key: str,
    batch: Sequence[Item],
    known: Mapping[str, tuple[str, int]],
    now: datetime,
) -> dict[str, tuple[str, int]]:
    """Re-key the stored entries that the batch's unknown entries are; returns them as
    new entry key -> (content hash, story id), to add to what `_known` read."""
    live = {i.entry_key for i in batch}
    unknown = [i for i in dict.fromkeys(i.entry_key for i in batch) if i not in known]
    if not unknown or not (known or _has_entries(conn, source_key)):
        return {}  # nothing new, or a source with nothing stored yet (its first poll)
    todo = {i.entry_key: i for i in batch if i.entry_key in set(unknown)}
    # (old key, hash, story id) of this source's entries that left the batch, by story
    taken: set[str] = set()
    moved: dict[str, tuple[str, tuple[str, int]]] = {}  # new key -> (old key, (hash, id))

    def claim(new: str, rows: Sequence[tuple[str, str, int]]) -> None:
        for old, digest, item_id in rows:
            if old not in live and old not in taken:
                taken.add(old)
                moved[new] = (old, (digest, item_id))
                return

    by_url: dict[str, list[tuple[str, str, int]]] = {}
    urls = sorted({i.canonical_url for i in todo.values()})
    for chunk in chunks(urls):
        rows = conn.execute(_CARRIED_BY_URL, {"b_source": source_key, "b_urls": list(chunk)})
        for url, old, digest, item_id in rows:
            by_url.setdefault(url, []).append((old, digest, item_id))
    for key, item in todo.items():
        claim(key, by_url.get(item.canonical_url, []))

    rest = [i for k, i in todo.items() if k not in moved and i.date_source in _DATED and i.title]
    by_title: dict[tuple[str, datetime], list[tuple[str, str, int]]] = {}
    for chunk in chunks(sorted({i.title for i in rest})):
        dated = conn.execute(_CARRIED_BY_TITLE, {"b_source": source_key, "b_titles": list(chunk)})
        for title, published, old, digest, item_id in dated:
            by_title.setdefault((title, published), []).append((old, digest, item_id))
    for item in rest:
        claim(item.entry_key, by_title.get((item.title, item.published_at), []))

    for new, (old, _) in moved.items():
        conn.execute(
            update(item_sources)
            .where(item_sources.c.source_key == source_key, item_sources.c.entry_key == old)
            .values(entry_key=new, updated_at=now)
        )
    return {new: stored for new, (_, stored) in moved.items()}


def _has_entries(conn: Connection, key: str) -> bool:
    """Whether the source has stored any entry (every first poll of a source asks)."""
    return bool(direct.dicts(conn, _ANY_ENTRY, {"b_source": key}))
