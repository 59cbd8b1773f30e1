"""The database, behind one small facade: `Store`.

Opening a Store resolves the URL (`--db`, `INGEST_DATABASE_URL`, the SQLite
default), applies migrations if needed (`open_existing`, for the commands
that only read, refuses a database that is missing or not ingest's instead),
and then offers the few operations the pipeline and the command line need.
Reads go through `db.make_read_engine` (one round trip each on PostgreSQL,
retried once on a connection the server dropped).  Every write is one
transaction per source (a batch of state-only writes may share one), and
SQLAlchemy errors leave here as `StoreError`.  Deciding what is new is
dedupe's job; fetching and parsing are not done here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ingest import errors
from ingest.model import (
    Advert,
    Arrivals,
    FetchState,
    Item,
    Plan,
    PollRecord,
    Settings,
    Source,
    SourceReport,
    Story,
)
from ingest.stages.websub import Subscription
from ingest.store import (
    arrivals,
    configs,
    db,
    hiding,
    hosts,
    migrations,
    reads,
    search,
    subscriptions,
    upkeep,
    writes,
)

__all__ = ["Store"]

T = TypeVar("T")


class Store:
    """One database: SQLite file or PostgreSQL, migrated on open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = db.make_read_engine(engine)

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        engine = db.make_engine(db.resolve_url(url))
        if migrate:
            migrations.migrate(engine)
        return cls(engine)

    @classmethod
    def open_existing(cls, url: str | None = None) -> Store:
        """A database that already has ingest's current schema; nothing is created or
        migrated (StoreError, in one line, otherwise): for the commands that only read."""
        engine = db.make_engine(db.resolve_url(url), create=False)
        try:
            migrations.require_schema(engine)
        except errors.StoreError:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        if self._reader is not self.engine:
            self._reader.dispose()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise errors.StoreError(f"database write failed: {e}") from e

    def _read(self, fn: Callable[[Connection], T]) -> T:
        for attempt in (1, 2):
            try:
                with self._reader.connect() as conn:
                    conn.execution_options(**{db.READ_ONLY: True})
                    return fn(conn)
            except DBAPIError as e:
                if attempt == 1 and e.connection_invalidated:
                    continue  # the server dropped a pooled connection (a restart): a fresh one
                raise errors.StoreError(f"database read failed: {e}") from e
            except SQLAlchemyError as e:
                raise errors.StoreError(f"database read failed: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    # -- writes ---------------------------------------------------------------

    def sync_sources(
        self, configured: Sequence[Source], now: datetime, settings: Settings | None = None
    ) -> int:
        """Make the `sources` table match the configuration (nothing is deleted).

        With `settings`, they are stored too, for `ingest worker` (`settings()`).
        """
        with self._write() as conn:
            if settings is not None:
                upkeep.write_settings(conn, configs.settings_json(settings), now)
            return writes.sync_sources(conn, configured, now)

    def save_poll(self, record: PollRecord, batch: Sequence[Item] | None = None) -> Plan:
        """Store one successful poll's Items and its state in one transaction."""
        return self.save_polls([(record, batch)])[0]

    def save_polls(self, polls: Sequence[tuple[PollRecord, Sequence[Item] | None]]) -> list[Plan]:
        """Store several polls' Items and states in one transaction (all or none)."""
        plans, recorded = [], []
        with self._write() as conn:
            search.make_room(conn, sum(len(batch or ()) for _, batch in polls))
            for record, batch in polls:
                plan = (
                    writes.save_items(conn, record.source, batch, record.started_at)
                    if batch
                    else Plan()
                )
                counted = record.report.with_counts(plan, len(batch or ()), record.started_at)
                recorded.append(replace(record, report=counted))
                plans.append(plan)
            writes.record_polls(conn, recorded)  # the states and the poll log: a few executemany
        return plans

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        """Record polls that stored no stories (304, unchanged, failures) together."""
        if not records:
            return
        with self._write() as conn:
            writes.record_polls(conn, records)

    def acquire_leases(
        self, keys: Sequence[str], owner: str, now: datetime, ttl: float
    ) -> set[str]:
        """Take each source nobody else is polling; returns the keys taken."""
        with self._write() as conn:
            return upkeep.acquire_leases(conn, keys, owner, now, ttl)

    def release_leases(self, keys: Sequence[str], owner: str) -> None:
        with self._write() as conn:
            upkeep.release_leases(conn, keys, owner)

    def take_slot(self, host: str, now: datetime, delay: float) -> datetime:
        """When the next request to `host` may go (at `now` or later), the slot after it
        moved on by `delay`: `per_host_delay` shared by every process (store/hosts.py)."""
        with self._write() as conn:
            return hosts.take_slot(conn, host, now, delay)

    def heartbeat(self, name: str, owner: str, now: datetime, **kw: Any) -> None:
        with self._write() as conn:
            upkeep.heartbeat(conn, name, owner, now, **kw)

    def prune_batch(self, now: datetime, *, retention: float, history: float, batch: int) -> int:
        """Delete one small batch of expired stories or poll-log rows; 0 when none are left."""
        with self._write() as conn:
            done = upkeep.prune_items(conn, now - timedelta(seconds=retention), batch)
            if done:
                return done
            return upkeep.prune_fetches(conn, now - timedelta(seconds=history), batch)

    # -- reads ----------------------------------------------------------------

    def fetch_states(self, configured: Sequence[Source]) -> dict[str, FetchState]:
        """What each polled source's next poll starts from.

        Validators belong to the URL they came from (the source's own, or the
        feed discovered on it) and are dropped where that changed since they
        were stored; sources never polled are absent.
        """
        keys = [s.key for s in configured]
        now = datetime.now(UTC)

        def read(c: Connection) -> tuple[dict[str, tuple[str | None, FetchState]], set[str]]:
            return reads.fetch_states(c, keys), subscriptions.pushed_keys(c, keys, now)

        stored, pushed = self._read(read)
        out: dict[str, FetchState] = {}
        for s in configured:
            url_and_state = stored.get(s.key)
            if url_and_state is None:
                continue
            url, state = url_and_state
            if url != (state.discovered_url or s.url):
                state = FetchState(failures=state.failures, discovered_url=state.discovered_url)
            # (FetchState.pushed is False unless a hub pushes: most states go out as they came)
            out[s.key] = replace(state, pushed=True) if s.key in pushed else state
        return out

    def due(
        self, keys: Sequence[str], now: datetime, limit: int, owner: str | None = None
    ) -> list[str]:
        """Of `keys`, those due at `now` and not leased (but by `owner`), most overdue first."""
        return self._read(lambda c: upkeep.due_keys(c, keys, now, limit, owner))

    def source(self, key: str) -> Source | None:
        """The source as last synced (its `config` JSON), for workers without sources.yaml."""
        text = self._read(lambda c: upkeep.source_config(c, key))
        return None if text is None else configs.source_from_json(text)

    def settings(self) -> Settings | None:
        """The `settings:` block last synced with `sync_sources(..., settings)`, if any."""
        return self._read(_stored_settings)

    def queue_counts(self) -> dict[str, int] | None:
        """procrastinate's jobs by status (todo, doing, failed, ...) when its table exists."""
        return self._read(upkeep.queue_counts)

    def lease_owners(self, keys: Sequence[str]) -> dict[str, str]:
        """Who holds the lease of each leased source among `keys`."""
        return self._read(lambda c: upkeep.lease_owners(c, list(keys)))

    def service(self, name: str) -> dict[str, Any] | None:
        return self._read(lambda c: upkeep.service_row(c, name))

    def cooldowns_in_force(self, now: datetime) -> dict[str, tuple[datetime, str]]:
        """host -> (until, reason) for every host cooling down at `now` (store/hosts.py)."""
        return self._read(lambda c: hosts.cooldowns_in_force(c, now))

    def recent_stories(self, since: datetime) -> list[dict[str, Any]]:
        """Stories first seen or published since `since`, with their sources (hiding.py)."""
        return self._read(lambda c: hiding.recent_stories(c, since))

    def set_hidden(self, hide: dict[int, str], show: Sequence[int], now: datetime) -> None:
        """Hide stories (id -> why) and show others again; nothing is deleted."""
        with self._write() as conn:
            hiding.set_hidden(conn, hide, show, now)

    def host_cooldowns(self, now: datetime) -> list[dict[str, Any]]:
        """Every host cool-down still in force at `now`, the soonest to end first."""
        return self._read(lambda c: hosts.active_cooldowns(c, now))

    def services(self) -> list[dict[str, Any]]:
        """Every heartbeat row (scheduler, dispatcher, each worker), by name."""
        return self._read(upkeep.service_rows)

    def forget_services(self, names: Sequence[str]) -> None:
        """Delete the heartbeat rows `names` (workers gone for good, as the service judges)."""
        if names:
            with self._write() as conn:
                upkeep.forget_services(conn, names)

    def latest(self, **kw: Any) -> list[Story]:
        return self._read(lambda c: reads.latest(c, **kw))

    def arrivals(self, keys: Sequence[str], start: datetime) -> dict[str, Arrivals]:
        """When each source's entries arrived since `start` (store/arrivals.py)."""
        return self._read(lambda c: arrivals.arrivals(c, keys, start))

    def status(self) -> list[dict[str, Any]]:
        def read(c: Connection) -> list[dict[str, Any]]:
            rows = reads.source_status(c)
            now = datetime.now(UTC)
            arrivals.with_intervals(c, rows, now)
            pushes = subscriptions.status_by_source(c)
            push_every = (_stored_settings(c) or Settings()).push_every
            for row in rows:
                subscriptions.with_push(row, pushes.get(row["key"]), now, push_every)
            return rows

        return self._read(read)

    # -- WebSub (store/subscriptions.py) -------------------------------------------

    def adverts(self) -> dict[str, Advert]:
        """The hub each source in the file (enabled) advertised at its last parsed poll."""
        return self._read(subscriptions.adverts)

    def subscriptions(self) -> list[Subscription]:
        return self._read(subscriptions.all_rows)

    def subscription(self, sub_id: str) -> Subscription | None:
        return self._read(lambda c: subscriptions.by_id(c, sub_id))

    def subscription_requested(self, sub: Subscription, now: datetime) -> None:
        with self._write() as conn:
            subscriptions.requested(conn, sub, now)

    def subscription_failed(
        self, sub_id: str, error: str, now: datetime, retry_at: datetime, state: str = "failed"
    ) -> None:
        with self._write() as conn:
            subscriptions.failed(conn, sub_id, error, now, retry_at, state)

    def subscription_verified(
        self, sub_id: str, mode: str, lease: int | None, now: datetime
    ) -> None:
        with self._write() as conn:
            subscriptions.verified(conn, sub_id, mode, lease, now)

    def subscription_denied(
        self, sub_id: str, reason: str, now: datetime, retry_at: datetime
    ) -> None:
        with self._write() as conn:
            subscriptions.denied(conn, sub_id, reason, now, retry_at)

    def forget_subscription(self, sub_id: str) -> None:
        with self._write() as conn:
            subscriptions.forget(conn, sub_id)

    def save_push(
        self, report: SourceReport, source: Source, batch: Sequence[Item], sub_id: str, url: str,
        now: datetime,
    ) -> SourceReport:  # fmt: skip
        """Store a pushed body's Items (as a poll's, deduplicated) with its line in the
        poll log and the subscription's push count, in one transaction; the report
        with what storing came to."""
        with self._write() as conn:
            search.make_room(conn, len(batch))
            plan = writes.save_items(conn, source, batch, now) if batch else Plan()
            counted = report.with_counts(plan, len(batch), now) if report.ok else report
            writes.log_push(conn, counted, url, now)
            subscriptions.pushed(conn, sub_id, now)
        return counted

    def push_refused(self, sub_id: str, now: datetime) -> None:
        with self._write() as conn:
            subscriptions.refused(conn, sub_id, now)

    def resume_polling(self, keys: Sequence[str], now: datetime) -> None:
        """Sources whose pushes stopped are polled now, not after their safety-net wait."""
        with self._write() as conn:
            subscriptions.resume_polling(conn, keys, now)

    def story_count(self) -> int:
        return self._read(reads.story_count)

    def sections(self) -> list[str]:
        return self._read(reads.sections)

    def last_change(self) -> datetime | None:
        return self._read(reads.last_change)


def _stored_settings(conn: Connection) -> Settings | None:
    text = upkeep.stored_settings(conn)
    return None if text is None else configs.settings_from_json(text)
