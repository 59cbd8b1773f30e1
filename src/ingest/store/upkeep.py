"""The queries the unattended service needs: due sources, leases, heartbeat, pruning.

Leases make "one fetch per source at a time" hold across processes: a poller
takes a source by setting `lease_owner`/`lease_until` in one conditional
UPDATE (only where no live lease exists), and recording the poll frees it; a
crashed poller's lease simply runs out.  Pruning deletes in small batches,
each its own short transaction, so it never holds the write lock for long.
Each function takes a Connection in a transaction the caller owns; nothing
here decides *when* a source is due (that is policy.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, and_, bindparam, delete, or_, select, text, update
from sqlalchemy.engine import Connection

from ingest.store import direct
from ingest.store.db import chunks
from ingest.store.schema import UTCDateTime, fetches, items, services, settings, sources

__all__ = [
    "acquire_leases",
    "due_keys",
    "forget_services",
    "heartbeat",
    "lease_owners",
    "prune_fetches",
    "prune_items",
    "queue_counts",
    "release_leases",
    "service_row",
    "service_rows",
    "source_config",
    "stored_settings",
    "write_settings",
]

SETTINGS_ROW = "settings"


_NOW = bindparam("now", type_=UTCDateTime())  # the `now` of the statements built once here


def _lease_free(owned: bool) -> Any:
    """Not leased, or the lease ran out by the parameter `now` (or, when `owned`, held
    by the parameter `owner`)."""
    free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < _NOW)
    return or_(free, sources.c.lease_owner == bindparam("owner")) if owned else free


_FILTER_IN_SQL = 32  # at most this many keys: `due_keys` filters in SQL


def due_keys(
    conn: Connection, keys: Sequence[str], now: datetime, limit: int, owner: str | None = None
) -> list[str]:
    """Of `keys`, those due at `now` and free to poll (or leased by `owner`), most overdue first."""
    wanted = set(keys)
    # A few keys (a worker asks about one): the database filters and limits.  Many (the
    # scheduler asks about every enabled source each tick): the due rows are read and
    # filtered here, which costs a quarter of an IN list of 200 keys (SQLAlchemy renders
    # the list on every call) when the keys are most of the table, as they are.
    filtered = len(wanted) <= _FILTER_IN_SQL
    params: dict[str, Any] = {"now": now}
    if owner is not None:
        params["owner"] = owner
    if filtered:  # the database filters
        params.update(keys=sorted(wanted), page=limit)
        rows = conn.execute(_due_query(owner is not None, filtered), params)
        return [r[0] for r in rows if r[0] in wanted][:limit]
    # no IN list: the one statement runs on the driver's cursor (store/direct.py), since
    # SQLAlchemy's execution around it cost more than the query over the small table
    due = direct.dicts(conn, _due_query(owner is not None, filtered), params)
    return [key for r in due if (key := r["key"]) in wanted][:limit]


@lru_cache(maxsize=4)
def _due_query(owned: bool, filtered: bool) -> Any:
    """The SELECT behind `due_keys`, built once per shape (the scheduler asks every tick):
    parameters `now`, `owner` (when `owned`), `keys` and `page` (when `filtered`)."""
    query = (
        select(sources.c.key)
        .where(
            sources.c.enabled.is_(True),
            sources.c.in_config.is_(True),
            sources.c.disabled_reason.is_(None),
            or_(sources.c.next_due_at.is_(None), sources.c.next_due_at <= _NOW),
            or_(sources.c.retry_after_until.is_(None), sources.c.retry_after_until <= _NOW),
            _lease_free(owned),
        )
        .order_by(sources.c.next_due_at.is_not(None), sources.c.next_due_at, sources.c.key)
    )
    if filtered:
        # the LIMIT a parameter: the room left varies from tick to tick, and one statement
        # (one prepared statement on PostgreSQL) serves them all over the small sources table
        query = query.where(sources.c.key.in_(bindparam("keys", expanding=True))).limit(
            bindparam("page", type_=Integer)
        )
    return query


def acquire_leases(
    conn: Connection, keys: Sequence[str], owner: str, now: datetime, ttl: float
) -> set[str]:
    """Take the lease of each of `keys` that nobody else holds; returns those taken."""
    if not keys:
        return set()
    until = now + timedelta(seconds=ttl)
    taken: set[str] = set()
    for chunk in chunks(keys):
        params = {"keys": list(chunk), "now": now, "owner": owner, "until": until}
        taken.update(r[0] for r in conn.execute(_TAKE_LEASES, params))
    return taken


# built once: the scheduler takes leases every tick
_TAKE_LEASES = (
    update(sources)
    .where(sources.c.key.in_(bindparam("keys", expanding=True)), _lease_free(owned=True))
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until", type_=UTCDateTime()))
    .returning(sources.c.key)
)


def lease_owners(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """Who holds the lease of each of `keys` that is leased (expired or not)."""
    out: dict[str, str] = {}
    for chunk in chunks(keys):
        rows = conn.execute(
            select(sources.c.key, sources.c.lease_owner).where(
                sources.c.key.in_(chunk), sources.c.lease_owner.is_not(None)
            )
        )
        out.update((r[0], r[1]) for r in rows)
    return out


def release_leases(conn: Connection, keys: Sequence[str], owner: str) -> None:
    """Give back leases `owner` took but did not use (a poll cancelled at shutdown)."""
    if keys:
        conn.execute(
            update(sources)
            .where(sources.c.key.in_(list(keys)), sources.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def heartbeat(
    conn: Connection,
    name: str,
    owner: str,
    now: datetime,
    *,
    started_at: datetime,
    config_path: str | None,
    config_error: str | None,
    stopped: bool = False,
) -> None:
    """Record that the service `name` is alive (or has stopped cleanly)."""
    values = {
        "owner": owner,
        "started_at": started_at,
        "last_tick_at": now,
        "config_path": config_path,
        "config_error": config_error,
        "stopped_at": now if stopped else None,
    }
    done = conn.execute(update(services).where(services.c.name == name).values(**values))
    if not done.rowcount:
        conn.execute(services.insert().values(name=name, **values))


def service_row(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(services).where(services.c.name == name)).first()
    return None if row is None else dict(row._mapping)


def service_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every heartbeat row: the scheduler, dispatchers, and each worker (`worker@...`)."""
    return [dict(r._mapping) for r in conn.execute(select(services).order_by(services.c.name))]


def forget_services(conn: Connection, names: Sequence[str]) -> None:
    """Delete the heartbeat rows `names` (workers gone for good)."""
    if names:
        conn.execute(delete(services).where(services.c.name.in_(list(names))))


def prune_items(conn: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` stories published and first seen before `cutoff` (but the
    editors' undated picks, which have no age: they go when the editors remove them)."""
    ids = select(items.c.id).where(
        and_(
            items.c.published_at < cutoff,
            items.c.first_seen_at < cutoff,
            items.c.date_source != "listed",
        )
    )
    chosen = [r[0] for r in conn.execute(ids.order_by(items.c.published_at).limit(batch))]
    if not chosen:
        return 0
    # item_sources rows go with them (ON DELETE CASCADE)
    conn.execute(delete(items).where(items.c.id.in_(chosen)))
    return len(chosen)


def prune_fetches(conn: Connection, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` poll-log rows older than `cutoff`."""
    chosen = [
        r[0]
        for r in conn.execute(
            select(fetches.c.id).where(fetches.c.started_at < cutoff).order_by(fetches.c.id)
            .limit(batch)
        )
    ]  # fmt: skip
    if not chosen:
        return 0
    conn.execute(delete(fetches).where(fetches.c.id.in_(chosen)))
    return len(chosen)


def source_config(conn: Connection, key: str) -> str | None:
    """The source's validated settings as JSON (store/configs.py), if it was synced with them."""
    row = conn.execute(select(sources.c.config).where(sources.c.key == key)).first()
    return None if row is None else row[0]


def write_settings(conn: Connection, value: str, now: datetime) -> None:
    """Keep the `settings:` block (JSON) where workers read it; unchanged text is not written."""
    old = stored_settings(conn)
    if old is None:
        conn.execute(settings.insert().values(name=SETTINGS_ROW, value=value, updated_at=now))
    elif old != value:
        conn.execute(
            update(settings)
            .where(settings.c.name == SETTINGS_ROW)
            .values(value=value, updated_at=now)
        )


def stored_settings(conn: Connection) -> str | None:
    row = conn.execute(select(settings.c.value).where(settings.c.name == SETTINGS_ROW)).first()
    return None if row is None else str(row[0])


def queue_counts(conn: Connection) -> dict[str, int] | None:
    """procrastinate's jobs by status (PostgreSQL with its schema applied), else None."""
    if conn.dialect.name != "postgresql":
        return None
    if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
        return None
    rows = conn.execute(text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"))
    counts = {"todo": 0, "doing": 0, "failed": 0}
    counts.update({str(r[0]): int(r[1]) for r in rows})
    return counts
