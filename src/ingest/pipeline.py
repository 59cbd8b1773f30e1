"""Runs sources through the stages: fetch -> parse -> normalize -> dedupe -> store.

`run` polls many sources at once: fetches concurrently on one event loop,
parses and normalizes in a small pool of worker processes (feedparser is
CPU-bound, so both cores work), and writes through one database thread.
Every source ends as exactly one `SourceReport`; a failure of one source
(network, HTTP status, broken document, database) is caught here, recorded,
and never stops the others.  Scheduling (when a source is due) is not decided
here, and no stage's own logic lives here: this module only chains them.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ingest import errors
from ingest.model import Fetched, FetchState, Item, Settings, Source, SourceReport

if TYPE_CHECKING:  # kept out of the import so that start_parse_pool can fork a small process
    import httpx

    from ingest.store import PollRecord, Store

__all__ = ["Pipeline", "next_due", "parse_and_normalize", "run", "start_parse_pool"]

log = logging.getLogger("ingest.poll")

Clock = Callable[[], datetime]
Progress = Callable[[SourceReport], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def parse_and_normalize(source: Source, fetched: Fetched, now: datetime) -> tuple[Item, ...]:
    """The pure, CPU-heavy middle of the pipeline; runs in a worker process."""
    from ingest.filters import keep
    from ingest.normalize import normalize
    from ingest.parse import parse

    return keep(source, normalize(source, fetched.final_url, parse(source, fetched), now))


def _parse_job(source: Source, fetched: Fetched, now: datetime) -> tuple[str, Any]:
    # Results cross a process boundary: return plain tuples, not exceptions
    # (exception subclasses with keyword-only arguments do not unpickle).
    try:
        return "ok", parse_and_normalize(source, fetched, now)
    except errors.IngestError as e:
        return e.kind, str(e)
    except Exception as e:  # a bug or a library crash on hostile input
        return "parse", f"unexpected {type(e).__name__} while parsing: {e}"


def _warm_up() -> None:
    import ingest.filters
    import ingest.normalize
    import ingest.parse.feed  # noqa: F401


def next_due(source: Source, started: datetime) -> datetime:
    """When the source should be polled next after a poll at `started`."""
    if source.cron:
        from apscheduler.triggers.cron import CronTrigger

        fire = CronTrigger.from_crontab(source.cron, timezone=UTC).get_next_fire_time(None, started)
        if fire is not None:
            return fire.astimezone(UTC)  # type: ignore[no-any-return]
    return started + timedelta(seconds=source.every)


def _worker_count() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _make_pool(workers: int) -> Executor:
    # forkserver: workers start from a clean, small process that has imported
    # only the parsing stack, not the HTTP client, the event loop or the DB.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ingest.pipeline", "ingest.parse.feed", "ingest.normalize"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def start_parse_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Fork the parse workers now, while this process is still small.

    Call it first thing in a short-lived process, before the HTTP client, the
    database or any thread exists: the workers are forked at once (a fork
    copies nothing big and no thread's locks) and import the parsing stack
    on their first job, in parallel with the parent's own start-up.  The
    caller shuts the pool down.  Long-lived callers that cannot promise a
    thread-free process let `Pipeline` start a forkserver pool instead.
    """
    pool = ProcessPoolExecutor(
        max_workers=workers or _worker_count(), mp_context=multiprocessing.get_context("fork")
    )
    pool.submit(os.getpid).result()  # a fork pool launches every worker on its first job
    return pool


@dataclass
class _Pending:
    record: PollRecord
    batch: Sequence[Item] | None


class Pipeline:
    """One run over many sources, sharing a client, a parse pool and a store."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        settings: Settings | None = None,
        *,
        clock: Clock = _utcnow,
        parse_pool: Executor | None = None,
        progress: Progress | None = None,
    ) -> None:
        from ingest.fetch import Fetcher

        self.store = store
        self.settings = settings or Settings()
        self.fetcher = Fetcher(client, self.settings)
        self.clock = clock
        self.progress = progress
        self._pool = parse_pool
        self._own_pool = parse_pool is None
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-db")
        self._queue: asyncio.Queue[tuple[_Pending, asyncio.Future[Any]] | None] | None = None

    # -- the run --------------------------------------------------------------

    async def run(self, sources: Sequence[Source]) -> list[SourceReport]:
        loop = asyncio.get_running_loop()
        now = self.clock()
        await loop.run_in_executor(self._db, self.store.sync_sources, sources, now)
        states = await loop.run_in_executor(self._db, self.store.fetch_states, sources)
        if any(s.key not in states for s in sources):  # sources never fetched: bodies will come
            if self._pool is None:
                self._pool = _make_pool(_worker_count())
            for _ in range(_worker_count()):  # import the parsing stack while we fetch
                self._pool.submit(_warm_up)
        self._queue = asyncio.Queue()
        writer = asyncio.create_task(self._writer())
        try:
            reports = await asyncio.gather(
                *(self._one(s, states.get(s.key, FetchState())) for s in sources)
            )
        finally:
            await self._queue.put(None)
            await writer
        return list(reports)

    async def close(self) -> None:
        self._db.shutdown(wait=True)
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    async def _one(self, source: Source, state: FetchState) -> SourceReport:
        started = self.clock()
        t0 = asyncio.get_running_loop().time()
        fetched: Fetched | None = None
        batch: tuple[Item, ...] | None = None
        try:
            fetched = await self.fetcher.fetch(source, state)
            report = SourceReport(
                source_key=source.key,
                ok=True,
                status=fetched.status,
                not_modified=fetched.not_modified,
                unchanged=fetched.unchanged,
                moved_to=fetched.moved_to,
                retry_after=fetched.retry_after,
            )
            if fetched.needs_parse:
                batch = await self._parse(source, fetched, started)
        except errors.IngestError as e:
            report = _failure(source, e, fetched)
        except Exception as e:  # never let one source stop the run
            log.exception("unexpected error polling %s", source.key)
            report = SourceReport(
                source_key=source.key,
                ok=False,
                error=f"internal error: {type(e).__name__}: {e}",
                error_kind="internal",
            )
        elapsed = int((asyncio.get_running_loop().time() - t0) * 1000)
        report = replace(report, elapsed_ms=elapsed)
        retry_until = (
            started + timedelta(seconds=report.retry_after) if report.retry_after else None
        )
        record: PollRecord = (
            source,
            report,
            fetched,
            started,
            next_due(source, started),
            retry_until,
        )
        if fetched is not None and fetched.content:
            # the body is parsed; do not hold it until the write
            record = (source, report, replace(fetched, content=b""), *record[3:])
        report = await self._save(_Pending(record, batch))
        _log_report(report)
        if self.progress is not None:
            self.progress(report)
        return report

    async def _parse(self, source: Source, fetched: Fetched, now: datetime) -> tuple[Item, ...]:
        if self._pool is None:
            self._pool = _make_pool(_worker_count())
        loop = asyncio.get_running_loop()
        kind, value = await loop.run_in_executor(self._pool, _parse_job, source, fetched, now)
        if kind != "ok":
            raise errors.ParseError(value)
        items: tuple[Item, ...] = value
        return items

    # -- the database writer ----------------------------------------------------

    async def _save(self, pending: _Pending) -> SourceReport:
        assert self._queue is not None
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((pending, done))
        result: SourceReport = await done
        return result

    async def _writer(self) -> None:
        """Drain the queue: stories one transaction per source, bare state in bulk."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self._queue.get()
            jobs = [first]
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            if None in jobs:
                stop = True
            real = [j for j in jobs if j is not None]
            bare = [(p, f) for p, f in real if not p.batch]
            full = [(p, f) for p, f in real if p.batch]
            if bare:
                results = await loop.run_in_executor(
                    self._db, self._write_bare, [p.record for p, _ in bare]
                )
                for (_, f), r in zip(bare, results, strict=True):
                    f.set_result(r)
            for p, f in full:
                report = await loop.run_in_executor(self._db, self._write_full, p)
                f.set_result(report)

    def _write_bare(self, records: list[PollRecord]) -> list[SourceReport]:
        try:
            self.store.record_polls(records)
        except errors.StoreError as e:
            return [_store_failed(r[1], e) for r in records]
        return [r[1] for r in records]

    def _write_full(self, pending: _Pending) -> SourceReport:
        source, report, *_ = pending.record
        try:
            plan = self.store.save_poll(pending.record, pending.batch)
        except errors.StoreError as e:
            failed = _store_failed(report, e)
            try:
                self.store.record_polls([(source, failed, None, *pending.record[3:])])
            except errors.StoreError:
                log.error("cannot record the failure of %s either", source.key)
            return failed
        return replace(
            report,
            new=len(plan.new),
            updated=len(plan.changed),
            same=plan.same,
            entries=len(pending.batch or ()),
        )


def _failure(source: Source, e: errors.IngestError, fetched: Fetched | None) -> SourceReport:
    status = getattr(e, "status", None) or (fetched.status if fetched else None)
    return SourceReport(
        source_key=source.key,
        ok=False,
        status=status or None,
        error=str(e),
        error_kind=e.kind,
        retry_after=getattr(e, "retry_after", None),
        moved_to=fetched.moved_to if fetched else None,
    )


def _store_failed(report: SourceReport, e: errors.StoreError) -> SourceReport:
    return replace(report, ok=False, error=str(e), error_kind=e.kind)


def _log_report(r: SourceReport) -> None:
    if r.ok:
        log.info(
            "%s status=%s new=%d updated=%d entries=%d ms=%d%s",
            r.source_key,
            r.status,
            r.new,
            r.updated,
            r.entries,
            r.elapsed_ms,
            " not-modified" if r.not_modified else (" unchanged" if r.unchanged else ""),
        )
    else:
        log.warning(
            "%s failed status=%s ms=%d error=%s", r.source_key, r.status, r.elapsed_ms, r.error
        )


async def _run_async(
    sources: Sequence[Source],
    store: Store,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    clock: Clock,
    progress: Progress | None,
    parse_pool: Executor | None,
) -> list[SourceReport]:
    from ingest.fetch import make_client

    async with make_client(settings, transport=transport) as client:
        pipeline = Pipeline(
            store, client, settings, clock=clock, progress=progress, parse_pool=parse_pool
        )
        try:
            return await pipeline.run(sources)
        finally:
            await pipeline.close()


def run(
    sources: Sequence[Source],
    store: Store,
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = _utcnow,
    progress: Progress | None = None,
    parse_pool: Executor | None = None,
) -> list[SourceReport]:
    """Poll every source once, now; one report per source, in the given order.

    `parse_pool` runs parse + normalize (see `start_parse_pool`); without one,
    a forkserver pool is started when the first body needs parsing.
    """
    return asyncio.run(
        _run_async(sources, store, settings or Settings(), transport, clock, progress, parse_pool)
    )
