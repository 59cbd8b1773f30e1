"""Which Items of one poll are new, changed, or the same as what is stored.

Pure: it compares a batch with the `entry_key -> content_hash` map that the
store already holds for the source and returns a `Plan`.  It never touches the
database (store calls it inside its write transaction so that the decision
and the write are one atomic step) and never looks across sources: the
cross-source merge of one story is the store's upsert on the canonical URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ingest.model import Item, Plan

__all__ = ["first_by_canonical_url", "plan"]


def plan(items: Sequence[Item], known: Mapping[str, str]) -> Plan:
    """Split `items` into new, changed and unchanged against `known` hashes.

    An entry key seen twice in the batch counts once (the first wins), so
    a feed that repeats an entry can never store it twice.
    """
    seen: set[str] = set()
    new: list[Item] = []
    changed: list[Item] = []
    same = dup = 0
    for item in items:
        if item.entry_key in seen:
            dup += 1
            continue
        seen.add(item.entry_key)
        stored = known.get(item.entry_key)
        if stored is None:
            new.append(item)
        elif stored != item.content_hash:
            changed.append(item)
        else:
            same += 1
    return Plan(new=tuple(new), changed=tuple(changed), same=same, duplicates_in_batch=dup)


def first_by_canonical_url(items: Iterable[Item]) -> dict[str, Item]:
    """One Item per story (canonical URL), the first in batch order winning.

    The store inserts stories from this map, so a batch that carries one
    story twice (two entries, one URL) makes one row, in a stable order.
    """
    out: dict[str, Item] = {}
    for item in items:
        out.setdefault(item.canonical_url, item)
    return out
