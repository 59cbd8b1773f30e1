"""The pipeline's one database thread: finished polls in, committed transactions out.

Polls arrive from many coroutines at once; this module queues them and
writes them through the store from a single thread: the polls waiting at
the same moment are written together, those that carry stories in one
transaction (one by one if that fails, so one bad poll cannot sink the
others) and those that carry none (304, unchanged body, failure) in another.
A write that fails becomes a failed report, and that failure is still
recorded when possible.  It does not decide what to write (store and dedupe
do) nor when a source is due (policy does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ingest import errors
from ingest.model import (
    Arrivals,
    FetchState,
    Item,
    Plan,
    PollRecord,
    Settings,
    Source,
    SourceReport,
)

__all__ = ["DatabaseThread", "PollStore", "Recorder"]

log = logging.getLogger("ingest.poll")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Job:
    record: PollRecord
    batch: Sequence[Item] | None
    done: asyncio.Future[SourceReport]


class PollStore(Protocol):
    """The store calls a pipeline makes: `ingest.store.Store`, or a `StoreProcess`."""

    def sync_sources(
        self, configured: Sequence[Source], now: datetime, settings: Settings | None = None
    ) -> int: ...
    def fetch_states(self, configured: Sequence[Source]) -> dict[str, FetchState]: ...
    def arrivals(self, keys: Sequence[str], start: datetime) -> dict[str, Arrivals]: ...
    def acquire_leases(
        self, keys: Sequence[str], owner: str, now: datetime, ttl: float
    ) -> set[str]: ...
    def release_leases(self, keys: Sequence[str], owner: str) -> None: ...
    def lease_owners(self, keys: Sequence[str]) -> dict[str, str]: ...
    def record_polls(self, records: Sequence[PollRecord]) -> None: ...
    def cooldowns_in_force(self, now: datetime) -> dict[str, tuple[datetime, str]]: ...
    def take_slot(self, host: str, now: datetime, delay: float) -> datetime: ...
    def save_polls(
        self, polls: Sequence[tuple[PollRecord, Sequence[Item] | None]]
    ) -> list[Plan]: ...
    def save_poll(self, record: PollRecord, batch: Sequence[Item] | None = None) -> Plan: ...


class DatabaseThread:
    """The one thread a process's database calls run on, one at a time, off the event loop.

    A pipeline's `Recorder` owns one; a long-running process without a pipeline
    (the dispatcher) has its own, so every process reaches its database the
    same way.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-db")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Finish what was handed over, then end the thread."""
        self._pool.shutdown(wait=True)


class Recorder:
    """Serialises every database call of a pipeline onto one thread."""

    def __init__(self, store: PollStore) -> None:
        self.store = store
        self.thread = DatabaseThread()
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call on the database thread."""
        return await self.thread.call(fn, *args)

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain())

    async def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self.thread.close()

    async def save(self, record: PollRecord, batch: Sequence[Item] | None) -> SourceReport:
        """Queue one finished poll; returns its report with the stored counts."""
        done: asyncio.Future[SourceReport] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(record, batch, done))
        return await done

    async def _drain(self) -> None:
        stop = False
        while not stop:
            jobs = [await self._queue.get()]
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            stop = None in jobs
            real = [j for j in jobs if j is not None]
            bare = [j for j in real if not j.batch]
            if bare:
                results = await self.call(self._write_bare, [j.record for j in bare])
                for job, report in zip(bare, results, strict=True):
                    _settle(job, report)
            full = [j for j in real if j.batch]
            if full:
                for job, report in zip(full, await self.call(self._write_full, full), strict=True):
                    _settle(job, report)

    def _write_bare(self, records: list[PollRecord]) -> list[SourceReport]:
        try:
            self.store.record_polls(records)
        except errors.StoreError as e:
            log.error("cannot record %d polls: %s", len(records), e)
            return [_store_failed(r.report, e) for r in records]
        return [r.report for r in records]

    def _write_full(self, jobs: list[_Job]) -> list[SourceReport]:
        """Polls with stories: together in one transaction, one by one if that fails."""
        if len(jobs) > 1:
            try:
                plans = self.store.save_polls([(j.record, j.batch) for j in jobs])
            except errors.StoreError as e:
                log.warning("writing %d polls together failed (%s); one by one", len(jobs), e)
            else:
                return [_counted(j, p) for j, p in zip(jobs, plans, strict=True)]
        return [self._write_one(j) for j in jobs]

    def _write_one(self, job: _Job) -> SourceReport:
        record = job.record
        try:
            plan = self.store.save_poll(record, job.batch)
        except errors.StoreError as e:
            failed = _store_failed(record.report, e)
            try:
                self.store.record_polls([replace(record, report=failed, fetched=None)])
            except errors.StoreError:
                log.error("cannot record the failure of %s either", record.source.key)
            return failed
        return _counted(job, plan)


def _settle(job: _Job, report: SourceReport) -> None:
    """Hand a written poll's report back, unless its poll was cancelled meanwhile
    (shutdown): the write stands, and the drain must go on for the others."""
    if not job.done.done():
        job.done.set_result(report)


def _counted(job: _Job, plan: Plan) -> SourceReport:
    return job.record.report.with_counts(plan, len(job.batch or ()), job.record.started_at)


def _store_failed(report: SourceReport, e: errors.StoreError) -> SourceReport:
    return replace(report, ok=False, error=str(e), error_kind=e.kind)
