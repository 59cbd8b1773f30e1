"""Host-wide cool-downs in the database (`host_cooldowns`), shared by every polling process.

One job: write the cool-downs that finished polls start (`record_cooldowns`,
called by `writes.record_polls` in the same transaction; a later end wins
over an earlier one, never the other way) and read them back: one host's
(`host_cooldown`, which the pipeline asks before each poll) and all those
still in force (`active_cooldowns`, for `ingest status`).  Which answers
start one is `politeness.cooldown_of`'s decision, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ingest.model import PollRecord
from ingest.stages.politeness import cooldown_of
from ingest.store.db import dialect_insert
from ingest.store.schema import host_cooldowns

__all__ = ["active_cooldowns", "host_cooldown", "record_cooldowns"]


def record_cooldowns(conn: Connection, records: Iterable[PollRecord]) -> None:
    """Store the cool-down each poll of `records` starts, if any (the later end wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        found = cooldown_of(record)
        if found is None:
            continue
        host, until, reason = found
        if host not in latest or latest[host]["until"] < until:
            latest[host] = {
                "host": host,
                "until": until,
                "reason": reason,
                "source_key": record.source.key,
                "updated_at": record.started_at,
            }
    for row in latest.values():
        stmt = dialect_insert(conn, host_cooldowns).values(**row)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["host"],
                set_={c: stmt.excluded[c] for c in ("until", "reason", "source_key", "updated_at")},
                where=host_cooldowns.c.until < stmt.excluded.until,
            )
        )


def host_cooldown(conn: Connection, host: str, now: datetime) -> tuple[datetime, str] | None:
    """(until, reason) when `host` is cooling down at `now`, else None."""
    row = conn.execute(
        select(host_cooldowns.c.until, host_cooldowns.c.reason).where(
            host_cooldowns.c.host == host, host_cooldowns.c.until > now
        )
    ).first()
    return None if row is None else (row[0], row[1])


def active_cooldowns(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Every cool-down still in force at `now`, the soonest to end first."""
    rows = conn.execute(
        select(host_cooldowns)
        .where(host_cooldowns.c.until > now)
        .order_by(host_cooldowns.c.until, host_cooldowns.c.host)
    )
    return [dict(r._mapping) for r in rows]
