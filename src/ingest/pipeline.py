"""Runs sources through the stages: fetch -> parse -> normalize -> dedupe -> store.

A `Pipeline` polls sources concurrently on one event loop: fetch.py does the
HTTP, a process pool (workers.py) parses and normalizes, one database
thread (recorder.py) writes, and policy.py says when each source is due
next.  Every poll ends as exactly one `SourceReport`; a failure of one source
(network, HTTP status, broken document, database) is caught here, recorded,
and never stops the others.  A source is polled only under its lease, so two
processes never fetch it at once.  `run` is the one-shot entry point of
`ingest run`; the scheduler (schedule.py) keeps a Pipeline open and calls
`poll`.  No stage's own logic lives here: this module only chains them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ingest import errors, workers
from ingest.model import Fetched, FetchState, Item, PollRecord, Settings, Source, SourceReport
from ingest.policy import plan_next
from ingest.recorder import Recorder

if TYPE_CHECKING:  # kept out of the import so that workers.start_parse_pool forks a small process
    import httpx

    from ingest.store import Store

__all__ = ["Pipeline", "lease_ttl", "make_owner", "run"]

log = logging.getLogger("ingest.poll")

Clock = Callable[[], datetime]
Progress = Callable[[SourceReport], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def make_owner(role: str = "run") -> str:
    """A lease owner id: host, pid and a random suffix (pids are reused)."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_ttl(source: Source) -> float:
    """How long a poll of `source` may hold its lease: fetch deadline plus parse and write."""
    return source.timeout * 2 + 120.0


class Pipeline:
    """Polls sources with a shared client, parse pool, database thread and lease owner."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        settings: Settings | None = None,
        *,
        clock: Clock = _utcnow,
        parse_pool: Executor | None = None,
        progress: Progress | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        from ingest.fetch import Fetcher

        self.store = store
        self.settings = settings or Settings()
        self.fetcher = Fetcher(client, self.settings)
        self.clock = clock
        self.progress = progress
        self.owner = owner or make_owner()
        self.rng = rng or random.Random()
        self.recorder = Recorder(store)
        self._pool = parse_pool
        self._own_pool = parse_pool is None

    async def __aenter__(self) -> Pipeline:
        self.recorder.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.recorder.stop()
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- one-shot: every given source, now ---------------------------------------

    async def run(self, sources: Sequence[Source]) -> list[SourceReport]:
        """Poll each source once, now (those leased by another process are skipped)."""
        now = self.clock()
        await self.recorder.call(self.store.sync_sources, sources, now)
        states = await self.recorder.call(self.store.fetch_states, sources)
        ttl = max((lease_ttl(s) for s in sources), default=0.0)
        leased = await self.recorder.call(
            self.store.acquire_leases, [s.key for s in sources], self.owner, now, ttl
        )
        if any(not states.get(s.key, FetchState()).body_hash for s in sources):
            self.warm_up()  # never-fetched sources: bodies are coming, import the parsers now
        reports = await asyncio.gather(
            *(
                self.poll(s, states.get(s.key, FetchState()))
                if s.key in leased
                else self._skipped(s)
                for s in sources
            )
        )
        return list(reports)

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings from here on (a reloaded sources.yaml); polls in flight keep theirs."""
        from ingest.fetch import Fetcher

        if settings != self.settings:
            self.settings = settings
            self.fetcher = Fetcher(self.fetcher.client, settings)

    def warm_up(self) -> None:
        pool = self._parse_pool()
        for _ in range(workers.worker_count()):
            pool.submit(workers.warm_up)

    async def _skipped(self, source: Source) -> SourceReport:
        report = SourceReport(
            source_key=source.key,
            ok=True,
            skipped=True,
            error="skipped: another process is polling this source right now",
        )
        if self.progress is not None:
            self.progress(report)
        return report

    # -- one poll -------------------------------------------------------------------

    async def poll(self, source: Source, state: FetchState) -> SourceReport:
        """Fetch, parse and store one source whose lease this pipeline holds."""
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
                max_age=fetched.max_age,
            )
            if fetched.needs_parse:
                batch = await self._parse(source, fetched, started)
        except errors.IngestError as e:
            report = _failure(source, e, fetched)
        except Exception as e:  # never let one source stop the others
            log.exception("unexpected error polling %s", source.key)
            report = SourceReport(
                source_key=source.key,
                ok=False,
                error=f"internal error: {type(e).__name__}: {e}",
                error_kind="internal",
            )
        report = replace(report, elapsed_ms=int((asyncio.get_running_loop().time() - t0) * 1000))
        failures = 0 if report.ok else state.failures + 1
        nxt = plan_next(
            source, report, now=started, failures=failures, settings=self.settings, rng=self.rng
        )
        if fetched is not None and fetched.content:
            fetched = replace(fetched, content=b"")  # parsed already: do not hold the body
        report = await self.recorder.save(PollRecord(source, report, fetched, started, nxt), batch)
        _log_report(report)
        if self.progress is not None:
            self.progress(report)
        return report

    def _parse_pool(self) -> Executor:
        if self._pool is None:
            self._pool = workers.start_forkserver_pool()
        return self._pool

    async def _parse(self, source: Source, fetched: Fetched, now: datetime) -> tuple[Item, ...]:
        not_before = now - timedelta(seconds=self.settings.retention)
        kind, value = await asyncio.get_running_loop().run_in_executor(
            self._parse_pool(), workers.parse_job, source, fetched, now, not_before
        )
        if kind != "ok":
            raise errors.ParseError(value)
        items: tuple[Item, ...] = value
        return items


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


def _log_report(r: SourceReport) -> None:
    extra = {
        "source": r.source_key, "status": r.status, "new": r.new, "updated": r.updated,
        "entries": r.entries, "ms": r.elapsed_ms, "error": r.error,
    }  # fmt: skip
    if r.ok:
        how = " not-modified" if r.not_modified else (" unchanged" if r.unchanged else "")
        log.info(
            "%s status=%s new=%d updated=%d entries=%d ms=%d%s",
            r.source_key, r.status, r.new, r.updated, r.entries, r.elapsed_ms, how,
            extra=extra,
        )  # fmt: skip
    else:
        log.warning(
            "%s failed status=%s ms=%d error=%s",
            r.source_key, r.status, r.elapsed_ms, r.error,
            extra=extra,
        )  # fmt: skip


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

    async with (
        make_client(settings, transport=transport) as client,
        Pipeline(
            store, client, settings, clock=clock, progress=progress, parse_pool=parse_pool
        ) as pipeline,
    ):
        return await pipeline.run(sources)


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

    `parse_pool` runs parse + normalize (see `workers.start_parse_pool`);
    without one, a forkserver pool is started when the first body needs it.
    """
    return asyncio.run(
        _run_async(sources, store, settings or Settings(), transport, clock, progress, parse_pool)
    )
