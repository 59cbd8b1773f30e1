"""`ingest dispatch`: sources.yaml into the database, and a queued poll job per due source.

A `Dispatcher` reconciles the editors' file into the database (each
source's validated settings and the `settings:` block, which is all that
`ingest worker` reads), then every `interval` seconds defers one
procrastinate job `ingest.poll_source(key)` for each source that is due and
not leased, with `lock` and `queueing_lock` on the key: at most one job per
source waits and at most one runs.  It also hands the jobs of workers that
stopped heartbeating back to the queue, reloads sources.yaml when it
changes (keeping the last good file, as the scheduler does) and prunes
hourly.  Any number may run against one database: deferring is idempotent.
Every few seconds it leaves a heartbeat in `services` (name "dispatcher":
owner, last tick, the last refused edit of sources.yaml, stopped), which
`ingest health` judges as it judges the scheduler's; the rows of workers
silent for a day (gone for good) it deletes when it prunes.
It does not fetch, parse or store stories (poll_worker.py does).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest.config import Config
from ingest.config.watch import ConfigWatcher
from ingest.runtime.leases import make_owner
from ingest.service.distributed import queue
from ingest.service.health import WORKER_FORGET
from ingest.service.scheduler import Heartbeat, prune_in_batches

if TYPE_CHECKING:
    import procrastinate

    from ingest.runtime.metrics import Metrics
    from ingest.store import Store

__all__ = ["DISPATCHER_NAME", "Dispatcher"]

DISPATCHER_NAME = "dispatcher"  # its row in `services`

log = logging.getLogger("ingest.dispatch")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """One dispatcher over one sources file and one PostgreSQL database."""

    def __init__(
        self,
        sources_path: str,
        store: Store,
        url: str,
        *,
        interval: float = 1.0,
        stalled_after: float = 30.0,
        prune_every: float = 3600.0,
        heartbeat_every: float = 5.0,
        clock: Callable[[], datetime] = _utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = sources_path
        self.metrics = metrics
        self.store = store
        self.url = url
        self.interval = interval
        self.stalled_after = stalled_after
        self.prune_every = prune_every
        self.clock = clock
        self.watch = ConfigWatcher(sources_path)  # invalid at start: ConfigError
        self.config: Config = self.watch.config
        self._stop = asyncio.Event()
        self._last_prune: float | None = None
        self.owner = make_owner("dispatch")
        self.heartbeat = Heartbeat(store, DISPATCHER_NAME, sources_path, heartbeat_every, clock)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, *, once: bool = False) -> int:
        """Dispatch until SIGTERM/SIGINT (or one pass with `once`); returns the exit code."""
        await asyncio.to_thread(queue.ensure_schema, self.url)
        await self._db(self.store.sync_sources, self.config.sources, self.clock(),
                       self.config.settings)  # fmt: skip
        app = queue.make_app(self.url)
        loop = asyncio.get_running_loop()
        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if main and not once else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        try:
            async with app.open_async():
                log.info(
                    "dispatcher started: %d sources (%d enabled) from %s, database %s",
                    len(self.config.sources), len(self.config.enabled()), self.path,
                    self.store.url,
                )  # fmt: skip
                while True:
                    try:
                        await self.tick(app)
                        await self._beat()
                    except Exception:
                        if once:
                            raise
                        log.exception("dispatch pass failed; trying again")
                    if once:
                        break
                    try:
                        await asyncio.wait_for(self._stop.wait(), self.interval)
                        break
                    except TimeoutError:
                        pass
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            if not once:  # a --once pass (from a timer) is judged by its age, as the scheduler's
                try:
                    await self._beat(stopped=True)
                except Exception:
                    log.exception("could not record that the dispatcher stopped")
        log.info("dispatcher stopped")
        return 0

    async def tick(self, app: procrastinate.App) -> int:
        """One pass: reload, recover stalled jobs, defer the due sources; returns jobs queued."""
        await self.reload()
        await queue.retry_stalled(app, self.stalled_after, self._free_lease)
        keys = [s.key for s in self.config.enabled()]
        due = await self._db(self.store.due, keys, self.clock(), len(keys))
        queued = 0
        for key in due:
            queued += await queue.defer_poll(app, key)
        if queued:
            log.info("queued %d polls (%d due)", queued, len(due))
        if self.metrics is not None:
            self.metrics.ticked(self.interval, due=len(due))
        await self.prune()
        return queued

    async def _free_lease(self, key: str, owner: str) -> None:
        await self._db(self.store.release_leases, [key], owner)

    async def reload(self) -> None:
        """Pick up an edited sources.yaml; an invalid edit keeps the last good one."""
        # off the event loop: reading a large (or hostile) file must not stall the polls
        result = await asyncio.to_thread(self.watch.check)
        if result is None:
            return
        if result.error is not None:
            self.heartbeat.config_error = str(result.error)
            log.error("%s is invalid; still dispatching the last good configuration:\n%s",
                      self.path, result.error)  # fmt: skip
            await self._beat(force=True)
            return
        config = self.config = result.config
        self.heartbeat.config_error = None
        await self._db(self.store.sync_sources, config.sources, self.clock(), config.settings)
        log.info("reloaded %s: %d sources", self.path, len(config.sources))

    async def prune(self) -> None:
        """Every `prune_every` seconds, delete expired stories and poll history in batches."""
        now = asyncio.get_running_loop().time()
        if self._last_prune is not None and now - self._last_prune < self.prune_every:
            return
        self._last_prune = now
        gone = await self._db(self.store.forget_workers, self.clock(), WORKER_FORGET)
        if gone:
            log.info("forgot %d workers silent for over a day: %s", len(gone), ", ".join(gone))
        await prune_in_batches(
            self.store, self.config.settings, self.clock, self._db, batch=500, stop=self._stop
        )

    async def _beat(self, *, force: bool = False, stopped: bool = False) -> None:
        await self.heartbeat.beat(self._db, self.owner, force=force, stopped=stopped)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)
