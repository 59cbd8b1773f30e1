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
silent for a day (gone for good) it deletes when it prunes.  Reload, prune,
heartbeat, signals, the clock and its one database thread are the `Daemon`
skeleton's (service/daemon.py), shared with the scheduler, and so is the
WebSub job it runs every `websub_every` seconds (service/subscriber.py).
It does not fetch, parse or store stories (worker.py does).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ingest.model import Clock, utcnow
from ingest.runtime.leases import make_owner
from ingest.service.daemon import Daemon, forget_gone_workers
from ingest.service.distributed import queue

if TYPE_CHECKING:
    import procrastinate

    from ingest.runtime.metrics import Metrics
    from ingest.store import Store

__all__ = ["DISPATCHER_NAME", "Dispatcher"]

DISPATCHER_NAME = "dispatcher"  # its row in `services`

log = logging.getLogger("ingest.dispatch")


class Dispatcher(Daemon):
    """One dispatcher over one sources file and one PostgreSQL database."""

    name = DISPATCHER_NAME
    log = log

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
        websub_every: float = 10.0,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(
            sources_path, store, owner=make_owner("dispatch"), heartbeat_every=heartbeat_every,
            clock=clock, metrics=metrics,
        )  # fmt: skip
        self.url = url
        self.interval = interval
        self.stalled_after = stalled_after
        self.prune_every = prune_every
        self._last: dict[str, float] = {}  # job -> when it last ran (the loop's clock)
        self.websub_every = websub_every

    async def run(self, *, once: bool = False) -> int:
        """Dispatch until SIGTERM/SIGINT (or one pass with `once`); returns the exit code."""
        from ingest.service.subscriber import Subscriber
        from ingest.stages.transport import make_client

        try:
            await asyncio.to_thread(queue.ensure_schema, self.url)
            await self.sync(self.config)
            app = queue.make_app(self.url)
            with self.signals(enabled=not once):
                try:
                    async with app.open_async(), make_client(self.config.settings) as client:
                        self.subscriber = Subscriber(self.store, client, self.db, clock=self.clock)
                        await self._serve(app, once)
                finally:
                    if not once:  # a --once pass (from a timer) is judged by its age
                        try:
                            await self.beat(stopped=True)
                        except Exception:
                            log.exception("could not record that the dispatcher stopped")
        finally:
            if self.database is not None:
                self.database.close()
                self.database = None
        log.info("dispatcher stopped")
        return 0

    async def _serve(self, app: procrastinate.App, once: bool) -> None:
        log.info(
            "dispatcher started: %d sources (%d enabled) from %s, database %s",
            len(self.config.sources), len(self.config.enabled()), self.path, self.store.url,
        )  # fmt: skip
        while True:
            try:
                await self.tick(app)
                await self.beat()
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

    async def tick(self, app: procrastinate.App) -> int:
        """One pass: reload, recover stalled jobs, defer the due sources; returns jobs queued."""
        await self.reload()
        await queue.retry_stalled(app, self.stalled_after, self._free_lease)
        keys = [s.key for s in self.config.enabled()]
        due = await self.db(self.store.due, keys, self.clock(), len(keys))
        queued = 0
        for key in due:
            queued += await queue.defer_poll(app, key)
        if queued:
            log.info("queued %d polls (%d due)", queued, len(due))
        if self.metrics is not None:
            self.metrics.ticked(self.interval, due=len(due))
        await self.prune()
        await self.subscribe()
        return queued

    def _due(self, job: str, every: float) -> bool:
        """Whether `job`, run from the tick, is due again (`every` seconds since it last
        ran); if so, it counts as run now."""
        now = asyncio.get_running_loop().time()
        last = self._last.get(job)
        if last is not None and now - last < every:
            return False
        self._last[job] = now
        return True

    async def subscribe(self) -> None:
        """Every `websub_every` seconds: the daemon's WebSub job."""
        if not self._due("websub", self.websub_every):
            return
        await super().subscribe()

    async def _free_lease(self, key: str, owner: str) -> None:
        await self.db(self.store.release_leases, [key], owner)

    async def prune(self) -> None:
        """Every `prune_every` seconds, forget the workers gone for good, then delete expired
        stories and poll history in batches."""
        if not self._due("prune", self.prune_every):
            return
        gone = await forget_gone_workers(self.store, self.db, self.clock())
        if gone:
            log.info("forgot %d workers silent for over a day: %s", len(gone), ", ".join(gone))
        await super().prune()
