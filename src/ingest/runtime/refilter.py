"""`ingest refilter`: apply changed keep/drop rules to the stories already stored.

One job: decide, for the stories of the last N days, which the sources'
filters (include, exclude, rules) now turn away, and hide them; and which
hidden ones they now keep, and show them again (`decide`, pure), then have
the store do it (`refilter`).  A story is hidden only when every source in
the file that carries it turns it away; stories carried only by sources no
longer in the file are left as they are.  Age limits (`max_age`, retention)
are not applied here: they are about age, not about the rules, and pruning
takes care of them.  Nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ingest.model import Item, Source
from ingest.stages.filters import verdicts
from ingest.store import Store

if TYPE_CHECKING:
    import argparse

__all__ = ["Change", "decide", "main", "refilter"]


@dataclass(frozen=True, slots=True)
class Change:
    """One story hidden or shown again."""

    item_id: int
    title: str
    published_at: datetime
    hide: bool
    why: str | None  # for a hidden story: which source's filter and rule


def _item(row: Mapping[str, Any], source: Source) -> Item:
    return Item(
        source_key=source.key, entry_key="", canonical_url=row["canonical_url"], url=row["url"],
        title=row["title"], summary=row["summary"], published_at=row["published_at"],
        date_source=row["date_source"], author=row["author"],
    )  # fmt: skip


def decide(sources: Sequence[Source], rows: Sequence[Mapping[str, Any]]) -> list[Change]:
    """The changes the filters of `sources` ask for among the stored stories `rows`
    (as `Store.recent_stories` returns them)."""
    by_key = {s.key: replace(s, max_age=None) for s in sources}
    changes: list[Change] = []
    for row in rows:
        carriers = [by_key[k] for k in row["sources"] if k in by_key]
        if not carriers:
            continue
        reasons: list[str] = []
        for source in carriers:
            ((_, why),) = verdicts(source, [_item(row, source)])
            if why is None:
                break
            reasons.append(f"{source.key}: {why}")
        dropped = len(reasons) == len(carriers)
        hidden = row["hidden_by"] is not None
        if dropped and not hidden:
            changes.append(Change(row["id"], row["title"], row["published_at"], True, reasons[0]))
        elif hidden and not dropped:
            changes.append(Change(row["id"], row["title"], row["published_at"], False, None))
    return changes


def refilter(
    store: Store, sources: Sequence[Source], days: float, now: datetime, *, dry_run: bool
) -> tuple[int, list[Change]]:
    """Apply the filters of `sources` to the stories of the last `days` days; returns how
    many stories were looked at and what changed (with `dry_run`, what would)."""
    rows = store.recent_stories(now - timedelta(days=days))
    changes = decide(sources, rows)
    if changes and not dry_run:
        hide = {c.item_id: c.why or "" for c in changes if c.hide}
        show = [c.item_id for c in changes if not c.hide]
        store.set_hidden(hide, show, now)
    return len(rows), changes


def main(args: argparse.Namespace) -> int:
    """`ingest refilter [--days N] [--dry-run]`: print each change and a summary; exit 0."""
    from datetime import UTC

    from ingest.config import load_config
    from ingest.stages.controls import printable

    config = load_config(args.sources)
    with Store.open(args.db) as store:
        now = datetime.now(UTC)
        looked, changes = refilter(store, config.sources, args.days, now, dry_run=args.dry_run)
    for c in changes:
        what = (
            f"hide  {c.published_at:%Y-%m-%d}  {c.title}  ({c.why})"
            if c.hide
            else (f"show  {c.published_at:%Y-%m-%d}  {c.title}")
        )
        print(printable(what))
    hidden = sum(c.hide for c in changes)
    verb = "would be" if args.dry_run else "were"
    print(
        f"{looked} stories of the last {args.days:g} days checked: {hidden} {verb} hidden, "
        f"{len(changes) - hidden} {verb} shown again"
        + ("; nothing was written" if args.dry_run else "")
    )
    return 0
