"""The parse worker processes: where parse -> normalize -> filter runs, off the event loop.

feedparser and bs4 are CPU-bound, so the pure middle of the pipeline runs in
a small process pool (both cores busy while the event loop keeps fetching).
This module starts such pools and holds the function they run; it does no
I/O of its own and decides nothing about what to store.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import datetime
from typing import Any

from ingest import errors
from ingest.model import Fetched, Item, Source

__all__ = [
    "parse_and_normalize",
    "parse_job",
    "start_forkserver_pool",
    "start_parse_pool",
    "warm_up",
    "worker_count",
]


def parse_and_normalize(
    source: Source, fetched: Fetched, now: datetime, not_before: datetime | None = None
) -> tuple[Item, ...]:
    """Fetched -> the Items the source keeps: parse, normalize, then the editors' filters."""
    from ingest.filters import keep
    from ingest.normalize import normalize
    from ingest.parse import parse

    items = normalize(source, fetched.final_url, parse(source, fetched), now)
    return keep(source, items, not_before=not_before)


def parse_job(
    source: Source, fetched: Fetched, now: datetime, not_before: datetime | None
) -> tuple[str, Any]:
    """`parse_and_normalize` for a pool: ("ok", items) or (error kind, message).

    Results cross a process boundary, so failures come back as plain tuples,
    not exceptions (ours take keyword arguments and do not unpickle).
    """
    try:
        return "ok", parse_and_normalize(source, fetched, now, not_before)
    except errors.IngestError as e:
        return e.kind, str(e)
    except Exception as e:  # a library crash on hostile input must not kill the run
        return "parse", f"unexpected {type(e).__name__} while parsing: {e}"


def warm_up() -> None:
    """Import the parsing stack (run once per worker while the parent fetches)."""
    import ingest.filters
    import ingest.normalize
    import ingest.parse.feed  # noqa: F401


def worker_count() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def start_parse_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Fork the parse workers now, while this process is still small.

    Call it first thing in a short-lived process, before the HTTP client, the
    database or any thread exists: the workers are forked at once (a fork
    copies nothing big and no thread's locks) and import the parsing stack
    on their first job, in parallel with the parent's own start-up.  The
    caller shuts the pool down.
    """
    pool = ProcessPoolExecutor(
        max_workers=workers or worker_count(), mp_context=multiprocessing.get_context("fork")
    )
    pool.submit(os.getpid).result()  # a fork pool launches every worker on its first job
    return pool


def start_forkserver_pool(workers: int | None = None) -> Executor:
    """A pool for processes that already run threads (a fork there could deadlock).

    Workers start from a clean server process that has imported only the
    parsing stack, not the HTTP client, the event loop or the database.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["ingest.workers", "ingest.parse.feed", "ingest.normalize"])
    return ProcessPoolExecutor(max_workers=workers or worker_count(), mp_context=ctx)
