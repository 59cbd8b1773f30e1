"""A body a WebSub hub pushed, through the same stages as a poll's: parse, normalize,
filter, dedupe, store.

One job: `receive` turns one verified content distribution (its signature was
checked by `web/websub.py` with `websub.signature_ok`) into stored stories and
a `SourceReport`, logged as a poll is (`reports.log_report`: `KEY push new=...`)
and written to the poll log (outcome `push`, or `push_error` when the body
cannot be read: the error is logged and shown by `ingest status`, nothing is
stored, and the source's polling goes on as before).  The caller gives the
source as the database holds it (`sources.config`, as `ingest worker` reads
it, and the cap on the body); the settings come from the database's copy of
`settings:`.  It runs in `ingest serve`'s thread
pool: the body is capped (the source's `max_body`) before it gets here, and
it is parsed as a poll's body is (`PushParsing`): a small document in a
format read at linear cost in this thread, anything else in a parse worker
(one, started at the first such push) under the `parse_cpu` and
`parse_memory` budgets, its entries trimmed to `max_entries`.  It does not check
signatures, answer HTTP or touch a source's schedule, validators or lease.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ingest import errors
from ingest.model import Fetched, Item, Settings, Source, SourceReport
from ingest.runtime.reports import log_report
from ingest.stages.bounds import ParseLimits
from ingest.stages.controls import strip_controls
from ingest.stages.websub import Subscription
from ingest.store import Store

if TYPE_CHECKING:
    from ingest.runtime.parsing.pool import ParsePool

__all__ = ["PushParsing", "receive"]

log = logging.getLogger("ingest.poll")


class PushParsing:
    """Where pushed bodies are read: in the calling thread when `workers.sift_here`
    takes them, else in a parse worker under the parse budgets (`workers.parse_job`),
    started at the first such push, so a serve that is never pushed one starts
    none; `close` stops it."""

    def __init__(self) -> None:
        self._pool: ParsePool | None = None
        self._lock = threading.Lock()

    def sift(
        self, source: Source, fetched: Fetched, now: datetime, not_before: datetime,
        limits: ParseLimits,
    ) -> tuple[tuple[Item, ...], str | None]:  # fmt: skip
        """`workers.sift`, here or in the worker: the Items kept and why none were; a
        failure (a budget spent included) raises its `IngestError`."""
        from ingest.runtime.parsing import jobs as workers

        tried = workers.may_sift_here(source, fetched)
        here = workers.sift_here(source, fetched, now, not_before, limits) if tried else None
        if here is not None:  # small, and read at linear cost: here, as a poll's would be
            return workers.sifted(here)
        with self._lock:
            if self._pool is None:
                # serve runs threads: a fork could deadlock, the forkserver is clean
                self._pool = workers.start_forkserver_pool(1)
            pool = self._pool
        job = pool.submit(
            workers.parse_job, source, fetched, now, not_before, limits, True, not tried
        )
        return workers.sifted(job.result())

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def receive(
    store: Store,
    sub: Subscription,
    source: Source,
    body: bytes,
    content_type: str | None,
    now: datetime,
    parsing: PushParsing,
) -> SourceReport:
    """Store what `body` (pushed for `sub`, of `source` as the database holds it) carries."""
    settings = store.settings() or Settings()
    t0 = time.monotonic()
    fetched = Fetched(
        source.key, sub.topic, sub.topic, 200, content=body, content_type=content_type,
        body_hash=hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    not_before = now - timedelta(seconds=settings.retention)
    report = SourceReport(source_key=source.key, ok=True)
    kept: tuple[Item, ...] = ()
    try:
        kept, why = parsing.sift(source, fetched, now, not_before, ParseLimits.of(settings))
        if why:
            report = replace(report, notes=(why,))
    except errors.IngestError as e:
        report = _failed(source.key, str(e), e.kind)
    except Exception as e:  # a library's crash on a hostile body must not take serve down
        log.exception("unexpected error reading a push for %s", source.key)
        report = _failed(source.key, f"internal error: {type(e).__name__}: {e}", "internal")
    report = replace(report, elapsed_ms=int((time.monotonic() - t0) * 1000))
    stored = store.save_push(report, source, kept, sub.id, sub.topic, now)
    log_report(stored, push=True)
    return stored


def _failed(key: str, message: str, kind: str) -> SourceReport:
    return SourceReport(source_key=key, ok=False, error=strip_controls(message), error_kind=kind)
