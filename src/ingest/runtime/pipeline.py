"""Runs sources through the stages: fetch -> parse -> normalize -> dedupe -> store.

A `Pipeline` polls sources concurrently on one event loop: fetch.py does the
HTTP, a thread of this process parses and normalizes the small documents
read at linear cost and a process pool (parsing/, started when first
needed) the rest, one database thread (recorder.py) writes, and policy.py
says when each source is due next.  Every poll ends as exactly one
`SourceReport`; a failure of one source (network, HTTP status, broken
document, database) is caught here, recorded,
and never stops the others.  A source is polled only under its lease, so two
processes never fetch it at once.  `run` is the one-shot entry point of
`ingest run`; the scheduler (service/scheduler.py) keeps a Pipeline open and calls
`poll`.  No stage's own logic lives here: this module only chains them.

What a source's kind asks of its fetch (curated items, a feed found on a
page) is `discovery.fetch_source`'s; a report in words, `reports.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ingest import errors
from ingest.model import (
    Arrivals,
    Clock,
    Fetched,
    FetchState,
    Item,
    PollRecord,
    Settings,
    Source,
    SourceReport,
    utcnow,
)
from ingest.runtime import eventloop, gcpause
from ingest.runtime.cooldowns import REFRESH as COOLDOWN_REFRESH
from ingest.runtime.cooldowns import Cooldowns, CooldownView
from ingest.runtime.discovery import fetch_source
from ingest.runtime.leases import lease_ttl, make_owner, owner_is_dead
from ingest.runtime.parsing import jobs as workers
from ingest.runtime.recorder import PollStore, Recorder
from ingest.runtime.reports import failure_report, log_report
from ingest.stages.bounds import ParseLimits
from ingest.stages.controls import strip_controls
from ingest.stages.policy import arrivals_after_poll, cadence_window, plan_next
from ingest.stages.politeness import cooled_next, cooled_report, failure_rule, host_of

if TYPE_CHECKING:  # kept out of the import: a run's database process is forked small
    import httpx

    from ingest.runtime.metrics import Metrics

__all__ = ["Pipeline", "run"]

log = logging.getLogger("ingest.poll")

Progress = Callable[[SourceReport], None]


class Pipeline:
    """Polls sources with a shared client, parse pool, database thread and lease owner."""

    def __init__(
        self,
        store: PollStore,
        client: httpx.AsyncClient,
        settings: Settings | None = None,
        *,
        clock: Clock = utcnow,
        parse_pool: Executor | None = None,
        progress: Progress | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        cooldown_refresh: float = COOLDOWN_REFRESH,
    ) -> None:
        from ingest.stages.fetch import Fetcher

        self.store = store
        self.settings = settings or Settings()
        self.fetcher = Fetcher(client, self.settings, slots=self._take_slot)
        self.clock = clock
        self.progress = progress
        self.owner = owner or make_owner()
        self.rng = rng or random.Random()
        self.metrics = metrics  # counts every poll (metrics.py); None: nothing counted
        self.recorder = Recorder(store)
        # how old a snapshot of the host cool-downs may be (runtime/cooldowns.py)
        self.cooldowns = CooldownView(self._read_cooldowns, cooldown_refresh)
        self._pool = parse_pool
        self._own_pool = parse_pool is None
        self._thread: ThreadPoolExecutor | None = None  # reads small, linear-cost documents
        self._bodies = asyncio.Semaphore(self.settings.concurrency)

    async def __aenter__(self) -> Pipeline:
        self.recorder.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.recorder.stop()
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- one-shot: every given source, now ---------------------------------------

    async def run(self, sources: Sequence[Source]) -> list[SourceReport]:
        """Poll each source once, now (those leased by another process are skipped)."""
        now = self.clock()
        await self.recorder.call(self.store.sync_sources, sources, now)
        states = await self.recorder.call(self.store.fetch_states, sources)
        ttl = max((lease_ttl(s) for s in sources), default=0.0)
        keys = [s.key for s in sources]
        leased = await self.recorder.call(self.store.acquire_leases, keys, self.owner, now, ttl)
        if len(leased) < len(keys) and await self.free_dead_leases(set(keys) - leased):
            leased |= await self.recorder.call(
                self.store.acquire_leases, keys, self.owner, now, ttl
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

    async def free_dead_leases(self, keys: set[str]) -> bool:
        """Release leases held by processes of this host that no longer exist.

        A run killed with SIGKILL cannot give its leases back; they would
        keep its sources from being polled until they expire (timeout x 2 +
        2 min).  An owner is `role@host:pid:suffix` (`make_owner`): on the
        same host, a pid that is gone is a dead owner.  Returns whether any
        lease was released.
        """
        owners = await self.recorder.call(self.store.lease_owners, sorted(keys))
        dead: dict[str, list[str]] = {}
        for key, owner in owners.items():
            if owner_is_dead(owner):
                dead.setdefault(owner, []).append(key)
        for owner, held in dead.items():
            log.warning("releasing %d leases of %s, which is not running", len(held), owner)
            await self.recorder.call(self.store.release_leases, held, owner)
        return bool(dead)

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings from here on (a reloaded sources.yaml); polls in flight keep theirs."""
        from ingest.stages.fetch import Fetcher

        if settings != self.settings:
            if settings.concurrency != self.settings.concurrency:
                self._bodies = asyncio.Semaphore(settings.concurrency)
            self.settings = settings
            self.fetcher = Fetcher(self.fetcher.client, settings, slots=self._take_slot)

    def warm_up(self) -> None:
        """Import the parsing stack in the parse thread while the first requests wait."""
        self._here().submit(workers.warm_up)

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
        """Fetch, parse and store one source whose lease this pipeline holds.

        At most `settings.concurrency` polls hold a body at a time, from the
        request until its stories are stored (a body-less answer, a 304 or a
        failure, lets go at once): fetching waits for parsing and writing to
        catch up, so a run over thousands of sources holds a bounded number
        of bodies, not every one fetched so far.
        """
        slot = _Slot(self._bodies)
        if self.metrics is not None:
            self.metrics.leases.inc()
        try:
            await slot.take()
            return await self._poll(source, state, slot)
        finally:
            slot.release()
            if self.metrics is not None:
                self.metrics.leases.dec()

    async def _poll(self, source: Source, state: FetchState, slot: _Slot) -> SourceReport:
        started = self.clock()
        t0 = asyncio.get_running_loop().time()
        # the server this poll asks: a feed found on a page is asked at its own address
        host = "" if source.kind == "curated" else host_of(state.discovered_url or source.url)
        cooling = await self._cooling(source.key, host, started)
        fetched: Fetched | None = None
        batch: tuple[Item, ...] | None = None
        if cooling is not None:  # not polled: its host asked every client to wait
            report = cooled_report(source.key, *cooling, now=started)
        else:
            report, fetched, batch, cooling = await self._fetch_and_parse(source, state, started)
        report = replace(report, elapsed_ms=int((asyncio.get_running_loop().time() - t0) * 1000))
        if cooling is not None:  # a poll not made is no failure of the source
            nxt = cooled_next(cooling[1], self.rng)
        else:
            failures = 0 if report.ok else state.failures + 1
            arrivals = await self._arrivals(source, batch, started) if source.auto else None
            nxt = plan_next(
                source, report, now=started, failures=failures, settings=self.settings,
                rng=self.rng, arrivals=arrivals, pushed=state.pushed,
            )  # fmt: skip
        if fetched is not None and fetched.content:
            fetched = replace(fetched, content=b"")  # parsed already: do not hold the body
        if not batch:
            slot.release()  # nothing big left to hold while the poll is recorded
        record = PollRecord(
            source, report, fetched, started, nxt, failure_rule(self.settings), host
        )
        report = await self.recorder.save(record, batch)
        if not report.ok and cooling is None:  # a failed request may have cooled its host
            self.cooldowns.forget()  # (a 429, the last of failures in a row): read again
        log_report(report)
        if self.metrics is not None:
            first = state.body_hash is None and state.etag is None and not state.last_modified
            after = 0 if report.ok else state.failures + (cooling is None)  # a failed write too
            self.metrics.observe_poll(
                report, failures=after, started=started, first=first, interval=nxt.interval
            )
        if self.progress is not None:
            self.progress(report)
        return report

    async def _fetch_and_parse(
        self, source: Source, state: FetchState, started: datetime
    ) -> tuple[SourceReport, Fetched | None, tuple[Item, ...] | None, _Cooling | None]:
        """Fetch and parse one source: its report, what came back, the stories, and the
        host's cool-down when a 429 to another source came while this poll waited."""
        fetched: Fetched | None = None
        batch: tuple[Item, ...] | None = None
        cooling: _Cooling | None = None
        try:
            fetched = await fetch_source(self.fetcher, source, state, self._find_links)
            report = SourceReport(
                source_key=source.key,
                ok=True,
                status=fetched.status or None,
                not_modified=fetched.not_modified,
                unchanged=fetched.unchanged,
                moved_to=fetched.moved_to,
                retry_after=fetched.retry_after,
                max_age=fetched.max_age,
                discovered_url=fetched.discovered_url,
            )
            if fetched.needs_parse:
                batch, why = await self._parse(source, fetched, started)
                if why:
                    report = replace(report, notes=(why,))
                if source.kind == "feed":  # a WebSub hub it advertises (cheap: parse/hubs.py)
                    from ingest.stages.parse.hubs import advert_of

                    report = replace(report, advert=advert_of(fetched), read_body=True)
        except errors.CooldownError as e:  # the 429 came while this poll waited for its turn
            cooling = (e.host, started + timedelta(seconds=e.seconds), e.reason)
            report = cooled_report(source.key, *cooling, now=started)
        except errors.IngestError as e:
            report = failure_report(source, e, fetched)
        except Exception as e:  # never let one source stop the others
            log.exception("unexpected error polling %s", source.key)
            report = SourceReport(
                source_key=source.key,
                ok=False,
                error=strip_controls(f"internal error: {type(e).__name__}: {e}"),
                error_kind="internal",
            )
        return report, fetched, batch, cooling

    async def _cooling(self, key: str, host: str, now: datetime) -> _Cooling | None:
        """(host, until, reason) when `host`, which source `key` asks, is cooling down
        (politeness.py), shared through the database by every process; a store that
        cannot say is no reason to hold a poll back."""
        if not host:  # a curated source asks no server
            return None
        try:
            found = await self.cooldowns.of(host, now)
        except errors.StoreError as e:
            log.warning("%s: cannot read the cool-down of %s: %s", key, host, e)
            return None
        return None if found is None else (host, found[0], found[1])

    async def _read_cooldowns(self, now: datetime) -> Cooldowns:
        found: Cooldowns = await self.recorder.call(self.store.cooldowns_in_force, now)
        return found

    async def _take_slot(self, host: str, delay: float) -> float:
        """Seconds until this request's slot at `host` among the requests of every process
        sharing the database (wall-clock time, as theirs); a store that cannot say leaves
        the spacing to this process alone."""
        try:
            slot = await self.recorder.call(self.store.take_slot, host, datetime.now(UTC), delay)
        except errors.StoreError as e:
            log.warning("cannot take a request slot at %s: %s; spacing this process only", host, e)
            return 0.0
        return max(0.0, (slot - datetime.now(UTC)).total_seconds())

    async def _arrivals(
        self, source: Source, batch: Sequence[Item] | None, now: datetime
    ) -> Arrivals | None:
        """When the entries of an `every: auto` source arrived, this poll's new ones included.

        None when the database cannot say now (a hiccup, logged): the next poll is
        then `max_every` away (policy.py), and this poll goes on to be recorded.
        """
        window = cadence_window(source)
        try:
            known = await self.recorder.call(
                self.store.arrivals, [source.key], now - timedelta(seconds=window)
            )
        except errors.StoreError as e:
            log.warning("%s: could not read its arrivals for every: auto: %s", source.key, e)
            return None
        except Exception:  # a fault here must not lose the poll: it is recorded all the same
            log.exception("%s: could not read its arrivals for every: auto", source.key)
            return None
        before = known.get(source.key, Arrivals())
        return arrivals_after_poll(before, (i.published_at for i in batch or ()), now, window)

    @property
    def pool_started(self) -> bool:
        """Whether a parse pool is running: given to the pipeline, or started for the
        first document that could not be read here (`workers.sift_here`)."""
        return self._pool is not None

    def _here(self) -> Executor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="ingest-parse")
        return self._thread

    def _parse_pool(self) -> Executor:
        if self._pool is None:
            self._pool = workers.start_forkserver_pool()
        return self._pool

    async def _find_links(self, content: bytes, url: str) -> tuple[str, ...]:
        from ingest.stages.parse.discover import find_feed_links

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._parse_pool(), find_feed_links, content, url)

    async def _parse(
        self, source: Source, fetched: Fetched, now: datetime
    ) -> tuple[tuple[Item, ...], str | None]:
        """The Items kept, and why none were when the filters or retention dropped all."""
        not_before = now - timedelta(seconds=self.settings.retention)
        limits = ParseLimits.of(self.settings)
        # A small document in a format of linear cost is read here, in a thread;
        # the rest in the budgeted pool, started when the first of them comes.
        loop = asyncio.get_running_loop()
        result = None
        tried = workers.may_sift_here(source, fetched)  # else no hop to the thread at all
        if tried:
            result = await loop.run_in_executor(
                self._here(), workers.sift_here, source, fetched, now, not_before, limits
            )
        if result is None:  # the pool reads it (with feedparser, when the fast reader refused)
            result = await loop.run_in_executor(
                self._parse_pool(),
                workers.parse_job,
                source,
                fetched,
                now,
                not_before,
                limits,
                True,
                not tried,
            )
        return workers.sifted(result)


_Cooling = tuple[str, datetime, str]  # (host, until, reason) of a host cooling down


class _Slot:
    """One of the pipeline's body slots, released once however the poll ends."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = False

    async def take(self) -> None:
        await self._semaphore.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


async def _run_async(
    sources: Sequence[Source],
    store: PollStore,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    clock: Clock,
    progress: Progress | None,
    parse_pool: Executor | None,
) -> list[SourceReport]:
    from ingest.stages.transport import make_client

    async with (
        make_client(settings, transport=transport) as client,
        Pipeline(
            store, client, settings, clock=clock, progress=progress, parse_pool=parse_pool
        ) as pipeline,
    ):
        gcpause.settle()  # imports done, client made: from here on the work's own garbage
        return await pipeline.run(sources)


def run(
    sources: Sequence[Source],
    store: PollStore,
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utcnow,
    progress: Progress | None = None,
    parse_pool: Executor | None = None,
) -> list[SourceReport]:
    """Poll every source once, now; one report per source, in the given order.

    `parse_pool` runs the parse jobs the parse thread does not take
    (`workers.parse_job`); without one, a forkserver pool is started when the first
    of them comes.
    """
    return eventloop.run(
        _run_async(sources, store, settings or Settings(), transport, clock, progress, parse_pool)
    )
