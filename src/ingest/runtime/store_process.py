"""The store in a process of its own, for the one-shot `ingest run`.

One job: fork a child that imports the database stack, opens the `Store` and
runs the store calls a pipeline makes, one at a time, sent over a pipe; the
parent holds a `StoreProcess`, which has the `Store` methods a pipeline calls
(`ingest.runtime.recorder.PollStore`) and forwards them.  It decides nothing and
holds no queries (those are `ingest.store`).

Why a process: importing SQLAlchemy takes ~0.2 s and ~25 MB, and a new
database also imports Alembic to create the schema.  In a short-lived run
that start-up sat on the critical path before the first request; in the
child it runs on the other core while the parent loads the HTTP stack, and
the writes of a cold run (SQL compilation, SQLite) no longer take the
parent's GIL from the event loop.  The parent never imports SQLAlchemy.

Failures stay `StoreError`s: an error raised in the child (opening the
database included) crosses the pipe as the `StoreError` itself (ingest's
errors pickle; any other exception becomes one with its message), and a
child that died makes the next call fail with one.  The child ignores SIGINT
(the parent decides when a run stops and closes it) and exits when the parent
closes the pipe or dies.  Long-running processes (`ingest schedule`, the
distributed worker) keep the `Store` in-process: their start-up is paid once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest import errors
from ingest.runtime import gcpause

if TYPE_CHECKING:  # annotations only: the fork comes first, before anything is imported
    from multiprocessing.connection import Connection

    from ingest.model import Arrivals, FetchState, Item, Plan, PollRecord, Settings, Source

__all__ = ["StoreProcess"]


class StoreProcess:
    """A `Store` opened on `url` in a forked child; call `close` (or use `with`).

    Start it first thing in a short-lived process, while that process is
    small and has no threads (a fork copies both).  The child imports the
    database stack at once and opens the database on the first call, or
    earlier when `open_soon` asks, so a run that ends before either (a bad
    sources.yaml) creates no database.  Calls are serialised (one in flight
    at a time), as a pipeline's database thread makes them anyway.
    """

    def __init__(self, url: str | None = None) -> None:
        ctx = multiprocessing.get_context("fork")
        parent_end, child_end = ctx.Pipe()
        self._conn = parent_end
        self._lock = threading.Lock()
        self._closed = False
        self._opening = False  # an `open_soon` whose answer is still in the pipe
        self._proc = ctx.Process(
            target=_serve, args=(child_end, parent_end, url), name="ingest-store", daemon=True
        )
        self._proc.start()
        child_end.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def open_soon(self) -> None:
        """Have the child open the database as soon as it can, without waiting for it: the
        caller goes on (importing the HTTP stack) while the database is opened, created or
        migrated.  Call it once the run is sure to make a store call; a failure to open is
        the next call's error, as without it."""
        with self._lock:
            if self._closed or self._opening:
                return
            try:
                self._conn.send(_OPEN)
            except OSError:
                return  # the child is gone: the next call says so
            self._opening = True

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise errors.StoreError("the database process is closed")
            try:
                if self._opening:  # its answer first (opening carries no value)
                    self._opening = False
                    self._conn.recv()
                self._conn.send((name, args))
                status, value = self._conn.recv()
            except (EOFError, OSError) as e:
                self._proc.join(timeout=1)
                raise errors.StoreError(
                    f"the database process stopped (exit code {self._proc.exitcode})"
                ) from e
        if status == "ok":
            return value
        raise value  # the child's StoreError

    # -- the PollStore methods -------------------------------------------------

    def sync_sources(
        self, configured: Sequence[Source], now: datetime, settings: Settings | None = None
    ) -> int:
        return int(self._call("sync_sources", configured, now, settings))

    def fetch_states(self, configured: Sequence[Source]) -> dict[str, FetchState]:
        return dict(self._call("fetch_states", configured))

    def arrivals(self, keys: Sequence[str], start: datetime) -> dict[str, Arrivals]:
        return dict(self._call("arrivals", keys, start))

    def acquire_leases(
        self, keys: Sequence[str], owner: str, now: datetime, ttl: float
    ) -> set[str]:
        return set(self._call("acquire_leases", keys, owner, now, ttl))

    def release_leases(self, keys: Sequence[str], owner: str) -> None:
        self._call("release_leases", keys, owner)

    def lease_owners(self, keys: Sequence[str]) -> dict[str, str]:
        return dict(self._call("lease_owners", keys))

    def record_polls(self, records: Sequence[PollRecord]) -> None:
        self._call("record_polls", records)

    def cooldowns_in_force(self, now: datetime) -> dict[str, tuple[datetime, str]]:
        found: dict[str, tuple[datetime, str]] = self._call("cooldowns_in_force", now)
        return found

    def take_slot(self, host: str, now: datetime, delay: float) -> datetime:
        slot: datetime = self._call("take_slot", host, now, delay)
        return slot

    def save_polls(self, polls: Sequence[tuple[PollRecord, Sequence[Item] | None]]) -> list[Plan]:
        answers = self._call("save_polls", polls)
        return [_plan(a, batch) for a, (_, batch) in zip(answers, polls, strict=True)]

    def save_poll(self, record: PollRecord, batch: Sequence[Item] | None = None) -> Plan:
        return _plan(self._call("save_poll", record, batch), batch)

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Let the child finish its call, close the database and exit; wait for it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):  # already gone
                self._conn.send(None)
            self._conn.close()
        self._proc.join(timeout=60)
        if self._proc.is_alive():  # stuck: do not outlive the run
            self._proc.kill()
            self._proc.join()

    def __enter__(self) -> StoreProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The Store methods a pipeline calls (ingest.runtime.recorder.PollStore): exactly the public methods
# StoreProcess forwards, so a method added there is answered by the child too.
_CALLS = frozenset(
    name
    for name, value in vars(StoreProcess).items()
    if callable(value) and not name.startswith("_") and name not in ("close", "open_soon")
)


_OPEN = ("", ())  # `open_soon`'s message: open the database, answer nothing else


def _serve(conn: Connection, parent_end: Connection, url: str | None) -> None:
    """The child: open the Store, then answer calls until the pipe says stop or closes."""
    parent_end.close()  # else the pipe never reports the parent's death
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ingest.store import Store  # at once: the import is the slow part

    _load_dialect(url)
    gcpause.settle()  # forked while `ingest run` started up: our start-up is over too

    store: Store | None = None
    failure: errors.StoreError | None = None
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if message is None:
                return
            if store is None and failure is None:
                try:  # on the first message (a call, or `open_soon`'s): a run that
                    store = Store.open(url)  # stops before it creates no database
                except errors.StoreError as e:
                    failure = e
                except errors.IngestError as e:
                    failure = errors.StoreError(str(e))
                except Exception as e:  # a fault of the library: still an answer, not a crash
                    failure = errors.StoreError(
                        f"cannot open the database: {type(e).__name__}: {e}"
                    )
            name, args = message
            answer = ("ok", None) if message == _OPEN else _answer(store, failure, name, args)
            try:
                conn.send(answer)
            except OSError:
                return  # the parent died while we worked: what we wrote is committed
    finally:
        if store is not None:
            store.close()


# A Plan's `new` and `changed` are Items of the batch the parent sent: the child answers
# with their positions in it, and the parent takes them from its own copy, instead of
# pickling every new Item back (a cold run's whole corpus, a second time).
_Positions = tuple[tuple[int, ...], tuple[int, ...], int, int, int]


def _positions(plan: Plan, batch: Sequence[Item] | None) -> Plan | _Positions:
    """`plan` as the positions in `batch` of its new and changed Items, with its counts;
    the Plan itself if one of them is not an Item of `batch`."""
    where = {id(item): i for i, item in enumerate(batch or ())}
    try:
        new = tuple(where[id(item)] for item in plan.new)
        changed = tuple(where[id(item)] for item in plan.changed)
    except KeyError:  # not one of the batch's own: send it whole
        return plan
    return new, changed, plan.same, plan.duplicates_in_batch, plan.stories


def _plan(answer: Plan | _Positions, batch: Sequence[Item] | None) -> Plan:
    """The Plan the child described with `_positions`, its Items taken from `batch`."""
    if not isinstance(answer, tuple):
        return answer
    from ingest.model import Plan

    new, changed, same, duplicates, stories = answer
    items = batch or ()
    return Plan(
        new=tuple(items[i] for i in new),
        changed=tuple(items[i] for i in changed),
        same=same,
        duplicates_in_batch=duplicates,
        stories=stories,
    )


def _load_dialect(url: str | None) -> None:
    """Import the database's SQLAlchemy dialect now (10 ms for SQLite's), while the parent
    still loads its own stack: opening the database on the first call then does not.  Only
    an import: nothing is connected to or created, and a bad URL is the first call's error."""
    from sqlalchemy.engine import make_url

    from ingest.store import db

    with contextlib.suppress(Exception):
        make_url(db.resolve_url(url)).get_dialect()


def _answer(
    store: Any, failure: errors.StoreError | None, name: str, args: tuple[Any, ...]
) -> tuple[str, Any]:
    """("ok", the call's value) or ("error", the StoreError the parent raises)."""
    if store is None:
        return "error", failure
    if name not in _CALLS:
        return "error", errors.StoreError(f"the database process has no call {name!r}")
    try:
        value = getattr(store, name)(*args)
        if name == "save_polls":
            value = [
                _positions(plan, batch) for plan, (_, batch) in zip(value, args[0], strict=True)
            ]
        elif name == "save_poll":
            value = _positions(value, args[1] if len(args) > 1 else None)
        return "ok", value
    except errors.StoreError as e:
        return "error", e
    except Exception as e:  # a fault in the child must reach the run as a StoreError
        return "error", errors.StoreError(
            f"unexpected {type(e).__name__} in the database process: {e}"
        )
