"""What every long-running process shares: heartbeat, reload, prune, signals, clock, database.

One job: the skeleton the scheduler (`ingest schedule`) and the dispatcher
(`ingest dispatch`) are built on, and the pieces the worker (`ingest worker`)
takes from it.  A `Daemon` watches one sources file and keeps one database
current: `reload` picks up an edited sources.yaml (an invalid edit keeps the
last good file, is logged and is reported with every heartbeat), `prune`
deletes expired stories and poll history in small batches, `beat` keeps the
process's `services` row fresh for `ingest health` (`Heartbeat`), SIGTERM
and SIGINT (or `request_stop`, from any thread) stop it, the time comes from
one injected clock, and every database call goes through `db`: onto the
process's one database thread (`runtime.recorder.DatabaseThread`: the
pipeline's, where the process has a pipeline).  What a tick does, and how
the process runs its polls, is the scheduler's and the dispatcher's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ingest.config import Config
from ingest.config.watch import ConfigWatcher
from ingest.model import Clock, Settings, utcnow
from ingest.runtime.recorder import DatabaseThread
from ingest.service.health import WORKER_FORGET, gone_workers

if TYPE_CHECKING:
    from ingest.runtime.metrics import Metrics
    from ingest.service.subscriber import Subscriber
    from ingest.store import Store

__all__ = ["Daemon", "Heartbeat", "forget_gone_workers", "guarded", "prune_in_batches"]

T = TypeVar("T")
DbCall = Callable[..., Awaitable[Any]]  # runs a store call on the database thread


class Heartbeat:
    """The `services` row a long-running process keeps fresh, which `ingest health` judges.

    One per process, under its service's name (the scheduler's `SERVICE_NAME`, the
    dispatcher's `DISPATCHER_NAME`, a worker's `worker@host:pid:...`).
    `beat` writes at most every `every` seconds, unless forced or stopping,
    through `run` (the caller's way into the database); `config_error` is the
    last refused edit of sources.yaml, reported with every beat until an edit
    is accepted.
    """

    def __init__(
        self, store: Store, name: str, path: str | None, every: float, clock: Clock
    ) -> None:
        self.store = store
        self.name = name
        self.every = every
        self.clock = clock
        self.config_path = os.path.abspath(path) if path else None  # a worker reads no file
        self.config_error: str | None = None
        self.started = clock()
        self._last: datetime | None = None

    async def beat(
        self, run: DbCall, owner: str, *, force: bool = False, stopped: bool = False
    ) -> None:
        now = self.clock()
        due = self._last is None or (now - self._last).total_seconds() >= self.every
        if not (force or stopped or due):
            return
        self._last = now
        await run(
            lambda: self.store.heartbeat(
                self.name, owner, now, started_at=self.started, config_path=self.config_path,
                config_error=self.config_error, stopped=stopped,
            )
        )  # fmt: skip


async def prune_in_batches(
    store: Store,
    settings: Settings,
    clock: Clock,
    run: DbCall,
    *,
    batch: int,
    stop: asyncio.Event,
) -> int:
    """Delete what `settings.retention`/`history` expire, `batch` rows per transaction.

    `run` executes one store call on the caller's database thread; a short
    pause between batches lets polls write.  Returns the rows deleted.
    """
    total = 0
    while not stop.is_set():
        done = await run(
            lambda: store.prune_batch(
                clock(), retention=settings.retention, history=settings.history, batch=batch
            )
        )
        if not done:
            break
        total += done
        await asyncio.sleep(0.05)
    return total


async def forget_gone_workers(
    store: Store, run: DbCall, now: datetime, is_dead: Callable[[str], bool] | None = None
) -> list[str]:
    """Delete the heartbeat rows of workers silent for `WORKER_FORGET` (and, with
    `is_dead`, of those whose process it says is gone); returns their names."""
    gone = gone_workers(await run(store.services), now, WORKER_FORGET, is_dead)
    if gone:
        await run(store.forget_services, gone)
    return gone


def guarded(fn: Callable[[], Awaitable[Any]], name: str, log: logging.Logger) -> Callable[[], Any]:
    """A job that logs its failure and lets the process go on (a DB hiccup is not fatal)."""

    async def job() -> None:
        try:
            await fn()
        except Exception:
            log.exception("the %s job failed; it will run again", name)

    job.__name__ = f"ingest_{name}"
    return job


class Daemon:
    """One long-running process over one sources file and one database.

    Subclasses name their heartbeat row (`name`) and their log, and say what an
    accepted edit changes besides (`applied`).  The `settings:` block is written
    to the database with the sources: the workers of distributed mode and
    `ingest serve` (for pushes) read it there.  `owner` is the
    process's lease owner id; `database` is its one database thread, which
    the subclass may replace by its pipeline's before the first call.
    """

    name: ClassVar[str]
    log: ClassVar[logging.Logger]

    def __init__(
        self,
        sources_path: str,
        store: Store,
        *,
        owner: str,
        heartbeat_every: float,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = sources_path
        self.store = store
        self.owner = owner
        self.clock = clock
        self.metrics = metrics
        self.watch = ConfigWatcher(sources_path)  # invalid at start: ConfigError
        self.config: Config = self.watch.config
        self.heartbeat = Heartbeat(store, self.name, sources_path, heartbeat_every, clock)
        self.database: DatabaseThread | None = None
        self.subscriber: Subscriber | None = None  # set by run() once the HTTP client is up
        self.prune_batch = 500
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking work and wind down; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self.request_stop)  # asyncio.Event is not thread-safe
            return
        if not self._stop.is_set():
            self.stopping()
        self._stop.set()

    def stopping(self) -> None:
        """Called once, on the event loop, when a stop is first requested."""

    @contextmanager
    def signals(self, enabled: bool = True) -> Iterator[None]:
        """SIGTERM and SIGINT stop the process while inside; installed only from the main
        thread (a process run in another thread, embedded or in tests, uses request_stop)."""
        loop = self._loop = asyncio.get_running_loop()
        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if main and enabled else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one store call on the process's database thread."""
        if self.database is None:
            self.database = DatabaseThread()
        return await self.database.call(fn, *args)

    async def sync(self, config: Config) -> None:
        """The sources and settings of `config` into the database."""
        await self.db(self.store.sync_sources, config.sources, self.clock(), config.settings)

    async def beat(self, *, force: bool = False, stopped: bool = False) -> None:
        await self.heartbeat.beat(self.db, self.owner, force=force, stopped=stopped)

    # -- the jobs every daemon runs ----------------------------------------------------

    async def reload(self) -> None:
        """Pick up an edited sources.yaml; an invalid edit keeps the last good one."""
        # off the event loop: reading a large (or hostile) file must not stall the polls
        result = await asyncio.to_thread(self.watch.check)
        if result is None:
            return
        if result.error is not None:
            self.heartbeat.config_error = str(result.error)
            self.log.error(
                "%s is invalid; still running the last good configuration (%d sources):\n%s",
                self.path, len(self.config.sources), result.error,
            )  # fmt: skip
            await self.beat(force=True)
            return
        config = self.config = result.config
        self.heartbeat.config_error = None
        await self.sync(config)
        self.applied(config)
        self.log.info(
            "reloaded %s: %d sources; added %s; removed %s; changed %s",
            self.path, len(config.sources), list(result.added) or "none",
            list(result.removed) or "none", list(result.changed) or "none",
        )  # fmt: skip
        await self.beat(force=True)

    def applied(self, config: Config) -> None:
        """What an accepted edit changes besides the database (nothing by default)."""

    async def subscribe(self) -> None:
        """Subscribe to the WebSub hubs sources advertise, renew, unsubscribe
        (service/subscriber.py); nothing without `settings: websub_callback`."""
        if self.subscriber is not None and not self._stop.is_set():
            await self.subscriber.step(self.config.settings)

    async def prune(self) -> None:
        """Delete expired stories and poll history, `prune_batch` rows per transaction."""
        total = await prune_in_batches(
            self.store, self.config.settings, self.clock, self.db,
            batch=self.prune_batch, stop=self._stop,
        )  # fmt: skip
        if total:
            self.log.info("pruned %d expired stories and poll-log rows", total)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
