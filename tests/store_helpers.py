"""Stories and successful polls for the store tests (tests/test_store.py and
tests/test_service_store.py).

One job: build the `Item`s a test stores (`item`), the report of a good poll (`ok`),
save a batch as one successful poll through `Store.save_poll` (`save`), and count a
table's rows (`count`).  No fixtures: each test module opens its own `Store`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from ingest.model import Item, NextPoll, Plan, PollRecord, Source, SourceReport
from ingest.store import Store

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def item(source: Source, n: int, **kw: Any) -> Item:
    """Story `n` of `source` (published `n` hours after T0), with `kw` fields changed."""
    base = Item(
        source_key=source.key,
        entry_key=f"id:{source.key}-{n}",
        canonical_url=f"https://news.example.org/{n}",
        url=f"https://news.example.org/{n}",
        title=f"Story {n}",
        summary=f"<p>Story {n} body</p>",
        published_at=T0 + timedelta(hours=n),
        date_source="published",
        section=source.section,
        content_hash=f"h{n}",
    )
    return replace(base, **kw)


def ok(source: Source, **kw: Any) -> SourceReport:
    """A successful poll's report (HTTP 200), with `kw` fields changed."""
    return replace(SourceReport(source_key=source.key, ok=True, status=200), **kw)


def save(store: Store, source: Source, batch: list[Item], when: datetime = T0) -> Plan:
    """Store `batch` as one successful poll of `source` at `when` (next due 30 min later)."""
    record = PollRecord(source, ok(source), None, when, NextPoll(when + timedelta(minutes=30)))
    return store.save_poll(record, batch)


def count(store: Store, table: str) -> int:
    """``SELECT count(*) FROM <table>`` (a join, with its WHERE, will do)."""
    with store.engine.connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    """Run the migrations on the database at `url` up (or `down`) to `revision`."""
    from sqlalchemy import create_engine

    from ingest.store import migrations

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            migrations._run_alembic(conn, revision, down=down)
    finally:
        engine.dispose()
