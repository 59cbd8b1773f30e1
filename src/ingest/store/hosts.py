"""Shared host state in the database: cool-downs, failures in a row, request slots.

One job: keep what every polling process (`ingest run`, the scheduler, each
`ingest worker`) must agree on about a host, in `host_cooldowns` and
`hosts`.  `record_cooldowns` (called by `writes.record_polls` in the same
transaction) writes the cool-downs that finished polls start, a 429's and,
once `settings: host_failures` polls of a host have failed in a row, the
failures' (a later end wins over an earlier one, never the other way), and
counts each poll for or against its host (a poll the server answered sets
the count back to 0).  `take_slot` gives a request to a host the next slot
that `per_host_delay` allows, in one transaction (SQLite's write lock,
PostgreSQL's row lock), so requests from several processes queue for it.
`cooldowns_in_force` reads every cool-down in force in one query (the
pipeline's snapshot, cooldowns.py) and `active_cooldowns` the same with
their sources (`ingest status`).  Which
answers start a cool-down and for how long is politeness.py's decision, not
this module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from ingest.model import PollRecord
from ingest.stages.politeness import (
    cooldown_of,
    failure_cooldown,
    failure_reason,
    host_outcome,
    record_host,
    slot_after,
)
from ingest.store.db import dialect_insert
from ingest.store.schema import host_cooldowns, hosts

__all__ = ["active_cooldowns", "cooldowns_in_force", "record_cooldowns", "take_slot"]


@dataclass
class _Run:
    """One host's polls in a batch, folded in order: whether an answer came (which
    clears the earlier count), the failures after the last answer, and the last one."""

    answered: bool = False
    failures: int = 0
    last: PollRecord | None = None


def record_cooldowns(conn: Connection, records: Iterable[PollRecord]) -> None:
    """Store the cool-downs `records` start (a 429's, a run of failures') and count each
    poll for or against its host."""
    records = list(records)
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        found = cooldown_of(record)
        if found is not None:
            host, until, reason = found
            _keep_later(latest, host, until, reason, record)
    for host, until, reason, record in _count_failures(conn, records):
        _keep_later(latest, host, until, reason, record)
    for host in sorted(latest):  # one order in every transaction: no deadlock between them
        row = latest[host]
        stmt = dialect_insert(conn, host_cooldowns).values(**row)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["host"],
                set_={c: stmt.excluded[c] for c in ("until", "reason", "source_key", "updated_at")},
                where=host_cooldowns.c.until < stmt.excluded.until,
            )
        )


def _keep_later(
    latest: dict[str, dict[str, Any]], host: str, until: datetime, reason: str, r: PollRecord
) -> None:
    if host not in latest or latest[host]["until"] < until:
        latest[host] = {
            "host": host,
            "until": until,
            "reason": reason,
            "source_key": r.source.key,
            "updated_at": r.started_at,
        }


# the hosts that have failures or strikes (to reset those that answered): built once and
# without parameters, since the hosts failing at any time are few; an IN list of the
# batch's hosts cost SQLAlchemy a fifth of recording a batch (it renders the list anew)
_STRUCK = select(hosts.c.host).where(or_(hosts.c.failures != 0, hosts.c.strikes != 0))


def _count_failures(
    conn: Connection, records: Sequence[PollRecord]
) -> list[tuple[str, datetime, str, PollRecord]]:
    """Count the polls of `records` against their hosts (`hosts.failures`); returns the
    cool-downs (host, until, reason, last record) of the hosts whose count reached the
    rule's, whose count then starts again and whose `strikes` goes up by one."""
    runs: dict[str, _Run] = {}
    for record in records:
        outcome = host_outcome(record) if record.failure_rule.after > 0 else None
        host = record_host(record) if outcome is not None else ""
        if not host:
            continue
        run = runs.setdefault(host, _Run())
        if outcome:
            run.failures += 1
            run.last = record
        else:
            run.answered, run.failures, run.last = True, 0, None
    answered = sorted(h for h, run in runs.items() if run.answered and not run.failures)
    counted = {h for h, run in runs.items() if run.failures}
    if answered:  # the usual case: one read that finds nothing to reset
        struck = set(conn.execute(_STRUCK).scalars())
        counted.update(h for h in answered if h in struck)
    cooled = []
    # each row written in the order of its key, in every transaction: none waits in a circle
    for host in sorted(counted):
        run = runs[host]
        last = run.last
        if last is None:  # answered: the run of failures is over
            conn.execute(update(hosts).where(hosts.c.host == host).values(failures=0, strikes=0))
            continue
        stmt = dialect_insert(conn, hosts).values(host=host, failures=run.failures, strikes=0)
        again = run.failures if run.answered else hosts.c.failures + run.failures
        failures, strikes = conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["host"],
                set_={"failures": again, "strikes": 0 if run.answered else hosts.c.strikes},
            ).returning(hosts.c.failures, hosts.c.strikes)
        ).one()
        seconds = failure_cooldown(last.failure_rule, failures, strikes)
        if seconds is None:
            continue
        conn.execute(
            update(hosts).where(hosts.c.host == host).values(failures=0, strikes=strikes + 1)
        )
        until = last.started_at + timedelta(seconds=seconds)
        cooled.append((host, until, failure_reason(last, failures), last))
    return cooled


def take_slot(conn: Connection, host: str, now: datetime, delay: float) -> datetime:
    """When the next request to `host` may go, at `now` or later (its slot), moving the
    host's slot on by `delay` for the request after it; inside the caller's write
    transaction, whose lock makes taking a slot atomic across processes."""
    conn.execute(dialect_insert(conn, hosts).values(host=host).on_conflict_do_nothing())
    taken = conn.execute(
        select(hosts.c.next_request_at).where(hosts.c.host == host).with_for_update()
    ).scalar_one()
    slot, after = slot_after(taken, now, delay)
    conn.execute(update(hosts).where(hosts.c.host == host).values(next_request_at=after))
    return slot


def cooldowns_in_force(conn: Connection, now: datetime) -> dict[str, tuple[datetime, str]]:
    """host -> (until, reason) for every host cooling down at `now` (usually none)."""
    return {r["host"]: (r["until"], r["reason"]) for r in active_cooldowns(conn, now)}


def active_cooldowns(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Every cool-down still in force at `now`, the soonest to end first."""
    rows = conn.execute(
        select(host_cooldowns)
        .where(host_cooldowns.c.until > now)
        .order_by(host_cooldowns.c.until, host_cooldowns.c.host)
    )
    return [dict(r._mapping) for r in rows]
