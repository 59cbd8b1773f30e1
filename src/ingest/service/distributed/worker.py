"""`ingest worker`: a procrastinate worker that polls sources with the embedded mode's code.

One worker process keeps one `Pipeline` open (its own HTTP client, parse
pool and database thread) and runs up to `concurrency` `ingest.poll_source`
jobs at once.  A job takes the source's lease (owner `job:<id>`, so the same
job retried after its worker died takes its own lease over), reads the
source's validated settings from the database (no sources.yaml here), and
runs the very same `Pipeline.poll` as `python scheduler.py`, whose record
of the poll frees the lease.  A source that is no longer due when its job
runs (a duplicate job, a source removed or leased by an embedded poller) is
skipped.  Stories are stored at most once whatever happens (dedupe + `ON
CONFLICT`), so a retried job is harmless.  It does not decide what is due
or queue anything (dispatcher.py).  Its heartbeat and the forgetting of dead
workers' rows are the daemon skeleton's (service/daemon.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ingest.model import FetchState, Settings, utcnow
from ingest.runtime.leases import lease_ttl, make_owner, owner_is_dead
from ingest.service.daemon import Heartbeat, forget_gone_workers
from ingest.service.distributed import queue

if TYPE_CHECKING:
    import procrastinate

    from ingest.runtime.metrics import Metrics
    from ingest.runtime.pipeline import Pipeline
    from ingest.store import Store

__all__ = ["JobRunner", "run_worker"]

log = logging.getLogger("ingest.worker")
_SETTINGS_TTL = 5.0  # seconds a worker goes on with the settings it read last


class JobRunner:
    """What one poll job does, given the worker's Store and Pipeline."""

    def __init__(self, store: Store, pipeline: Pipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        self._settings_at: float | None = None  # read before the first job, then every 5 s

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await self.pipeline.recorder.thread.call(fn, *args)

    async def _refresh_settings(self) -> None:
        read_at = self._settings_at
        if read_at is not None and time.monotonic() - read_at < _SETTINGS_TTL:
            return
        settings = await self._db(self.store.settings)
        if settings is not None:  # none yet: no dispatcher has synced; ask again next job
            self._settings_at = time.monotonic()
            self.pipeline.apply_settings(settings)

    async def poll(self, key: str, job_id: int | None) -> str:
        """Poll source `key` under its lease; returns what happened, in a word or two."""
        owner = queue.job_owner(job_id)
        await self._refresh_settings()
        source = await self._db(self.store.source, key)
        if source is None:
            log.warning("%s: not in the database (or synced by an older ingest); skipped", key)
            return "unknown"
        now = utcnow()
        if not await self._db(self.store.due, [key], now, 1, owner):
            return "not due"
        taken = await self._db(self.store.acquire_leases, [key], owner, now, lease_ttl(source))
        if key not in taken:
            return "leased"
        try:
            states = await self._db(self.store.fetch_states, [source])
            report = await self.pipeline.poll(source, states.get(key, FetchState()))
        except BaseException:
            await self._db(self.store.release_leases, [key], owner)
            raise
        return "ok" if report.ok else "failed"


def _register(app: procrastinate.App, runner: JobRunner) -> None:
    from procrastinate import JobContext

    @app.task(name=queue.TASK, pass_context=True)
    async def poll_source(context: JobContext, key: str) -> str:
        return await runner.poll(key, context.job.id)


async def run_worker(
    store: Store,
    url: str,
    *,
    concurrency: int = 16,
    heartbeat: float = 10.0,
    stalled_after: float = 30.0,
    grace: float = 20.0,
    metrics: Metrics | None = None,
) -> int:
    """Run jobs until SIGTERM/SIGINT (jobs in flight get `grace` seconds); returns 0.

    The pipeline parses small well-formed feeds in a thread and starts a
    forkserver pool for the rest when the first of them comes.  Every
    `heartbeat` seconds the worker also leaves its own row in `services`
    (named by its owner id, `worker@host:pid:...`), which `ingest health`
    judges; the rows of workers of this host that died are deleted at start.
    """
    from ingest.runtime.pipeline import Pipeline
    from ingest.stages.transport import make_client

    await asyncio.to_thread(queue.ensure_schema, url)
    settings = await asyncio.to_thread(store.settings) or Settings()
    app = queue.make_app(url, pool_size=min(concurrency, 8) + 2)
    owner = make_owner("worker")
    beat = Heartbeat(store, owner, None, 0.0, utcnow)
    async with (
        make_client(settings) as client,
        # cooldown_refresh 0: the cool-downs are read before every poll, so that a 429 one
        # worker was answered holds back every other worker's next request to that host
        Pipeline(store, client, settings, owner=owner, metrics=metrics,
                 cooldown_refresh=0.0) as pipeline,
    ):  # fmt: skip
        _register(app, JobRunner(store, pipeline))
        pipeline.warm_up()
        db = pipeline.recorder.thread.call
        gone = await forget_gone_workers(store, db, utcnow(), owner_is_dead)
        if gone:
            log.info("forgot the heartbeats of %d workers no longer running", len(gone))
        beats = asyncio.create_task(_keep_beating(beat, pipeline, heartbeat))
        log.info("worker started: concurrency %d, database %s", concurrency, store.url)
        try:
            async with app.open_async():
                await app.run_worker_async(
                    concurrency=concurrency,
                    wait=True,
                    update_heartbeat_interval=heartbeat,
                    stalled_worker_timeout=stalled_after,
                    shutdown_graceful_timeout=grace,
                    delete_jobs="successful",
                    install_signal_handlers=True,
                )
        finally:
            beats.cancel()
            try:
                await beat.beat(db, owner, stopped=True)
            except Exception:
                log.exception("could not record that the worker stopped")
    log.info("worker stopped")
    return 0


async def _keep_beating(beat: Heartbeat, pipeline: Pipeline, every: float) -> None:
    """The worker's heartbeat row, every `every` seconds, until cancelled."""
    while True:
        try:
            await beat.beat(pipeline.recorder.thread.call, pipeline.owner, force=True)
        except Exception:  # a database hiccup: the next beat will tell
            log.exception("could not leave the worker's heartbeat")
        await asyncio.sleep(every)
