"""The unattended service: APScheduler wiring around one long-lived Pipeline.

`Service.run` keeps every source current until SIGTERM/SIGINT: a tick job
(every second) polls the sources that are due in the database and free to
lease; a reload job (every 5 s) picks up edits to sources.yaml, keeping the
last good configuration when an edit is invalid; a prune job deletes expired
stories and poll history in small batches; a websub job (every 10 s) keeps
the WebSub subscriptions in step with the sources (service/subscriber.py);
every tick leaves a heartbeat for
`ingest health` (and, with `metrics`, sets the tick's gauges: metrics.py).
Reload, prune, heartbeat, signals, the clock and the database thread are the
`Daemon` skeleton's (daemon.py), shared with the dispatcher.
On a stop signal it takes no new polls, lets in-flight polls finish within a
grace period, and returns 0.  When a source is due is
policy.py's decision and the schedule itself lives in the database, so a
restart neither refetches everything nor forgets anything.  This module wires
jobs and signals; it does not fetch, parse or store by itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest.config import Config
from ingest.model import Clock, FetchState, Source, SourceReport, utcnow
from ingest.runtime.leases import lease_ttl, make_owner
from ingest.service.daemon import Daemon, guarded
from ingest.stages.websub import SubscriberTiming

if TYPE_CHECKING:
    import httpx

    from ingest.runtime.metrics import Metrics
    from ingest.runtime.pipeline import Pipeline
    from ingest.store import Store

__all__ = ["SERVICE_NAME", "Service", "Timing"]

log = logging.getLogger("ingest.schedule")
SERVICE_NAME = "scheduler"


@dataclass(frozen=True, slots=True)
class Timing:
    """How often the service's own jobs run, in seconds."""

    tick: float = 1.0
    reload: float = 5.0
    heartbeat: float = 5.0
    prune: float = 3600.0
    prune_batch: int = 500
    grace: float = 20.0  # in-flight polls get this long to finish on shutdown
    websub: float = 10.0  # subscribe, renew, unsubscribe at WebSub hubs (service/subscriber.py)
    subscriber: SubscriberTiming = field(default_factory=SubscriberTiming)


class Service(Daemon):
    """One scheduler process over one sources file and one database."""

    name = SERVICE_NAME
    log = log

    def __init__(
        self,
        sources_path: str,
        store: Store,
        *,
        timing: Timing | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = utcnow,
        once: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.timing = timing or Timing()
        super().__init__(
            sources_path, store, owner=make_owner("scheduler"),
            heartbeat_every=self.timing.heartbeat, clock=clock, metrics=metrics,
        )  # fmt: skip
        self.prune_batch = self.timing.prune_batch
        self.transport = transport
        self.once = once
        self.inflight: dict[str, asyncio.Task[SourceReport]] = {}
        self.reports: list[SourceReport] = []
        self._pipeline: Pipeline | None = None

    # -- lifecycle ------------------------------------------------------------------

    def stopping(self) -> None:
        log.info("stopping: no new polls; waiting for %d in flight", len(self.inflight))

    async def run(self) -> int:
        """Serve until stopped (or, with once=True, poll what is due and return)."""
        from ingest.runtime.pipeline import Pipeline
        from ingest.service.subscriber import Subscriber
        from ingest.stages.transport import make_client

        settings = self.config.settings
        with self.signals():
            async with (
                make_client(settings, transport=self.transport) as client,
                Pipeline(self.store, client, settings, clock=self.clock, owner=self.owner,
                         metrics=self.metrics) as pipeline,
            ):  # fmt: skip
                self._pipeline = pipeline
                self.database = pipeline.recorder.thread  # one database thread: the pipeline's
                self.subscriber = Subscriber(
                    self.store, client, self.db, timing=self.timing.subscriber, clock=self.clock
                )
                await self.sync(self.config)
                # a scheduler or run killed on this host cannot give its leases back
                await pipeline.free_dead_leases({s.key for s in self.config.sources})
                if self.once:
                    await self.tick()
                    await self._drain(None)  # every poll is bounded by its own deadline
                    await guarded(self.prune, "prune", log)()  # --once: no prune job
                    await guarded(self.subscribe, "websub", log)()  # nor a websub job
                    return 0 if all(r.ok for r in self.reports) else 1
                scheduler = self._scheduler()
                scheduler.start()
                log.info(
                    "scheduler started: %d sources (%d enabled) from %s, database %s",
                    len(self.config.sources), len(self.config.enabled()), self.path,
                    self.store.url,
                )  # fmt: skip
                try:
                    await self._stop.wait()
                finally:
                    scheduler.shutdown(wait=False)
                    await self._drain(self.timing.grace)
                    await self.beat(stopped=True)
        log.info("scheduler stopped")
        return 0

    def _scheduler(self) -> Any:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        t = self.timing
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        first = datetime.now(UTC)
        jobs: list[tuple[Callable[[], Any], float, str]] = [
            (self.tick, t.tick, "tick"),
            (self.reload, t.reload, "reload"),
            (self.prune, t.prune, "prune"),
            (self.subscribe, t.websub, "websub"),
        ]
        for fn, every, name in jobs:
            scheduler.add_job(
                guarded(fn, name, log), "interval", seconds=every, id=name, next_run_time=first,
                max_instances=1, coalesce=True, misfire_grace_time=None,
            )  # fmt: skip
        return scheduler

    async def _drain(self, grace: float | None) -> None:
        """Let in-flight polls finish for `grace` seconds, then cancel the rest."""
        keys = {task: key for key, task in self.inflight.items()}
        if not keys:
            return
        _done, pending = await asyncio.wait(keys, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            # their done-callbacks have taken them out of `inflight` by now
            cancelled = sorted(keys[task] for task in pending)
            log.warning("cancelled %d polls at shutdown: %s", len(cancelled), ", ".join(cancelled))
            await self.db(self.store.release_leases, cancelled, self.owner)

    # -- jobs -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Start a poll of every due source that no process is polling."""
        if self._stop.is_set():
            return
        now = self.clock()
        await self.beat()
        # the service takes a bounded batch per tick; --once has one tick: all that is due
        batch = len(self.config.sources) if self.once else self.config.settings.concurrency * 2
        room = batch - len(self.inflight)
        metrics = self.metrics
        if room <= 0 and metrics is None:
            return
        wanted = {s.key: s for s in self.config.enabled() if s.key not in self.inflight}
        # with metrics, every due source is counted: those left waiting are a metric
        limit = len(wanted) if metrics is not None else room
        due = await self.db(self.store.due, list(wanted), now, limit)
        waiting = due[max(room, 0) :]
        due = due[: max(room, 0)]
        if not due:
            if metrics is not None:
                metrics.ticked(self.timing.tick, due=len(waiting))
            return
        ttl = max(lease_ttl(wanted[k]) for k in due)
        taken = await self.db(self.store.acquire_leases, due, self.owner, now, ttl)
        chosen = [wanted[k] for k in due if k in taken]
        if metrics is not None:  # leased elsewhere: due, but not ours to poll now
            metrics.ticked(self.timing.tick, due=len(waiting) + len(due) - len(chosen))
        states = await self.db(self.store.fetch_states, chosen)
        for source in chosen:
            task = asyncio.create_task(self._poll(source, states.get(source.key, FetchState())))
            self.inflight[source.key] = task
            task.add_done_callback(functools.partial(self._finished, source.key))

    def _finished(self, key: str, _task: asyncio.Task[SourceReport]) -> None:
        self.inflight.pop(key, None)

    async def _poll(self, source: Source, state: FetchState) -> SourceReport:
        assert self._pipeline is not None
        report = await self._pipeline.poll(source, state)
        if self.once:
            self.reports.append(report)
        return report

    def applied(self, config: Config) -> None:
        assert self._pipeline is not None
        self._pipeline.apply_settings(config.settings)
