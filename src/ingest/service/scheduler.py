"""The unattended service: APScheduler wiring around one long-lived Pipeline.

`Service.run` keeps every source current until SIGTERM/SIGINT: a tick job
(every second) polls the sources that are due in the database and free to
lease; a reload job (every 5 s) picks up edits to sources.yaml, keeping the
last good configuration when an edit is invalid; a prune job deletes expired
stories and poll history in small batches; every tick leaves a heartbeat for
`ingest health` (and, with `metrics`, sets the tick's gauges: metrics.py).
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
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ingest.config import Config
from ingest.config.watch import ConfigWatcher
from ingest.model import FetchState, Settings, Source, SourceReport
from ingest.runtime.leases import lease_ttl, make_owner

if TYPE_CHECKING:
    import httpx

    from ingest.runtime.metrics import Metrics
    from ingest.runtime.pipeline import Pipeline
    from ingest.store import Store

__all__ = ["SERVICE_NAME", "Heartbeat", "Service", "Timing", "prune_in_batches"]

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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """The `services` row a long-running process keeps fresh, which `ingest health` judges.

    One per process, under its service's name (the scheduler's `SERVICE_NAME`, the
    dispatcher's `dispatch.DISPATCHER_NAME`, a worker's `worker@host:pid:...`).
    `beat` writes at most every `every` seconds, unless forced or stopping,
    through `run` (the caller's way into the database); `config_error` is the
    last refused edit of sources.yaml, reported with every beat until an edit
    is accepted.
    """

    def __init__(
        self,
        store: Store,
        name: str,
        path: str | None,
        every: float,
        clock: Callable[[], datetime],
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
        self,
        run: Callable[[Callable[[], None]], Awaitable[Any]],
        owner: str,
        *,
        force: bool = False,
        stopped: bool = False,
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


class Service:
    """One scheduler process over one sources file and one database."""

    def __init__(
        self,
        sources_path: str,
        store: Store,
        *,
        timing: Timing | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utcnow,
        once: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = sources_path
        self.metrics = metrics
        self.store = store
        self.timing = timing or Timing()
        self.transport = transport
        self.clock = clock
        self.once = once
        self.watch = ConfigWatcher(sources_path)  # invalid at start: ConfigError
        self.config: Config = self.watch.config
        self.heartbeat = Heartbeat(store, SERVICE_NAME, sources_path, self.timing.heartbeat, clock)
        self.inflight: dict[str, asyncio.Task[SourceReport]] = {}
        self.reports: list[SourceReport] = []
        self._stop = asyncio.Event()
        self._pipeline: Pipeline | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking polls and wind down; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self.request_stop)  # asyncio.Event is not thread-safe
            return
        if not self._stop.is_set():
            log.info("stopping: no new polls; waiting for %d in flight", len(self.inflight))
        self._stop.set()

    async def run(self) -> int:
        """Serve until stopped (or, with once=True, poll what is due and return)."""
        from ingest.runtime.pipeline import Pipeline
        from ingest.stages.fetch import make_client

        loop = self._loop = asyncio.get_running_loop()
        # signal handlers can only be installed from the main thread; a service run in
        # another thread (embedded, tests) is stopped with request_stop() instead
        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if main else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop)
        settings = self.config.settings
        async with (
            make_client(settings, transport=self.transport) as client,
            Pipeline(self.store, client, settings, clock=self.clock,
                     owner=make_owner("scheduler"), metrics=self.metrics) as pipeline,
        ):  # fmt: skip
            self._pipeline = pipeline
            await self._db(self.store.sync_sources, self.config.sources, self.clock())
            # a scheduler or run killed on this host cannot give its leases back
            await pipeline.free_dead_leases({s.key for s in self.config.sources})
            if self.once:
                await self.tick()
                await self._drain(None)  # every poll is bounded by its own deadline
                await _guarded(self.prune, "prune")()  # --once from a timer: no prune job
                return 0 if all(r.ok for r in self.reports) else 1
            scheduler = self._scheduler()
            scheduler.start()
            log.info(
                "scheduler started: %d sources (%d enabled) from %s, database %s",
                len(self.config.sources), len(self.config.enabled()), self.path, self.store.url,
            )  # fmt: skip
            try:
                await self._stop.wait()
            finally:
                scheduler.shutdown(wait=False)
                await self._drain(self.timing.grace)
                await self._beat(stopped=True)
        for sig in signals:
            loop.remove_signal_handler(sig)
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
        ]
        for fn, every, name in jobs:
            scheduler.add_job(
                _guarded(fn, name), "interval", seconds=every, id=name, next_run_time=first,
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
            assert self._pipeline is not None
            await self._db(self.store.release_leases, cancelled, self._pipeline.owner)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._pipeline is not None
        return await self._pipeline.recorder.call(fn, *args)

    # -- jobs -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Start a poll of every due source that no process is polling."""
        if self._stop.is_set():
            return
        assert self._pipeline is not None
        now = self.clock()
        await self._beat()
        # the service takes a bounded batch per tick; --once has one tick: all that is due
        batch = len(self.config.sources) if self.once else self.config.settings.concurrency * 2
        room = batch - len(self.inflight)
        metrics = self.metrics
        if room <= 0 and metrics is None:
            return
        wanted = {s.key: s for s in self.config.enabled() if s.key not in self.inflight}
        # with metrics, every due source is counted: those left waiting are a metric
        limit = len(wanted) if metrics is not None else room
        due = await self._db(self.store.due, list(wanted), now, limit)
        waiting = due[max(room, 0) :]
        due = due[: max(room, 0)]
        if not due:
            if metrics is not None:
                metrics.ticked(self.timing.tick, due=len(waiting))
            return
        ttl = max(lease_ttl(wanted[k]) for k in due)
        taken = await self._db(self.store.acquire_leases, due, self._pipeline.owner, now, ttl)
        chosen = [wanted[k] for k in due if k in taken]
        if metrics is not None:  # leased elsewhere: due, but not ours to poll now
            metrics.ticked(self.timing.tick, due=len(waiting) + len(due) - len(chosen))
        states = await self._db(self.store.fetch_states, chosen)
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

    async def reload(self) -> None:
        """Pick up an edited sources.yaml; an invalid edit keeps the last good one."""
        # off the event loop: reading a large (or hostile) file must not stall the polls
        result = await asyncio.to_thread(self.watch.check)
        if result is None:
            return
        if result.error is not None:
            self.heartbeat.config_error = str(result.error)
            log.error(
                "%s is invalid; still running the last good configuration (%d sources):\n%s",
                self.path, len(self.config.sources), result.error,
            )  # fmt: skip
            await self._beat(force=True)
            return
        config = self.config = result.config
        self.heartbeat.config_error = None
        await self._db(self.store.sync_sources, config.sources, self.clock())
        assert self._pipeline is not None
        self._pipeline.apply_settings(config.settings)
        log.info(
            "reloaded %s: %d sources; added %s; removed %s; changed %s",
            self.path, len(config.sources), list(result.added) or "none",
            list(result.removed) or "none", list(result.changed) or "none",
        )  # fmt: skip
        await self._beat(force=True)

    async def prune(self) -> None:
        """Delete expired stories and poll history, a small batch at a time."""
        total = await prune_in_batches(
            self.store, self.config.settings, self.clock, self._db,
            batch=self.timing.prune_batch, stop=self._stop,
        )  # fmt: skip
        if total:
            log.info("pruned %d expired stories and poll-log rows", total)

    async def _beat(self, *, force: bool = False, stopped: bool = False) -> None:
        assert self._pipeline is not None
        await self.heartbeat.beat(self._db, self._pipeline.owner, force=force, stopped=stopped)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def prune_in_batches(
    store: Store,
    settings: Settings,
    clock: Callable[[], datetime],
    run: Callable[[Callable[[], int]], Awaitable[int]],
    *,
    batch: int,
    stop: asyncio.Event,
) -> int:
    """Delete what `settings.retention`/`history` expire, `batch` rows per transaction.

    `run` executes one store call where the caller keeps its database work
    (the scheduler's database thread, the dispatcher's worker threads); a short
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


def _guarded(fn: Callable[[], Any], name: str) -> Callable[[], Any]:
    """A job that logs its failure and lets the service go on (a DB hiccup is not fatal)."""

    async def job() -> None:
        try:
            await fn()
        except Exception:
            log.exception("the %s job failed; it will run again", name)

    job.__name__ = f"ingest_{name}"
    return job
